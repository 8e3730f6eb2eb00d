// shim/modes.h: the shim's modes, as loops over the Runtime API.
//
// main() (shim_main.cc) reads the environment, connects to the Runtime API, starts the
// local proxy and the service forwards, and hands a ShimSetup to one mode:
//   exec         per event, run the command with the event on stdin; stdout is the answer
//   http         start the command once as a web service; each event becomes a request
//   passthrough  start the command once; it brings its own Runtime API client and talks
//                through the proxy; the shim exits with the command's status
//   auto         take the first event, start the command as exec would, and watch: if it
//                asks the proxy for GET /next it gets that event and the shim behaves as
//                passthrough from then on; if it exits without asking, exec it is
// Every mode runs until SIGTERM (exit code 0; passthrough and auto-as-client: the
// command's status) or an unrecoverable error, and reports what went wrong to the Runtime
// API and as one "ephemera-shim: <mode> mode: ..." line on stderr. Exit codes: 1 failure,
// 2 bad configuration, 3 Runtime API gone (supervisor.h), 4 deadline exceeded.
// Error types posted:
//   Runtime.InvalidEntrypoint  the command is missing / not executable (init error, or an
//                              invocation error if exec fails later), or no command at all
//   Runtime.ConfigInvalid      init: a malformed EPHEMERA_* variable, or a listener that
//                              cannot be opened
//   Runtime.OutOfMemory        exec: SIGKILLed while the memory cgroup counted an OOM kill
//   Function.ExitStatus        exec: the command exited non-zero
//   Function.Signal            exec: the command was killed by a signal
//   Function.ResponseTooLarge  exec: stdout exceeded 64 MiB
//   Runtime.ServiceNotReady    http: the service did not accept connections in time
//   Runtime.ServiceExited      http: the service process exited
//   Runtime.ServiceUnreachable http: the request to the service failed
//   Function.HttpStatus        http, raw events: the service answered >= 400
//   Runtime.InvalidEvent       http: an API Gateway event could not be mapped
// Ownership: main() owns the ShimSetup and everything it points to, and never frees them
// (the proxy's threads use them until the process exits).
// Thread: the main thread (the proxy's threads only call AutoDecision and supervisor.h).
// Depends on: the rest of shim/.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "shim/http_wire.h"
#include "shim/proxy.h"
#include "shim/runtime_api.h"

namespace ephemera::shim {

// Writes "ephemera-shim: <line>\n" to stderr in one write; newlines inside `line` are
// written as "\n" so every message stays one line.
void ShimLog(std::string_view line);

// Joins argv for messages: "/bin/sh -c 'tr a-z A-Z'" style, shortened if long.
std::string DescribeCommand(const std::vector<std::string>& argv);

// Extra environment for one invocation: _X_AMZN_TRACE_ID, AWS_LAMBDA_REQUEST_ID,
// AWS_LAMBDA_DEADLINE_MS, AWS_LAMBDA_INVOKED_FUNCTION_ARN (set only when known).
std::vector<std::string> InvocationEnvironment(const Invocation& invocation);

// A wait status as a shell reports it: the exit code, or 128 + the signal number.
int ExitCodeOf(int wait_status);

// Auto mode's verdict on the command, shared between the proxy's threads (which see the
// command's Runtime API requests) and the main thread (which sees it exit). The first to
// decide wins: a Runtime API request before the exit makes it a client, an exit before
// any request makes it exec.
class AutoDecision {
 public:
  enum class Verdict { kUndecided, kRuntimeClient, kExec };
  AutoDecision();

  // Main thread, once the first event is fetched: `next_response` is the whole HTTP
  // response to hand to the command's first GET /next. Until armed nothing is decided.
  void Arm(std::string next_response);
  // Proxy thread, for every request under /2018-06-01/runtime/: decides "client" if still
  // undecided; true (with *response) for the first GET /next of a client.
  bool OnRuntimeRequest(const WireHead& request, std::string* response);
  // Main thread, after the command exited: decides exec if still undecided. False if the
  // command had become a client first.
  bool SettleExec();
  Verdict verdict();
  // Readable once the verdict is kRuntimeClient (for RunProcess's promote_fd).
  int fd() const noexcept { return pipe_[0]; }

 private:
  std::mutex mutex_;
  Verdict verdict_ = Verdict::kUndecided;
  bool armed_ = false;
  bool handed_out_ = false;
  std::string next_response_;
  int pipe_[2] = {-1, -1};
};

// The whole HTTP response replayed for auto mode's first GET /next: the status and every
// header as the daemon sent them, framed with Content-Length.
std::string ReplayableResponse(const HttpResponse& response);

// What main() prepared for whichever mode runs. Owned by main(), never destroyed.
struct ShimSetup {
  RuntimeApiClient* api = nullptr;     // connected to the upstream
  std::vector<std::string> argv;       // the command (argv[1..] of the shim), not empty
  std::vector<std::string> child_env;  // for every child, before per-invocation variables
  RuntimeApiProxy* proxy = nullptr;    // the local proxy, if one listens
  AutoDecision* decision = nullptr;    // auto mode only
};

// The proxy hooks every mode uses: deadlines of invocations that pass through (supervisor.h),
// auto mode's decision (if `decision`), and ExitRuntimeApiGone when the upstream is gone.
ProxyHooks ShimProxyHooks(const Endpoint& upstream, AutoDecision* decision);

// After a failed GET /next: logs it; exits (ExitRuntimeApiGone) if the Runtime API is no
// longer reachable; returns true once `*failures` reached the limit (the caller exits 1).
bool NextFailed(RuntimeApiClient* api, std::string_view mode, const Status& status, int* failures);

// Posts an init error of `type` and logs `message`.
void ReportInitError(RuntimeApiClient* api, std::string_view mode, std::string_view type,
                     const std::string& message);

int RunExecMode(const ShimSetup& setup);
int RunAutoMode(const ShimSetup& setup);
int RunPassthroughMode(const ShimSetup& setup);

struct HttpModeConfig {
  uint16_t port = 8080;         // EPHEMERA_HTTP_PORT
  std::string path = "/";       // EPHEMERA_HTTP_PATH: where non-API-Gateway events go
  int init_timeout_ms = 10000;  // EPHEMERA_INIT_TIMEOUT_MS
};

// http mode: start argv once, wait for it to listen on 127.0.0.1:port, then forward
// each event to it as an HTTP request (see apigw.h for API Gateway events).
int RunHttpMode(const ShimSetup& setup, const HttpModeConfig& config);

}  // namespace ephemera::shim
