// shim/log_mark.cc: see log_mark.h.
#include "shim/log_mark.h"

#include <unistd.h>

#include <mutex>
#include <set>

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

void WriteAll(int fd, const std::string& text) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

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
  WriteAll(1, mark);
  WriteAll(2, mark);
  return true;
}

}  // namespace ephemera::shim
