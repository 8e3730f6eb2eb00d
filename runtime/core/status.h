// runtime/core/status.h: the small result type every module boundary returns.
//
// A Status is either ok or carries a code and a sentence for a human. The code
// lets callers map failures onto protocol errors (404, 429, 503...) without
// parsing messages; the message names the thing that is wrong.
// Thread: any. Depends on: nothing.
#pragma once

#include <string>
#include <utility>

namespace ephemera {

enum class StatusCode {
  kOk,
  kInvalidArgument,  // the caller sent something malformed
  kNotFound,         // a named thing (function, image, container) does not exist
  kConflict,         // the thing exists but is in the wrong state
  kTooLarge,         // a size limit was exceeded
  kTimeout,          // a deadline passed
  kUnavailable,      // a dependency (dockerd, Redis) cannot be reached
  kCancelled,        // the owner went away before the work finished
  kInternal,         // anything else: a bug or an unexpected answer
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const noexcept { return code_ == StatusCode::kOk; }
  StatusCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) {
  return {StatusCode::kNotFound, std::move(m)};
}
inline Status Conflict(std::string m) {
  return {StatusCode::kConflict, std::move(m)};
}
inline Status TooLarge(std::string m) {
  return {StatusCode::kTooLarge, std::move(m)};
}
inline Status Timeout(std::string m) {
  return {StatusCode::kTimeout, std::move(m)};
}
inline Status Unavailable(std::string m) {
  return {StatusCode::kUnavailable, std::move(m)};
}
inline Status Cancelled(std::string m) {
  return {StatusCode::kCancelled, std::move(m)};
}
inline Status Internal(std::string m) {
  return {StatusCode::kInternal, std::move(m)};
}

}  // namespace ephemera
