// shim/native.h: native mode, for C++ functions that are their own entrypoint.
//
// A native function links the static library ephemera_native and calls Serve() from
// main(). Serve() connects to the Runtime API (retrying a refused connection for up to
// 1 s): the unix socket $EPHEMERA_RUNTIME_SOCKET if set, else TCP $EPHEMERA_RUNTIME_API or
// $AWS_LAMBDA_RUNTIME_API (host:port; see UpstreamFromEnvironment in runtime_api.h), then
// loops forever: GET /next → handler(event, context) → POST /response or /error. The daemon runs
// such images with no shim injected. There is no extra process per event, which is what makes
// native mode the fastest mode.
//
// The handler runs on the calling thread, one event at a time. An exception escaping it
// is reported as errorType "Function.UncaughtException" with its what() text. Serve()
// sets _X_AMZN_TRACE_ID for each event. It returns 0 after SIGTERM/SIGINT, 2 if no usable
// endpoint is configured, 3 when the Runtime API cannot be reached or is gone (a new
// connection is refused after a failed request), 1 when it keeps failing requests.
// Thread: the calling thread. Depends on: shim/runtime_api.h (no daemon code).
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace ephemera::native {

struct Context {
  std::string request_id;        // Lambda-Runtime-Aws-Request-Id
  long long deadline_ms = 0;     // epoch milliseconds, 0 if unknown
  std::string function_arn;      // Lambda-Runtime-Invoked-Function-Arn
  std::string trace_id;          // Lambda-Runtime-Trace-Id
  std::string client_context;    // Lambda-Runtime-Client-Context (JSON), may be empty
  std::string cognito_identity;  // Lambda-Runtime-Cognito-Identity (JSON), may be empty
  std::string content_type;      // the event's Content-Type

  // Milliseconds left before the deadline (negative once passed; a large value if unknown).
  long long RemainingMs() const;
};

// What a handler returns: a body with its content type, or an error.
struct Result {
  bool ok = true;
  std::string body;
  std::string content_type = "application/json";
  std::string error_type;  // e.g. "Function.BadInput"
  std::string error_message;

  static Result Success(std::string body, std::string content_type = "application/json") {
    Result r;
    r.body = std::move(body);
    r.content_type = std::move(content_type);
    return r;
  }
  static Result Failure(std::string error_type, std::string error_message) {
    Result r;
    r.ok = false;
    r.error_type = std::move(error_type);
    r.error_message = std::move(error_message);
    return r;
  }
};

using Handler = std::function<Result(std::string_view event, const Context& context)>;

// Serves events until terminated; see the file comment. Returns the process exit code.
int Serve(Handler handler);

}  // namespace ephemera::native
