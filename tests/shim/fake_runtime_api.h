// tests/shim/fake_runtime_api.h: a fake Lambda Runtime API on FakeHttpServer. It hands out
// queued events on GET /next (request ids req-1, req-2, ...), then holds /next open
// forever; every POST gets 202 {"status":"OK"}.
// Thread: the server thread answers; the rest is thread-safe.
#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "tests/shim/fake_http_server.h"

namespace ephemera::shim::testing {

inline constexpr char kNext[] = "/2018-06-01/runtime/invocation/next";
inline constexpr char kInitError[] = "/2018-06-01/runtime/init/error";

class FakeRuntimeApi {
 public:
  explicit FakeRuntimeApi(std::vector<std::string> events)
      : events_(events.begin(), events.end()),
        server_([this](const FakeRequest& r) { return Handle(r); }) {}

  std::string endpoint() const { return server_.endpoint(); }
  FakeHttpServer& server() { return server_; }

  // The first POST whose path ends with `suffix` ("/response", "/error", "/init/error").
  bool WaitForPost(const std::string& suffix, FakeRequest* out, int timeout_ms = 10000) {
    return server_.WaitForTarget(suffix, out, timeout_ms);
  }

 private:
  FakeReply Handle(const FakeRequest& r) {
    if (r.method == "GET" && r.target == kNext) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (events_.empty()) {
        FakeReply hold;
        hold.hold = true;
        return hold;
      }
      std::string event = std::move(events_.front());
      events_.pop_front();
      ++served_;
      return FakeReply::Simple(200, event,
                               "Lambda-Runtime-Aws-Request-Id: req-" + std::to_string(served_) +
                                   "\r\nLambda-Runtime-Deadline-Ms: 4102444800000\r\n"
                                   "Lambda-Runtime-Trace-Id: Root=1-test\r\n"
                                   "Content-Type: application/json\r\n");
    }
    return FakeReply::Simple(202, "{\"status\":\"OK\"}");
  }

  std::mutex mutex_;
  std::deque<std::string> events_;
  int served_ = 0;
  FakeHttpServer server_;
};

}  // namespace ephemera::shim::testing
