// shim/exec_mode.cc: the exec and auto modes (see modes.h).
//
// exec: next event → run the command with the event on stdin → post stdout or an error →
// reap orphans → next event. The executable is checked before the first GET /next so a
// broken image fails its init instead of its first invocation. While the command runs,
// the idle Runtime API connection is watched (a daemon that died ends the shim, exit 3),
// and the supervisor's deadline thread kills it 1 s past the invocation's deadline.
//
// auto: the first event is run as in exec mode, except that the command's AWS_LAMBDA_
// RUNTIME_API is the shim's proxy and the run can be promoted (exec_runner.h): if the
// command sends a Runtime API request to the proxy before exiting, it is a Runtime API
// client; its first GET /next gets the event already fetched, and the shim then only
// supervises it until it exits (passthrough). Otherwise the command stays exec for good.
#include <signal.h>
#include <unistd.h>

#include "shim/exec_runner.h"
#include "shim/modes.h"
#include "shim/oom.h"
#include "shim/signals.h"
#include "shim/supervisor.h"

namespace ephemera::shim {
namespace {

constexpr size_t kTailInMessage = 2048;

std::string TailForMessage(const std::string& tail) {
  if (tail.empty()) return "(no stderr output)";
  if (tail.size() <= kTailInMessage) return tail;
  return "..." + tail.substr(tail.size() - kTailInMessage);
}

// One exec-mode environment: the command, its options, and the Runtime API.
class ExecMode {
 public:
  ExecMode(const ShimSetup& setup, std::string mode)
      : setup_(setup),
        api_(setup.api),
        mode_(std::move(mode)),
        command_(DescribeCommand(setup.argv)) {
    options_.argv = setup.argv;
    options_.on_spawned = [](pid_t pid) { SuperviseGroup(pid); };
    options_.upstream_watch = api_->IdleWatch();
  }

  // Fails the init (and returns false) if the command cannot be run.
  bool CheckCommand() {
    Status runnable = CheckExecutable(setup_.argv[0]);
    if (runnable.ok()) return true;
    ReportInitError(api_, mode_, "Runtime.InvalidEntrypoint",
                    mode_ + " mode: " + runnable.message());
    return false;
  }

  // Blocks for the next event; false means give up (exit 1).
  bool Next(Invocation* invocation, HttpResponse* response = nullptr) {
    int failures = 0;
    while (!TerminationRequested()) {
      Status st = api_->Next(invocation, response);
      if (st.ok()) return true;
      if (TerminationRequested()) break;
      if (NextFailed(api_, mode_, st, &failures)) return false;
    }
    return false;
  }

  // Runs the command for `invocation`. `promote_fd`/`on_promoted`: see exec_runner.h.
  void Run(const Invocation& invocation, ExecResult* result, int promote_fd = -1,
           std::function<void()> on_promoted = {}) {
    options_.extra_env = setup_.child_env;
    for (auto& e : InvocationEnvironment(invocation)) options_.extra_env.push_back(std::move(e));
    options_.promote_fd = promote_fd;
    options_.on_promoted = std::move(on_promoted);
    WatchDeadline(invocation.request_id, invocation.deadline_ms);
    oom_kills_before_ = ReadOomKillCount();
    RunProcess(options_, invocation.event, result);
    if (result->upstream_lost) {
      ExitRuntimeApiGone(api_->endpoint().Describe(),
                         "its connection closed while the function ran and a new one was refused");
    }
  }

  // Posts the outcome of one run; returns false if the shim should stop (the command can
  // no longer be started, or the Runtime API refused the post).
  bool Report(const Invocation& invocation, ExecResult& result) {
    ForgetDeadline(invocation.request_id);
    const std::string prefix = mode_ + " mode: ";
    Status st;
    bool keep_going = true;
    switch (result.outcome) {
      case ExecResult::Outcome::kExecFailed: {
        std::string message = prefix + result.spawn_error;
        ShimLog(message);
        st = api_->PostError(invocation.request_id, "Runtime.InvalidEntrypoint", message);
        keep_going = false;
        break;
      }
      case ExecResult::Outcome::kSignaled: {
        long long oom_kills = result.signal == SIGKILL ? ReadOomKillCount() : -1;
        if (oom_kills_before_ >= 0 && oom_kills > oom_kills_before_) {
          // What AWS Lambda reports for a runtime the OOM killer took.
          ShimLog(prefix + command_ + " was killed by the OOM killer (memory cgroup oom_kill " +
                  std::to_string(oom_kills_before_) + " -> " + std::to_string(oom_kills) +
                  ", request " + invocation.request_id + ")");
          st = api_->PostError(invocation.request_id, "Runtime.OutOfMemory",
                               "RequestId: " + invocation.request_id +
                                   " Error: Runtime exited with error: signal: killed");
          break;
        }
        std::string what = prefix + command_ + " was killed by " + DescribeSignal(result.signal);
        ShimLog(what + " (request " + invocation.request_id + ")");
        std::string message = what + "; stderr: " + TailForMessage(result.stderr_tail);
        st = api_->PostError(invocation.request_id, "Function.Signal", message);
        break;
      }
      case ExecResult::Outcome::kExited:
        if (result.exit_code != 0) {
          std::string what =
              prefix + command_ + " exited with status " + std::to_string(result.exit_code);
          ShimLog(what + " (request " + invocation.request_id + ")");
          std::string message = what + "; stderr: " + TailForMessage(result.stderr_tail);
          st = api_->PostError(invocation.request_id, "Function.ExitStatus", message);
        } else if (result.output_truncated) {
          ShimLog(prefix + command_ + " wrote more than 64 MiB to stdout");
          st = api_->PostError(invocation.request_id, "Function.ResponseTooLarge",
                               prefix + command_ + " wrote more than 64 MiB to stdout");
        } else {
          st = api_->PostResponse(invocation.request_id, std::move(result.output),
                                  "application/octet-stream");
        }
        break;
    }
    ReapChildren();
    if (!st.ok()) {
      ShimLog(prefix + "cannot post the result of " + invocation.request_id + ": " + st.message());
      if (!api_->IsReachable()) {
        ExitRuntimeApiGone(api_->endpoint().Describe(), "posting a result failed");
      }
      return false;
    }
    return keep_going;
  }

  // The exec loop proper, until SIGTERM (0) or a failure (1).
  int Loop() {
    while (!TerminationRequested()) {
      Invocation invocation;
      if (!Next(&invocation)) return TerminationRequested() ? 0 : 1;
      ExecResult result;
      Run(invocation, &result);
      if (!Report(invocation, result)) return 1;
    }
    return 0;
  }

  const std::string& command() const { return command_; }

 private:
  const ShimSetup& setup_;
  RuntimeApiClient* api_;
  std::string mode_;
  std::string command_;
  ExecOptions options_;
  long long oom_kills_before_ = -1;
};

}  // namespace

int RunExecMode(const ShimSetup& setup) {
  ExecMode exec(setup, "exec");
  if (!exec.CheckCommand()) return 1;
  return exec.Loop();
}

int RunAutoMode(const ShimSetup& setup) {
  ExecMode exec(setup, "auto");
  if (!exec.CheckCommand()) return 1;
  Invocation invocation;
  HttpResponse next_response;
  if (!exec.Next(&invocation, &next_response)) return TerminationRequested() ? 0 : 1;
  setup.decision->Arm(ReplayableResponse(next_response));
  const std::string client_line = "auto mode: " + exec.command() + " is a Runtime API client";
  ExecResult result;
  exec.Run(invocation, &result, setup.decision->fd(), [&] {
    ShimLog(client_line);
    SetSupervisorMode("passthrough");
    // The command talks through the proxy now; an idle connection of our own would only
    // be timed out by the daemon.
    setup.api->Close();
  });
  if (result.promoted || !setup.decision->SettleExec()) {
    if (!result.promoted) {
      // It asked for its event and exited before the promotion was noticed.
      ShimLog(client_line);
      ssize_t ignored = write(1, result.output.data(), result.output.size());
      (void)ignored;
    }
    // A Runtime API client's exit ends the environment, as in passthrough mode.
    if (result.outcome == ExecResult::Outcome::kExecFailed) return 1;
    return result.outcome == ExecResult::Outcome::kSignaled ? 128 + result.signal
                                                            : result.exit_code;
  }
  ShimLog("auto mode: " + exec.command() + " runs as exec");
  if (!exec.Report(invocation, result)) return 1;
  return exec.Loop();
}

}  // namespace ephemera::shim
