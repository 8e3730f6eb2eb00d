// shim/supervisor.cc: see supervisor.h.
#include "shim/supervisor.h"

#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>
#include <vector>

#include "shim/modes.h"
#include "shim/signals.h"

namespace ephemera::shim {
namespace {

long long NowEpochMs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// Process-wide state. Never destroyed: the deadline thread may run until _exit.
struct State {
  std::mutex mutex;
  std::condition_variable changed;
  std::string mode = "shim";
  pid_t group = -1;
  std::vector<std::pair<std::string, long long>> deadlines;  // few: one per open invocation
  bool thread_started = false;
};

State& state() {
  static State* s = new State;
  return *s;
}

// Held by whichever exit began first, until the process is gone.
std::mutex& ExitMutex() {
  static std::mutex* m = new std::mutex;
  return *m;
}

[[noreturn]] void KillAndExit(int code, const std::string& line) {
  ExitMutex().lock();  // never unlocked: a second exit waits here until _exit
  pid_t group;
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    group = state().group;
  }
  ShimLog(line);
  if (group > 0 && kill(-group, SIGKILL) != 0) kill(group, SIGKILL);
  _exit(code);
}

// The deadline thread: sleeps until the earliest deadline plus the grace, re-checking at
// least every second so a change of the wall clock is noticed.
void WatchDeadlines() {
  State& s = state();
  std::unique_lock<std::mutex> lock(s.mutex);
  while (true) {
    if (s.deadlines.empty()) {
      s.changed.wait(lock);
      continue;
    }
    const auto* earliest = &s.deadlines.front();
    for (const auto& d : s.deadlines) {
      if (d.second < earliest->second) earliest = &d;
    }
    long long kill_at = earliest->second + kDeadlineGraceMs;
    long long now = NowEpochMs();
    if (now >= kill_at) {
      std::string line = s.mode + " mode: request " + earliest->first + " still running " +
                         std::to_string(now - earliest->second) +
                         " ms past its deadline; killing the function and exiting";
      lock.unlock();
      KillAndExit(kExitDeadline, line);
    }
    long long wait_ms = kill_at - now < 1000 ? kill_at - now : 1000;
    s.changed.wait_for(lock, std::chrono::milliseconds(wait_ms));
  }
}

}  // namespace

void ExitShim(int code) {
  ExitMutex().lock();
  exit(code);
}

void SetSupervisorMode(std::string_view mode) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().mode.assign(mode);
}

void SuperviseGroup(pid_t group) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().group = group;
}

void WatchDeadline(std::string_view request_id, long long deadline_epoch_ms) {
  if (deadline_epoch_ms <= 0) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  bool found = false;
  for (auto& d : s.deadlines) {
    if (d.first == request_id) {
      d.second = deadline_epoch_ms;
      found = true;
    }
  }
  if (!found) s.deadlines.emplace_back(std::string(request_id), deadline_epoch_ms);
  if (!s.thread_started) {
    s.thread_started = true;
    StartThreadWithoutSignals(WatchDeadlines).detach();
  }
  s.changed.notify_all();
}

void ForgetDeadline(std::string_view request_id) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  for (size_t i = 0; i < s.deadlines.size(); ++i) {
    if (s.deadlines[i].first == request_id) {
      s.deadlines.erase(s.deadlines.begin() + static_cast<long>(i));
      s.changed.notify_all();
      return;
    }
  }
}

void ExitRuntimeApiGone(std::string_view where, std::string_view why) {
  std::string mode;
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    mode = state().mode;
  }
  KillAndExit(kExitRuntimeApiGone, mode + " mode: the Runtime API at " + std::string(where) +
                                       " is gone (" + std::string(why) +
                                       "); killing the function and exiting");
}

void ExitKillingChildren(int code, std::string_view message) {
  std::string mode;
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    mode = state().mode;
  }
  KillAndExit(code, mode + " mode: " + std::string(message));
}

}  // namespace ephemera::shim
