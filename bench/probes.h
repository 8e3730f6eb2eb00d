// bench/probes.h: the three ways the benchmark starts a cold container, one sample each.
//
//   EphemeraClient  POST /2015-03-31/functions/{name}/invocations to the daemon; the sample
//                   is the client-observed time plus the reply's Server-Timing phases.
//   RawFloor        what any emulator on this engine must pay at least: create (same spec
//                   the daemon would send), register the wait, start, and the moment the
//                   container's first GET /2018-06-01/runtime/invocation/next reaches a
//                   plain listener of ours. Never answered: the container is removed after.
//                   In the function's own network arrangement: on the host network the
//                   listener is on 127.0.0.1:<port>; for an isolated function (see
//                   docs/architecture.md "Isolation and hardening") the container joins a
//                   FloorHolders holder's namespace and the listener is the unix socket
//                   runtime.sock in a folder of the sample's, bind-mounted at /run/ephemera.
//   DockerRun       `docker run --rm -i ...` through the CLI, event on stdin, until it exits.
//   FloorHolders    the isolated floor's network namespace holders, made ahead (off the
//                   timed path) and reused from sample to sample, as the daemon's HolderPool.
//
// Thread: the loop thread only; nothing blocks (an isolated sample's folder is made and
// removed with a few quick syscalls). Callbacks: each Run/Invoke/Acquire/Prepare calls
// `done` exactly once, later, never from inside the call. Destroying a probe object drops
// pending callbacks (containers then stay behind: the runner reaps them by label at the end).
// Depends on: runtime/docker (DockerClient, CurlMulti), runtime/http (the listener), core.
#pragma once

#include <curl/curl.h>
#include <uv.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/results.h"
#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"
#include "runtime/docker/curl_uv.h"
#include "runtime/docker/docker_client.h"

namespace ephemera::bench {

struct ProbeResult {
  enum class Kind { kKept, kWrongClass, kFailed };  // kKept: of the class measured
  Kind kind = Kind::kFailed;
  Sample sample;        // latency, phases, request id; start_ms is absolute monotonic ms
  std::string message;  // why it was not kept
};
using ProbeDone = std::function<void(ProbeResult)>;

// Parses "a;dur=1.5, b;dur=2" into {a:1.5, b:2}; entries without dur are skipped.
std::map<std::string, double> ParseServerTiming(std::string_view header);

// A whole HTTP reply: curl's result, the status (0 when there was no answer), the headers
// as sent and the body, and how long it took.
struct HttpReply {
  CURLcode rc = CURLE_OK;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  double ms = 0;
  std::string Header(std::string_view name) const;  // "" if absent; case-insensitive
};

class EphemeraClient final {
 public:
  // `endpoint` like "http://127.0.0.1:9000"; up to `connections` kept open. Null if curl
  // cannot be set up.
  static std::unique_ptr<EphemeraClient> Create(uv_loop_t* loop, std::string endpoint,
                                                long connections = 32);
  ~EphemeraClient();

  // One synchronous Lambda Invoke of `function` with `payload`, expecting an environment
  // of kind `expect` ("cold", "warm" or "pool", as X-Ephemera-Start says). A reply of 200
  // without X-Amz-Function-Error is kKept when X-Ephemera-Start is `expect` (for "cold",
  // Server-Timing must also have create and start: a container was made for it), else
  // kWrongClass; anything else is kFailed. The sample's phases are every Server-Timing
  // entry plus "client" = latency - total and, when the handler phase is there,
  // "beyond_handler" = latency - handler (all that is not the function's own time).
  void Invoke(const std::string& function, const std::string& payload, const std::string& expect,
              ProbeDone done);
  using Reply = std::function<void(int status, std::string body)>;
  // GET / POST / DELETE `path`; status 0 when the daemon cannot be reached.
  void Get(const std::string& path, Reply done);
  void Post(const std::string& path, std::string body, Reply done);
  void Delete(const std::string& path, Reply done);
  // POST `path` with a JSON `body`; `done` gets the whole reply, once, later (also when
  // the request could not start: rc CURLE_FAILED_INIT, status 0).
  using FullReply = std::function<void(HttpReply)>;
  void PostFull(const std::string& path, std::string body, FullReply done);

  const std::string& endpoint() const { return endpoint_; }
  struct Transfer;

 private:
  EphemeraClient(std::string endpoint, std::unique_ptr<docker::CurlMulti> multi);
  Transfer* Start(const std::string& method, const std::string& path, std::string body);
  void Request(const std::string& method, const std::string& path, std::string body, Reply done);

  std::string endpoint_;
  std::unique_ptr<docker::CurlMulti> multi_;
  std::map<Transfer*, std::unique_ptr<Transfer>> transfers_;  // in flight
};

// Network namespace holders for an isolated function's raw floor: containers made from
// `spec` (the daemon's holder, relabelled: runner.h FloorHolderSpec), each created and
// started before any sample needs it, lent to one sample at a time and given back once
// that sample's container is removed (its namespace is then empty again), as the
// daemon's runtime/sandbox/holders.h does. What each one cost to make (create + start)
// is kept for the report.
class FloorHolders final {
 public:
  FloorHolders(uv_loop_t* loop, docker::DockerClient* docker, docker::ContainerSpec spec);
  ~FloorHolders();
  FloorHolders(const FloorHolders&) = delete;
  FloorHolders& operator=(const FloorHolders&) = delete;

  // Makes holders, one after the other (so each one's cost is its own), until `count`
  // exist. `done` once they run, or with the first failure.
  void Prepare(int count, std::function<void(Status)> done);
  // A running holder's container id: a ready one, else one made now (counted in
  // made_on_demand(); the floor's timed path starts only after `done`).
  void Acquire(std::function<void(Status, std::string id)> done);
  // Gives a holder back; `healthy` = false (its sample's container could not be removed,
  // say) removes it instead.
  void Release(const std::string& id, bool healthy);
  // Removes every holder (those lent out included); `done` once the engine answered for
  // each. Acquire fails from then on.
  void RemoveAll(std::function<void()> done);

  int made() const { return static_cast<int>(start_ms_.size()); }
  int made_on_demand() const { return made_on_demand_; }
  int failed() const { return failed_; }
  uint64_t lent() const { return lent_; }                            // Acquire calls served
  const std::vector<double>& start_ms() const { return start_ms_; }  // create + start each
  const std::string& last_error() const { return last_error_; }

 private:
  void Make(std::function<void(Status, std::string id)> done);
  void PrepareNext();
  void Serve();
  void Remove(const std::string& id);
  void MaybeFinishRemoval();

  uv_loop_t* loop_;
  docker::DockerClient* docker_;
  docker::ContainerSpec spec_;
  std::vector<std::string> ready_;
  std::set<std::string> all_;  // ready or lent out
  std::deque<std::function<void(Status, std::string)>> waiting_;
  int prepare_target_ = 0;
  std::function<void(Status)> prepare_done_;
  int making_ = 0, removing_ = 0, failed_ = 0, made_on_demand_ = 0;
  uint64_t lent_ = 0;
  uint64_t serial_ = 0;
  std::vector<double> start_ms_;
  std::string last_error_;
  int on_demand_making_ = 0;
  bool serve_scheduled_ = false;
  bool removing_all_ = false;
  std::function<void()> removed_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Where one floor sample's container finds the benchmark's listener.
struct FloorEndpoint {
  std::string runtime_api_address;  // host network: "127.0.0.1:<port>" of the listener
  // Isolated: the holder whose namespace the container joins, and the sample's own folder
  // (holding runtime.sock), bind-mounted read-only at /run/ephemera.
  std::string holder_id;
  std::string runtime_dir;
};

class RawFloor final {
 public:
  // Builds one sample's create request for the listener Run() opened. A failure fails
  // that sample.
  using SpecBuilder =
      std::function<Status(const FloorEndpoint& endpoint, docker::ContainerSpec* out)>;

  // `holders` null: the function's container is on its own network (host, bridge, none)
  // and the listener on 127.0.0.1. Otherwise the isolated arrangement: each sample takes
  // a holder (before its clock starts), makes `runtime_dir`/<sample>/ with the listener
  // on runtime.sock in it, and gives the holder back once its container is removed.
  RawFloor(uv_loop_t* loop, docker::DockerClient* docker, SpecBuilder build_spec,
           uint64_t timeout_ms = 10000, FloorHolders* holders = nullptr,
           std::string runtime_dir = "");
  ~RawFloor();

  // `measured` runs once, when the first /next arrived (kCold) or the attempt failed.
  // `disposed` runs once afterwards, when the container is gone (or was never created).
  void Run(ProbeDone measured, std::function<void()> disposed);

  size_t in_flight() const { return attempts_.size(); }
  bool isolated() const { return holders_ != nullptr; }
  struct Attempt;

 private:
  Status OpenListener(const std::shared_ptr<Attempt>& a, FloorEndpoint* endpoint);
  void Launch(const std::shared_ptr<Attempt>& a, FloorEndpoint endpoint);
  void Finish(const std::shared_ptr<Attempt>& a, ProbeResult result);
  void MaybeDispose(const std::shared_ptr<Attempt>& a);

  uv_loop_t* loop_;
  docker::DockerClient* docker_;
  SpecBuilder build_spec_;
  uint64_t timeout_ms_;
  FloorHolders* holders_;
  std::string runtime_dir_;
  std::set<std::shared_ptr<Attempt>> attempts_;
  uint64_t serial_ = 0;
};

class DockerRun final {
 public:
  // `argv` is the whole command line, argv[0] the docker CLI. `input` goes to its stdin.
  DockerRun(uv_loop_t* loop, std::vector<std::string> argv, std::string input);
  ~DockerRun();
  // kCold when the CLI exits 0, else kFailed (with the exit code and stderr's start).
  void Run(ProbeDone done);
  const std::vector<std::string>& argv() const { return argv_; }
  struct Process;

 private:
  uv_loop_t* loop_;
  std::vector<std::string> argv_;
  std::string input_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Polls the engine until no container carries `label_filter` ("k=v") and, if `also` is
// not empty, the label `also` ("k=v") as well (the engine filters by one label here), or
// `timeout_ms` passed; `done(true)` when none is left.
void WaitUntilNoContainers(uv_loop_t* loop, docker::DockerClient* docker, std::string label_filter,
                           uint64_t timeout_ms, std::function<void(bool settled)> done,
                           std::string also = "");

// Starts `argv` (argv[0] the binary) as a child process of `loop`: stdin from nowhere,
// stdout and stderr into `log_fd`, `data` as the handle's data, `on_exit` its exit callback.
// Returns libuv's result (negative on failure). Used by ephemera-bench and ephemera-soak
// to start the daemon they measure.
int SpawnLogged(uv_loop_t* loop, UvHandle<uv_process_t>* proc, std::vector<std::string>& argv,
                int log_fd, uv_exit_cb on_exit, void* data);

// The options of every benchmark transfer to the daemon: `url`, no proxy, no signals,
// TCP_NODELAY, 120 s in all and 5 s to connect, and the body and header callbacks with
// `data`.
void SetTransferOptions(CURL* easy, const std::string& url, curl_write_callback on_body,
                        curl_write_callback on_header, void* data);
// Makes the transfer a JSON POST of `body` (which must outlive it), without waiting for
// 100-continue; returns `headers` with its two headers added (the caller frees the list).
curl_slist* SetJsonPost(CURL* easy, const std::string& body, curl_slist* headers);

// The folder of the running binary (its siblings: ephemera, ephemera-shim, ...).
std::string SelfDir();
// Now in UTC as 20261201T143000Z (default result folder names).
std::string Timestamp();
// Now in UTC as 2026-12-01T14:30:00Z (the reports' start and end times).
std::string IsoUtcNow();
// The tools' option values: a whole decimal number in [min, max], nothing else.
bool ParseNumber(const std::string& s, long min, long max, long* out);
// "TOOL: PROBLEM" and where --help is, on stderr; returns 2, the tools' status for usage
// errors.
int UsageError(const char* tool, const std::string& problem);

// The daemon a benchmark tool measures: started with SpawnLogged, stopped with SIGTERM and,
// if it has not exited `kill_after_ms` later, SIGKILL. Its exit reaches `on_exit`; whether
// Stop() asked for it is stopping(). Close() before the loop closes.
class DaemonProcess {
 public:
  using ExitFn = std::function<void(int64_t status, int signal)>;
  explicit DaemonProcess(uv_loop_t* loop) : loop_(loop), kill_timer_(loop) {}

  // libuv's result: negative if it could not be started.
  int Start(std::vector<std::string>& argv, int log_fd, ExitFn on_exit);
  // SIGTERM now; `on_killed` runs if SIGKILL is needed. Nothing if it is not running.
  void Stop(std::function<void()> on_killed, uint64_t kill_after_ms = 30000);
  void Kill();   // SIGKILL at once (a second Ctrl-C)
  void Close();  // releases the handles; the exit is no longer reported

  bool running() const { return running_; }
  bool stopping() const { return stopping_; }
  int pid() const { return pid_; }

 private:
  static void OnExit(uv_process_t* p, int64_t status, int signal);

  uv_loop_t* loop_;
  UvHandle<uv_process_t> proc_;
  Timer kill_timer_;
  ExitFn on_exit_;
  int pid_ = 0;
  bool running_ = false;
  bool stopping_ = false;
};

}  // namespace ephemera::bench
