// shim/passthrough_mode.cc: the passthrough mode (see modes.h).
//
// The command brings its own Runtime API client (an AWS Lambda base image, a stock runtime
// interface client). The shim starts it once with fds 0-2 inherited and the environment
// unchanged except for the proxy wiring (ShimSetup::child_env), then only supervises: the
// proxy relays its requests (and tracks their deadlines), SIGTERM is forwarded to its
// process group (SIGKILL after 2 s), and the shim exits with its status when it exits. No
// result is posted on its behalf: the daemon sees the container exit.
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "shim/exec_runner.h"
#include "shim/modes.h"
#include "shim/signals.h"
#include "shim/supervisor.h"

namespace ephemera::shim {
namespace {

constexpr int kStopGraceMs = 2000;

long long NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

}  // namespace

int RunPassthroughMode(const ShimSetup& setup) {
  RuntimeApiClient* api = setup.api;
  Status runnable = CheckExecutable(setup.argv[0]);
  if (!runnable.ok()) {
    ReportInitError(api, "passthrough", "Runtime.InvalidEntrypoint",
                    "passthrough mode: " + runnable.message());
    return 1;
  }
  // The command talks through the proxy; an idle connection of our own would only be
  // timed out by the daemon.
  api->Close();
  pid_t pid = -1;
  int exec_errno = 0;
  Status st = Spawn(setup.argv, setup.child_env, 0, 1, 2, true, &pid, &exec_errno);
  if (!st.ok()) {
    ReportInitError(api, "passthrough", "Runtime.InvalidEntrypoint",
                    "passthrough mode: " + st.message());
    return 1;
  }
  SuperviseGroup(pid);
  long long kill_at = -1;
  bool forwarded = false;
  while (true) {
    int status = 0;
    if (ReapChildren(pid, &status)) return ExitCodeOf(status);
    if (TerminationRequested() && !forwarded) {
      forwarded = true;
      if (kill(-pid, SIGTERM) != 0) kill(pid, SIGTERM);
      kill_at = NowMs() + kStopGraceMs;
    }
    long long now = NowMs();
    if (kill_at >= 0 && now >= kill_at) {
      if (kill(-pid, SIGKILL) != 0) kill(pid, SIGKILL);
      kill_at = -1;
    }
    // SIGCHLD and SIGTERM arrive through the self-pipe; the timeout is a backstop against
    // a lost wake-up and the SIGKILL deadline.
    int timeout = kill_at >= 0 ? static_cast<int>(kill_at - now) : 1000;
    if (timeout > 1000) timeout = 1000;
    struct pollfd p = {SignalPipeFd(), POLLIN, 0};
    if (poll(&p, p.fd >= 0 ? 1 : 0, timeout) > 0) DrainSignalPipe();
  }
}

}  // namespace ephemera::shim
