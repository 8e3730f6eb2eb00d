// tests/shim/fake_runtime_api.h: a fake Lambda Runtime API on FakeHttpServer. It hands out
// queued events on GET /next (request ids req-1, req-2, ...), then holds /next open
// forever; every POST gets 202 {"status":"OK"}. Each event comes with the headers the
// daemon sends (request id, deadline, trace id, function ARN, Content-Type). It listens on
// a loopback port, or on a unix socket if Options::unix_path is set. Destroying it closes
// every connection at once, as a daemon that was kill -9ed would.
// Thread: the server's threads answer; the rest is thread-safe.
#pragma once

#include <time.h>

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "tests/shim/fake_http_server.h"

namespace ephemera::shim::testing {

inline constexpr char kNext[] = "/2018-06-01/runtime/invocation/next";
inline constexpr char kInitError[] = "/2018-06-01/runtime/init/error";
inline constexpr char kFunctionArn[] = "arn:aws:lambda:us-east-1:000000000000:function:fake";
inline constexpr long long kFarDeadlineMs = 4102444800000LL;  // 2100-01-01

class FakeRuntimeApi {
 public:
  struct Options {
    std::string unix_path;            // listen on this unix socket instead of TCP
    long long deadline_after_ms = 0;  // > 0: each event's deadline is this long after /next
    bool ask_log_mark = false;        // each event asks for a log mark (shim/log_mark.h)
  };

  explicit FakeRuntimeApi(std::vector<std::string> events)
      : FakeRuntimeApi(std::move(events), Options()) {}
  FakeRuntimeApi(std::vector<std::string> events, Options options)
      : options_(options),
        events_(events.begin(), events.end()),
        server_([this](const FakeRequest& r) { return Handle(r); }, options.unix_path) {}

  std::string endpoint() const { return server_.endpoint(); }
  FakeHttpServer& server() { return server_; }
  // How many events GET /next has handed out so far.
  int served() {
    std::lock_guard<std::mutex> lock(mutex_);
    return served_;
  }

  // The first POST whose path ends with `suffix` ("/response", "/error", "/init/error").
  bool WaitForPost(const std::string& suffix, FakeRequest* out, int timeout_ms = 10000) {
    return server_.WaitForTarget(suffix, out, timeout_ms);
  }

 private:
  static long long NowEpochMs() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
  }

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
      long long deadline = options_.deadline_after_ms > 0
                               ? NowEpochMs() + options_.deadline_after_ms
                               : kFarDeadlineMs;
      return FakeReply::Simple(200, event,
                               "Lambda-Runtime-Aws-Request-Id: req-" + std::to_string(served_) +
                                   "\r\nLambda-Runtime-Deadline-Ms: " + std::to_string(deadline) +
                                   "\r\nLambda-Runtime-Trace-Id: Root=1-test\r\n"
                                   "Lambda-Runtime-Invoked-Function-Arn: " +
                                   kFunctionArn + "\r\nContent-Type: application/json\r\n" +
                                   (options_.ask_log_mark ? "Ephemera-Log-Mark: 1\r\n" : ""));
    }
    return FakeReply::Simple(202, "{\"status\":\"OK\"}");
  }

  Options options_;
  std::mutex mutex_;
  std::deque<std::string> events_;
  int served_ = 0;
  FakeHttpServer server_;
};

}  // namespace ephemera::shim::testing
