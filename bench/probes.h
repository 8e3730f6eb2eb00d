// bench/probes.h: the three ways the benchmark starts a cold container, one sample each.
//
//   EphemeraClient  POST /2015-03-31/functions/{name}/invocations to the daemon; the sample
//                   is the client-observed time plus the reply's Server-Timing phases.
//   RawFloor        what any emulator on this engine must pay at least: create (same spec
//                   the daemon would send), register the wait, start, and the moment the
//                   container's first GET /2018-06-01/runtime/invocation/next reaches a
//                   plain listener of ours. Never answered: the container is removed after.
//   DockerRun       `docker run --rm -i ...` through the CLI, event on stdin, until it exits.
//
// Thread: the loop thread only; nothing blocks. Callbacks: each Run/Invoke calls `done`
// exactly once, later, never from inside the call. Destroying a probe object drops pending
// callbacks (containers then stay behind: the runner reaps them by label at the end).
// Depends on: runtime/docker (DockerClient, CurlMulti), runtime/http (the listener), core.
#pragma once

#include <curl/curl.h>
#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench/results.h"
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

class EphemeraClient final {
 public:
  // `endpoint` like "http://127.0.0.1:9000". Null if curl cannot be set up.
  static std::unique_ptr<EphemeraClient> Create(uv_loop_t* loop, std::string endpoint);
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

class RawFloor final {
 public:
  // Builds one sample's create request for a Runtime API at `runtime_api_address`
  // ("127.0.0.1:<port>", the listener Run() opened). A failure fails that sample.
  using SpecBuilder =
      std::function<Status(const std::string& runtime_api_address, docker::ContainerSpec* out)>;

  RawFloor(uv_loop_t* loop, docker::DockerClient* docker, SpecBuilder build_spec,
           uint64_t timeout_ms = 10000);
  ~RawFloor();

  // `measured` runs once, when the first /next arrived (kCold) or the attempt failed.
  // `disposed` runs once afterwards, when the container is gone (or was never created).
  void Run(ProbeDone measured, std::function<void()> disposed);

  size_t in_flight() const { return attempts_.size(); }
  struct Attempt;

 private:
  void Finish(const std::shared_ptr<Attempt>& a, ProbeResult result);
  void MaybeDispose(const std::shared_ptr<Attempt>& a);

  uv_loop_t* loop_;
  docker::DockerClient* docker_;
  SpecBuilder build_spec_;
  uint64_t timeout_ms_;
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

}  // namespace ephemera::bench
