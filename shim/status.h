// shim/status.h: the result type of the shim's module boundaries.
//
// The shim depends on nothing of the daemon (it is linked -static and injected into
// foreign images), so it carries its own minimal Status: ok, or a sentence for a human
// that names the mode, the command or the peer that failed.
// Thread: any. Depends on: nothing.
#pragma once

#include <string>
#include <utility>

namespace ephemera::shim {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return {}; }
  static Status Error(std::string message) {
    Status s;
    s.ok_ = false;
    s.message_ = std::move(message);
    return s;
  }

  bool ok() const noexcept { return ok_; }
  const std::string& message() const noexcept { return message_; }

 private:
  bool ok_ = true;
  std::string message_;
};

}  // namespace ephemera::shim
