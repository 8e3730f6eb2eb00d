// shim/runtime_api.h: a client of the Lambda Runtime API (2018-06-01).
//
// Speaks to the daemon's Runtime API over one keep-alive connection:
// GET /runtime/invocation/next (blocks until the daemon has an event), then
// POST /runtime/invocation/{id}/response or /error, and POST /runtime/init/error when
// the function cannot start. Used by the shim's modes and by native functions
// (shim/native.h). Where the daemon is comes from the environment (UpstreamFromEnvironment):
// a unix socket (EPHEMERA_RUNTIME_SOCKET) or TCP host:port.
// GET /next offers log marks, and a result is preceded by the invocation's mark when its
// /next answer asked for one (shim/log_mark.h).
// Errors are Status sentences; IsReachable() tells a daemon that is gone from one that
// merely failed a request.
// Thread: one thread per client. Depends on: shim/http_client.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "shim/http_client.h"
#include "shim/status.h"

namespace ephemera::shim {

// One event as delivered by GET /next.
struct Invocation {
  std::string request_id;        // Lambda-Runtime-Aws-Request-Id (always present)
  long long deadline_ms = 0;     // Lambda-Runtime-Deadline-Ms, epoch ms; 0 if absent
  std::string function_arn;      // Lambda-Runtime-Invoked-Function-Arn
  std::string trace_id;          // Lambda-Runtime-Trace-Id
  std::string client_context;    // Lambda-Runtime-Client-Context
  std::string cognito_identity;  // Lambda-Runtime-Cognito-Identity
  std::string content_type;      // Content-Type of the event
  std::string event;             // the payload, byte-exact
};

// The body of /error and /init/error: {"errorMessage":..,"errorType":..,"stackTrace":[]}.
std::string ErrorBody(std::string_view error_type, std::string_view message);

// Where the Runtime API is, from the environment, first match wins:
//   EPHEMERA_RUNTIME_SOCKET=/path   a unix socket (the daemon serves the Runtime API and the
//                                   Invoke route on it)
//   EPHEMERA_RUNTIME_API=host:port  TCP; for when AWS_LAMBDA_RUNTIME_API names the shim's
//                                   own proxy (EPHEMERA_PROXY_LISTEN)
//   AWS_LAMBDA_RUNTIME_API=host:port TCP, the stock variable
// Empty values count as unset. Fails with a sentence naming the variable that is
// malformed, or saying none is set. *source (if given) receives the variable's name.
Status UpstreamFromEnvironment(Endpoint* endpoint, std::string* source = nullptr);

class RuntimeApiClient {
 public:
  explicit RuntimeApiClient(Endpoint endpoint) : http_(std::move(endpoint)) {}
  RuntimeApiClient(std::string host, uint16_t port) : http_(std::move(host), port) {}

  // Parses a "host:port" value (AWS_LAMBDA_RUNTIME_API); false if malformed.
  static bool ParseEndpoint(std::string_view endpoint, std::string* host, uint16_t* port) {
    return HttpClient::ParseHostPort(endpoint, host, port);
  }

  // Opens the connection, retrying a refused connect every 1 ms for up to `retry_for_ms`
  // (the daemon's listener may come up a moment after the container starts).
  Status Connect(int retry_for_ms = 1000) { return http_.Connect(retry_for_ms, 1); }

  // Blocks until the next event. Fails on transport errors, on a non-200 answer, or if
  // the request id header is missing. `response` (if given) receives the whole answer,
  // every header as sent (auto mode replays it to the function's own client).
  Status Next(Invocation* invocation, HttpResponse* response = nullptr);

  Status PostResponse(std::string_view request_id, std::string body, std::string_view content_type);
  Status PostError(std::string_view request_id, std::string_view error_type,
                   std::string_view message);
  Status PostInitError(std::string_view error_type, std::string_view message);

  // PostResponse (PostError) and Next in one write (pipelined): the daemon answers the
  // result together with the next event, so the runtime wakes once per invocation. On
  // failure *posted tells whether the result was accepted (then only the Next failed).
  Status PostResponseThenNext(std::string_view request_id, std::string body,
                              std::string_view content_type, Invocation* next, bool* posted);
  Status PostErrorThenNext(std::string_view request_id, std::string_view error_type,
                           std::string_view message, Invocation* next, bool* posted);

  // False if the Runtime API is gone: a fresh connection to it fails with IsGoneError().
  // Call it after a request failed, to choose between retrying and giving up (exit 3).
  bool IsReachable() { return !IsGoneError(ProbeEndpoint(http_.endpoint())); }

  // A watch on the connection while it is idle (between /next and the result): it fires
  // when the daemon closes it, and check() is false if the daemon is gone (see
  // HttpClient::CheckIdle). The client must outlive the watch.
  ReadWatch IdleWatch() {
    return {[this] { return http_.fd(); }, [this] { return http_.CheckIdle(); }};
  }

  // Drops the connection (for a shim that no longer needs it; the next request reopens).
  void Close() { http_.Close(); }

  // See HttpClient::set_interrupt_check.
  void set_interrupt_check(std::function<bool()> check) {
    http_.set_interrupt_check(std::move(check));
  }
  const HttpClient& http() const noexcept { return http_; }
  const Endpoint& endpoint() const noexcept { return http_.endpoint(); }

 private:
  // Both write the invocation's log mark first, if it asked for one (log_mark.h).
  Status Post(std::string_view request_id, std::string target, std::string body,
              std::string_view content_type, std::string_view error_type);
  Status PostThenNext(std::string_view request_id, const HttpRequest& post, Invocation* next,
                      bool* posted);

  HttpClient http_;
};

}  // namespace ephemera::shim
