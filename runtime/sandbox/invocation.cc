#include "runtime/sandbox/invocation.h"

#include <cstdio>

namespace ephemera::sandbox {

double PhaseTimes::overhead() const {
  double known = 0;
  for (double p : {queue, image, create, start, init, handler}) {
    if (p > 0) known += p;
  }
  return total > known ? total - known : 0;
}

std::string PhaseTimes::ServerTiming() const {
  std::string out;
  char buf[48];
  auto add = [&](const char* name, double ms) {
    if (ms < 0) return;
    std::snprintf(buf, sizeof buf, "%s%s;dur=%.1f", out.empty() ? "" : ", ", name, ms);
    out += buf;
  };
  add("queue", queue);
  add("image", image);
  add("create", create);
  add("start", start);
  add("init", init);
  add("handler", handler);
  add("overhead", total >= 0 ? overhead() : -1);
  add("total", total);
  return out;
}

}  // namespace ephemera::sandbox
