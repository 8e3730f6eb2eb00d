// runtime/sandbox/log_marks.h: finds the runtime's log marks in one attach stream.
//
// A runtime asked for it writes a mark on stdout and on stderr just before it posts an
// invocation's result (the format is in shim/log_mark.h; docs/protocols.md, "Log marks").
// The environment feeds each stream's bytes to its own scanner, which passes the output
// on with the marks taken out and reports each mark's request id, in stream order. The
// engine may split a mark across frames, so a trailing piece that could still become a
// mark is held until the next bytes decide; a lone 0x1e at the very end of a function's
// output therefore reaches the tail only with the stream's next bytes.
// Thread: the loop's. Depends on: shim/log_mark.h (constants only).
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace ephemera::sandbox {

class LogMarkScanner {
 public:
  using TextFn = std::function<void(std::string_view text)>;
  using MarkFn = std::function<void(std::string_view request_id)>;

  // Passes `data` on: output to on_text (possibly in several pieces), marks to on_mark.
  void Feed(std::string_view data, const TextFn& on_text, const MarkFn& on_mark);
  // Bytes held back as the possible start of a mark.
  const std::string& held() const noexcept { return held_; }

 private:
  std::string held_;
};

}  // namespace ephemera::sandbox
