// shim/signals.cc: see signals.h.
#include "shim/signals.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace ephemera::shim {
namespace {

int g_pipe[2] = {-1, -1};
volatile sig_atomic_t g_terminate = 0;

void OnSignal(int signo) {
  int saved = errno;
  if (signo == SIGTERM || signo == SIGINT) g_terminate = 1;
  char byte = static_cast<char>(signo);
  if (g_pipe[1] >= 0) {
    ssize_t ignored = write(g_pipe[1], &byte, 1);  // full pipe: a wake-up is pending anyway
    (void)ignored;
  }
  errno = saved;
}

void Catch(int signo) {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR
  if (signo == SIGCHLD) sa.sa_flags |= SA_NOCLDSTOP;
  sigaction(signo, &sa, nullptr);
}

}  // namespace

std::thread StartThreadWithoutSignals(std::function<void()> body) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // the new thread inherits the mask
  std::thread thread(std::move(body));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return thread;
}

void InstallSignalHandlers(bool termination) {
  if (g_pipe[0] < 0) {
    if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      g_pipe[0] = g_pipe[1] = -1;
    }
    signal(SIGPIPE, SIG_IGN);
    Catch(SIGCHLD);
  }
  if (termination) {
    Catch(SIGTERM);
    Catch(SIGINT);
  }
}

int SignalPipeFd() noexcept {
  return g_pipe[0];
}

bool DrainSignalPipe() noexcept {
  bool term = false;
  char buf[64];
  while (g_pipe[0] >= 0) {
    ssize_t n = read(g_pipe[0], buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == SIGTERM || buf[i] == SIGINT) term = true;
    }
  }
  return term;
}

bool TerminationRequested() noexcept {
  return g_terminate != 0;
}

}  // namespace ephemera::shim
