// runtime/sandbox/log_marks.cc: see log_marks.h.
#include "runtime/sandbox/log_marks.h"

#include "shim/log_mark.h"

namespace ephemera::sandbox {

void LogMarkScanner::Feed(std::string_view data, const TextFn& on_text, const MarkFn& on_mark) {
  std::string joined;
  std::string_view in = data;
  if (!held_.empty()) {
    joined = std::move(held_);
    held_.clear();
    joined.append(data);
    in = joined;
  }
  const std::string_view prefix = shim::kLogMarkPrefix;
  size_t pos = 0;
  while (pos < in.size()) {
    size_t start = in.find(prefix.front(), pos);
    if (start == std::string_view::npos) break;
    if (start > pos) on_text(in.substr(pos, start - pos));
    std::string_view rest = in.substr(start);
    if (rest.size() < prefix.size()) {
      if (prefix.substr(0, rest.size()) == rest) {
        held_.assign(rest);  // may be a mark's start: wait for more
        return;
      }
    } else if (rest.substr(0, prefix.size()) == prefix) {
      std::string_view id_and_end = rest.substr(prefix.size(), shim::kMaxLogMarkId + 1);
      size_t end = id_and_end.find(shim::kLogMarkEnd);
      if (end != std::string_view::npos && end > 0) {
        on_mark(id_and_end.substr(0, end));
        pos = start + prefix.size() + end + 1;
        continue;
      }
      if (end == std::string_view::npos && id_and_end.size() <= shim::kMaxLogMarkId) {
        held_.assign(rest);  // the id has not all arrived yet
        return;
      }
    }
    // Not a mark: the byte is output.
    on_text(in.substr(start, 1));
    pos = start + 1;
  }
  if (pos < in.size()) on_text(in.substr(pos));
}

}  // namespace ephemera::sandbox
