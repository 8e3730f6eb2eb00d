#include "bench/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace ephemera::bench {

Progress::Progress(int total, int line_every)
    : total_(std::max(total, 1)), line_every_(std::max(line_every, 1)), tty_(::isatty(2) == 1) {}

void Progress::Clear() {
  if (bar_shown_) std::fprintf(stderr, "\r\033[K");
  bar_shown_ = false;
}

void Progress::Tick(const std::string& what, double ms, bool kept) {
  ++done_;
  if (!kept) ++dropped_;
  int total = std::max(total_, done_);
  if (tty_) {
    constexpr int kWidth = 30;
    int filled = done_ * kWidth / total;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r\033[K[%s] %d/%d  %-22s %8.1f ms%s", bar.c_str(), done_, total,
                 what.c_str(), ms,
                 dropped_ > 0 ? ("  (" + std::to_string(dropped_) + " not kept)").c_str() : "");
    std::fflush(stderr);
    bar_shown_ = true;
  } else if (done_ % line_every_ == 0 || done_ == total) {
    std::fprintf(stderr, "ephemera-bench: %d/%d samples (last: %s %.1f ms; %d not kept)\n", done_,
                 total, what.c_str(), ms, dropped_);
  }
}

void Progress::Say(const std::string& line) {
  Clear();
  std::fprintf(stderr, "ephemera-bench: %s\n", line.c_str());
}

void Progress::Finish() {
  Clear();
}

}  // namespace ephemera::bench
