// bench/progress.h: progress on stderr while samples are taken.
//
// On a terminal: one bar redrawn in place ("\r"), with the sample just taken. Otherwise
// (a log file, CI): one plain line every `line_every` samples, so logs stay readable.
// Thread: the loop thread. Depends on: nothing.
#pragma once

#include <string>

namespace ephemera::bench {

class Progress {
 public:
  explicit Progress(int total, int line_every = 25);
  // One sample done. `what` names the series (and level); `ms` is its latency.
  void Tick(const std::string& what, double ms, bool kept);
  // A line of its own (the bar is cleared first and redrawn by the next Tick).
  void Say(const std::string& line);
  // Clears the bar.
  void Finish();
  void set_total(int total) { total_ = total; }
  bool tty() const { return tty_; }

 private:
  void Clear();
  int total_;
  int done_ = 0;
  int dropped_ = 0;
  int line_every_;
  bool tty_;
  bool bar_shown_ = false;
};

}  // namespace ephemera::bench
