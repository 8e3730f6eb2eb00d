// shim/runtime_api.h: a client of the Lambda Runtime API (2018-06-01).
//
// Speaks to http://$AWS_LAMBDA_RUNTIME_API/2018-06-01 over one keep-alive connection:
// GET /runtime/invocation/next (blocks until the daemon has an event), then
// POST /runtime/invocation/{id}/response or /error, and POST /runtime/init/error when
// the function cannot start. Used by the shim's exec and http modes and by native
// functions (shim/native.h).
// Thread: one thread. Depends on: shim/http_client.h.
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

class RuntimeApiClient {
 public:
  RuntimeApiClient(std::string host, uint16_t port) : http_(std::move(host), port) {}

  // Builds a client from a "host:port" value (AWS_LAMBDA_RUNTIME_API); false if malformed.
  static bool ParseEndpoint(std::string_view endpoint, std::string* host, uint16_t* port) {
    return HttpClient::ParseHostPort(endpoint, host, port);
  }

  // Opens the connection, retrying a refused connect every 1 ms for up to `retry_for_ms`
  // (the daemon's listener may come up a moment after the container starts).
  Status Connect(int retry_for_ms = 1000) { return http_.Connect(retry_for_ms, 1); }

  // Blocks until the next event. Fails on transport errors, on a non-200 answer, or if
  // the request id header is missing.
  Status Next(Invocation* invocation);

  Status PostResponse(std::string_view request_id, std::string body, std::string_view content_type);
  Status PostError(std::string_view request_id, std::string_view error_type,
                   std::string_view message);
  Status PostInitError(std::string_view error_type, std::string_view message);

  // See HttpClient::set_interrupt_check.
  void set_interrupt_check(std::function<bool()> check) {
    http_.set_interrupt_check(std::move(check));
  }
  const HttpClient& http() const noexcept { return http_; }

 private:
  Status Post(std::string target, std::string body, std::string_view content_type,
              std::string_view error_type);

  HttpClient http_;
};

}  // namespace ephemera::shim
