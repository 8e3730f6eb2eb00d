// shim/oom.cc: see oom.h.
#include "shim/oom.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace ephemera::shim {
namespace {

// Reads a small file whole; false if it cannot be opened.
bool ReadSmallFile(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && out->size() < 65536) {
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

}  // namespace

long long ParseOomKillCount(std::string_view text) {
  constexpr std::string_view kKey = "oom_kill ";  // not "oom_kill_disable"
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    if (line.substr(0, kKey.size()) == kKey) {
      long long n = 0;
      bool digits = false;
      for (char c : line.substr(kKey.size())) {
        if (c < '0' || c > '9') break;
        n = n * 10 + (c - '0');
        digits = true;
      }
      return digits ? n : -1;
    }
    pos = eol + 1;
  }
  return -1;
}

long long ReadOomKillCount() {
  const char* dir = getenv("EPHEMERA_CGROUP_MEMORY_DIR");
  std::string candidates[2];
  if (dir != nullptr && *dir != '\0') {
    candidates[0] = std::string(dir) + "/memory.events";
    candidates[1] = std::string(dir) + "/memory.oom_control";
  } else {
    candidates[0] = "/sys/fs/cgroup/memory.events";
    candidates[1] = "/sys/fs/cgroup/memory/memory.oom_control";
  }
  std::string text;
  for (const auto& path : candidates) {
    if (ReadSmallFile(path, &text)) return ParseOomKillCount(text);
  }
  return -1;
}

}  // namespace ephemera::shim
