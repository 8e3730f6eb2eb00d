// Fuzz target: the log-mark scanner (runtime/sandbox/log_marks.h), which reads a
// function's output as the engine's attach stream carries it.
//
// Input: one control byte, then the stream's bytes. The control byte sets the frame size
// the bytes are fed in (1 to 256).
// Properties (the target aborts if one fails): the output passed on, with each reported
// mark written back where it was reported, followed by the held bytes, is the input byte
// for byte; every reported id is 1..kMaxLogMarkId bytes without the separator; what is
// held could still become a mark; and feeding the same bytes in one piece reports the
// same output and marks.
// Thread: libFuzzer's. Depends on: sandbox (log_marks), shim (log_mark).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sandbox/log_marks.h"
#include "shim/log_mark.h"

namespace {

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

struct Result {
  std::string rebuilt;  // output with the marks written back
  std::string text;     // output only
  std::vector<std::string> ids;
  std::string held;
};

Result Scan(std::string_view stream, size_t frame) {
  ephemera::sandbox::LogMarkScanner scanner;
  Result r;
  for (size_t at = 0; at < stream.size(); at += frame) {
    scanner.Feed(
        stream.substr(at, frame),
        [&](std::string_view text) {
          r.rebuilt.append(text);
          r.text.append(text);
        },
        [&](std::string_view id) {
          Check(!id.empty() && id.size() <= ephemera::shim::kMaxLogMarkId, "id length");
          Check(id.find(ephemera::shim::kLogMarkEnd) == std::string_view::npos, "id separator");
          r.rebuilt.append(ephemera::shim::LogMark(id));
          r.ids.emplace_back(id);
        });
  }
  r.held = scanner.held();
  r.rebuilt.append(r.held);
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t frame = static_cast<size_t>(data[0]) + 1;
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  Result framed = Scan(stream, frame);
  Check(framed.rebuilt == stream, "output and marks rebuild the stream");
  const std::string_view prefix = ephemera::shim::kLogMarkPrefix;
  if (!framed.held.empty()) {
    std::string_view held = framed.held;
    Check(held.front() == prefix.front(), "held bytes start like a mark");
    Check(held.size() <= prefix.size() + ephemera::shim::kMaxLogMarkId, "held bytes are bounded");
    std::string_view head = held.substr(0, prefix.size());
    Check(prefix.substr(0, head.size()) == head, "held bytes are a mark's start");
  }
  Result whole = Scan(stream, stream.size() + 1);
  Check(whole.text == framed.text && whole.ids == framed.ids && whole.held == framed.held,
        "frames change nothing");
  return 0;
}
