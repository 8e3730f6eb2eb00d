#include "runtime/sandbox/invocation.h"

#include <charconv>

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
  out.reserve(128);
  // to_chars rather than snprintf("%.1f"): one header per invocation, and printf's
  // floating-point path is slow.
  auto add = [&](const char* name, double ms) {
    if (ms < 0) return;
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ms, std::chars_format::fixed, 1);
    if (ec != std::errc()) return;
    if (!out.empty()) out += ", ";
    out += name;
    out += ";dur=";
    out.append(buf, end);
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
