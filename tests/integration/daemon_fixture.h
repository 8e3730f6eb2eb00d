// tests/integration/daemon_fixture.h: runs the real `ephemera serve` as a child
// process against the real dockerd, and talks to it over real HTTP (libcurl).
//
// Each Daemon gets an ephemeral port (it prints the one it bound), its own state
// file and log file under a temporary directory, and its own Redis key prefix. Stop() sends SIGTERM
// and waits for the exit status, so tests can check that shutdown is clean.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ephemera::testing {

struct HttpResult {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string error;  // transport error, if any
  std::string Header(const std::string& lower_name) const;
};

// One HTTP request (blocking). `headers` are "Name: value" lines.
HttpResult Http(const std::string& method, const std::string& url, const std::string& body = "",
                const std::vector<std::string>& headers = {});

// Polls `cond` every 20 ms until it holds or `timeout_ms` passes (a bounded wait on a
// condition, for state outside the test: containers, Redis keys, the daemon's health).
// Returns the condition's last value.
bool WaitUntil(const std::function<bool()>& cond, int timeout_ms);

// GET on the Docker API over the unix socket (path like "/v1.41/containers/json?...").
HttpResult DockerGet(const std::string& path);
// Ids of containers (any state) carrying label `k=v`.
std::vector<std::string> ContainersWithLabel(const std::string& label);
// Containers carrying every one of `labels` (the engine ANDs label filters).
std::vector<std::string> ContainersWithLabels(const std::vector<std::string>& labels);
// The environments (not the network-namespace holders) of the daemon with process `pid`.
std::vector<std::string> EnvironmentsOf(int pid);

class Daemon {
 public:
  struct Options {
    std::vector<std::string> extra_args;
    std::string state_path;  // "" = a fresh temporary file
  };
  Daemon() = default;
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts the daemon and waits until it listens. Returns "" or a message.
  std::string Start(const Options& options);
  std::string Start() { return Start(Options{}); }
  // SIGTERM, then waits for exit. Returns the exit status (or -1 / 128+signal).
  int Stop();
  // Waits until the daemon reports nothing in flight and nothing being disposed.
  bool WaitIdle(int timeout_ms = 30000) const;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }
  const std::string& state_path() const { return state_path_; }
  std::string log() const;
  // Resident set size of the daemon in KiB (VmRSS), or -1.
  long RssKib() const;

  HttpResult Invoke(const std::string& function, const std::string& payload,
                    const std::vector<std::string>& headers = {}) const;
  // The value of one line of /metrics (`name` with its labels, as printed), or -1.
  double Metric(const std::string& name) const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
  std::string state_path_;
  std::string log_path_;
};

// Paths set by CMake.
std::string BinaryPath();    // build/bin/ephemera
std::string RegistryPath();  // registry/functions.json in the source tree

}  // namespace ephemera::testing
