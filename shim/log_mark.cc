// shim/log_mark.cc: see log_mark.h.
#include "shim/log_mark.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>

#include "shim/exec_runner.h"

namespace ephemera::shim {
namespace {

std::mutex& MarkMutex() {
  static std::mutex mutex;
  return mutex;
}

// Ids whose mark is owed. A runtime that never posts (killed, timed out) leaves its id
// here; the set is capped so such leftovers cannot grow without bound.
std::set<std::string, std::less<>>& Owed() {
  static auto* owed = new std::set<std::string, std::less<>>();
  return *owed;
}
constexpr size_t kMaxOwed = 64;

// The relay: ids waiting for the main thread, and how many it has served so far.
struct Relay {
  std::mutex mutex;
  std::condition_variable served_cv;
  bool open = false;
  int pipe[2] = {-1, -1};
  std::deque<std::string> waiting;
  unsigned long long queued = 0, served = 0;
};

Relay& TheRelay() {
  static auto* relay = new Relay();
  return *relay;
}

constexpr auto kRelayWait = std::chrono::seconds(1);

}  // namespace

std::string LogMark(std::string_view request_id) {
  std::string mark(kLogMarkPrefix);
  mark.append(request_id);
  mark.push_back(kLogMarkEnd);
  return mark;
}

void ExpectLogMark(std::string_view request_id) {
  if (request_id.empty() || request_id.size() > kMaxLogMarkId) return;
  std::lock_guard<std::mutex> lock(MarkMutex());
  auto& owed = Owed();
  if (owed.size() >= kMaxOwed) owed.clear();
  owed.emplace(request_id);
}

bool WriteLogMarkFor(std::string_view request_id) {
  {
    std::lock_guard<std::mutex> lock(MarkMutex());
    auto it = Owed().find(request_id);
    if (it == Owed().end()) return false;
    Owed().erase(it);
  }
  const std::string mark = LogMark(request_id);
  WriteAllBlocking(1, mark.data(), mark.size());
  WriteAllBlocking(2, mark.data(), mark.size());
  return true;
}

void WriteLogMarkInOrder(std::string_view request_id) {
  Relay& relay = TheRelay();
  std::unique_lock<std::mutex> lock(relay.mutex);
  if (!relay.open) {
    lock.unlock();
    WriteLogMarkFor(request_id);
    return;
  }
  relay.waiting.emplace_back(request_id);
  const unsigned long long ticket = ++relay.queued;
  char byte = 1;
  ssize_t ignored = write(relay.pipe[1], &byte, 1);
  (void)ignored;
  bool served = relay.served_cv.wait_for(lock, kRelayWait, [&] { return relay.served >= ticket; });
  lock.unlock();
  // Past the wait the relay's thread is stuck elsewhere: better a mark slightly early than
  // none (WriteLogMarkFor writes an id once, so a late Serve writes nothing more).
  if (!served) WriteLogMarkFor(request_id);
}

int OpenLogMarkRelay() {
  Relay& relay = TheRelay();
  std::lock_guard<std::mutex> lock(relay.mutex);
  if (relay.pipe[0] < 0 && pipe2(relay.pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    relay.pipe[0] = relay.pipe[1] = -1;
    return -1;
  }
  relay.open = true;
  return relay.pipe[0];
}

void ServeLogMarkRelay() {
  Relay& relay = TheRelay();
  std::deque<std::string> ids;
  unsigned long long upto;
  {
    std::lock_guard<std::mutex> lock(relay.mutex);
    char buf[64];
    while (relay.pipe[0] >= 0 && read(relay.pipe[0], buf, sizeof buf) > 0) {
    }
    ids.swap(relay.waiting);
    upto = relay.queued;
  }
  for (const std::string& id : ids) WriteLogMarkFor(id);
  {
    std::lock_guard<std::mutex> lock(relay.mutex);
    relay.served = upto;
  }
  relay.served_cv.notify_all();
}

void CloseLogMarkRelay() {
  ServeLogMarkRelay();
  Relay& relay = TheRelay();
  {
    std::lock_guard<std::mutex> lock(relay.mutex);
    relay.open = false;
  }
  ServeLogMarkRelay();  // one queued between the two
}

}  // namespace ephemera::shim
