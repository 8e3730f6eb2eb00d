// shim/exec_mode.cc: the exec mode loop (see modes.h).
//
// next event → run the command with the event on stdin → post stdout or an error →
// reap orphans → next event. The executable is checked before the first GET /next so a
// broken image fails its init instead of its first invocation.
#include <unistd.h>

#include "shim/exec_runner.h"
#include "shim/modes.h"
#include "shim/signals.h"

namespace ephemera::shim {
namespace {

constexpr int kMaxNextFailures = 3;
constexpr size_t kTailInMessage = 2048;

std::string TailForMessage(const std::string& tail) {
  if (tail.empty()) return "(no stderr output)";
  if (tail.size() <= kTailInMessage) return tail;
  return "..." + tail.substr(tail.size() - kTailInMessage);
}

// Posts the outcome of one run; returns false if the shim should stop (the command can
// no longer be started, or the Runtime API refused the post).
bool ReportResult(RuntimeApiClient* api, const Invocation& invocation,
                  const std::vector<std::string>& argv, ExecResult& result) {
  const std::string command = DescribeCommand(argv);
  Status st;
  bool keep_going = true;
  switch (result.outcome) {
    case ExecResult::Outcome::kExecFailed: {
      std::string message = "exec mode: " + result.spawn_error;
      ShimLog(message);
      st = api->PostError(invocation.request_id, "Runtime.InvalidEntrypoint", message);
      keep_going = false;
      break;
    }
    case ExecResult::Outcome::kSignaled: {
      std::string what =
          "exec mode: " + command + " was killed by " + DescribeSignal(result.signal);
      ShimLog(what + " (request " + invocation.request_id + ")");
      std::string message = what + "; stderr: " + TailForMessage(result.stderr_tail);
      st = api->PostError(invocation.request_id, "Function.Signal", message);
      break;
    }
    case ExecResult::Outcome::kExited:
      if (result.exit_code != 0) {
        std::string what =
            "exec mode: " + command + " exited with status " + std::to_string(result.exit_code);
        ShimLog(what + " (request " + invocation.request_id + ")");
        std::string message = what + "; stderr: " + TailForMessage(result.stderr_tail);
        st = api->PostError(invocation.request_id, "Function.ExitStatus", message);
      } else if (result.output_truncated) {
        ShimLog("exec mode: " + command + " wrote more than 64 MiB to stdout");
        st = api->PostError(invocation.request_id, "Function.ResponseTooLarge",
                            "exec mode: " + command + " wrote more than 64 MiB to stdout");
      } else {
        st = api->PostResponse(invocation.request_id, std::move(result.output),
                               "application/octet-stream");
      }
      break;
  }
  if (!st.ok()) {
    ShimLog("exec mode: cannot post the result of " + invocation.request_id + ": " + st.message());
    return false;
  }
  return keep_going;
}

}  // namespace

int RunExecMode(RuntimeApiClient* api, const std::vector<std::string>& argv) {
  Status runnable = CheckExecutable(argv[0]);
  if (!runnable.ok()) {
    std::string message = "exec mode: " + runnable.message();
    ShimLog(message);
    Status st = api->PostInitError("Runtime.InvalidEntrypoint", message);
    if (!st.ok()) ShimLog("exec mode: cannot post the init error: " + st.message());
    return 1;
  }
  ExecOptions options;
  options.argv = argv;
  int failures = 0;
  while (!TerminationRequested()) {
    Invocation invocation;
    Status st = api->Next(&invocation);
    if (!st.ok()) {
      if (TerminationRequested()) break;
      ShimLog("exec mode: " + st.message());
      if (++failures >= kMaxNextFailures) return 1;
      continue;
    }
    failures = 0;
    options.extra_env = InvocationEnvironment(invocation);
    ExecResult result;
    RunProcess(options, invocation.event, &result);
    bool keep_going = ReportResult(api, invocation, argv, result);
    ReapChildren();
    if (!keep_going) return 1;
  }
  return 0;
}

}  // namespace ephemera::shim
