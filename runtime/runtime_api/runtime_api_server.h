// runtime/runtime_api/runtime_api_server.h: the Lambda Runtime API (2018-06-01)
// for one execution environment.
//
// Each environment gets its own listener (docs/decisions.md decision 2), so a runtime can
// only ever see its own events: on 127.0.0.1 with an ephemeral port for environments on
// the host network (the container receives AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>), or
// on a unix socket made for that environment alone and bind-mounted into its container
// (isolated environments; the shim relays 127.0.0.1:9001 inside to it).
//
// Besides the Runtime API, the listener can serve the Lambda Invoke route
// (POST /2015-03-31/functions/{name}/invocations) for functions that call other
// functions: the owner handles it (Callbacks::on_invoke) knowing which environment, so
// which function, is calling. Nothing else of the daemon's API is reachable here.
//
// Flow: the owner Deliver()s events; GET /next long-polls until one is queued
// (no timeout: stock clients expect to block). The runtime answers with
// POST /invocation/{id}/response or /error, or reports a failed init with
// POST /runtime/init/error. A wrong or already-answered id gets 400
// InvalidRequestID; bodies above 6291556 bytes get 413 RequestEntityTooLarge
// before they are buffered. Error bodies are the Runtime API's own shape,
// {"errorMessage":..,"errorType":..}.
//
// Thread: the loop thread only. Callbacks: run from inside an HTTP handler; they
// may call Deliver() but must not destroy the server (defer that to a later loop
// turn). Destroying the server closes the listener and every runtime connection;
// no callback runs afterwards.
// Depends on: core, http.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "runtime/core/status.h"
#include "runtime/http/router.h"

namespace ephemera::runtime_api {

// The Runtime API's limit for /response and /error bodies (6 MiB + 100 bytes).
inline constexpr size_t kMaxRuntimeResponseBytes = 6291556;

struct Event {
  std::string request_id;
  std::string payload;
  std::string content_type = "application/json";
  uint64_t timeout_ms = 3000;  // the deadline is computed when the runtime takes the event
  std::string function_arn;
  std::string trace_id;
  std::string client_context;    // JSON text, already base64-decoded
  std::string cognito_identity;  // JSON text
  // Ask the runtime to mark the end of this invocation's output (shim/log_mark.h).
  bool log_mark = false;
};

struct RuntimeError {
  std::string error_type;  // from Lambda-Runtime-Function-Error-Type, else the body's errorType
  std::string body;        // as the runtime sent it
  std::string content_type;
};

class RuntimeApiServer {
 public:
  struct Callbacks {
    // Each GET /next (the first one marks the end of init). `handed_out` is the
    // event given to it, or null when it is now waiting.
    std::function<void(const Event* handed_out)> on_next;
    std::function<void(const std::string& request_id, std::string body, std::string content_type)>
        on_response;
    std::function<void(const std::string& request_id, RuntimeError error)> on_error;
    std::function<void(RuntimeError error)> on_init_error;
    // POST /2015-03-31/functions/{ref}/invocations from inside the environment; null =
    // 404 like any other unknown route.
    std::function<void(const std::shared_ptr<http::HttpExchange>& ex, const std::string& ref)>
        on_invoke;
  };

  RuntimeApiServer(uv_loop_t* loop, Callbacks callbacks);
  ~RuntimeApiServer();
  RuntimeApiServer(const RuntimeApiServer&) = delete;
  RuntimeApiServer& operator=(const RuntimeApiServer&) = delete;

  // Listens on host with an ephemeral port.
  Status Listen(const std::string& host);
  // Listens on a unix socket at `path` (mode 0666: the container's user may not be root).
  Status ListenUnix(const std::string& path);
  int port() const { return server_.port(); }
  // "127.0.0.1:<port>", the value of AWS_LAMBDA_RUNTIME_API.
  std::string address() const;

  // Queues an event; a waiting /next gets it at once.
  void Deliver(Event event);

  // Stops accepting and drops every connection. Idempotent.
  void Close() { server_.Close(); }

  bool runtime_waiting() const;
  // True once a GET /next offered log marks (shim/log_mark.h).
  bool runtime_offers_log_marks() const { return offers_log_marks_; }
  uint64_t next_calls() const { return next_calls_; }

 private:
  void HandleNext(const std::shared_ptr<http::HttpExchange>& ex);
  void HandleResponse(const std::shared_ptr<http::HttpExchange>& ex, const std::string& id);
  void HandleError(const std::shared_ptr<http::HttpExchange>& ex, const std::string& id);
  void HandleInitError(const std::shared_ptr<http::HttpExchange>& ex);
  void HandOut(const std::shared_ptr<http::HttpExchange>& ex);
  // 400 InvalidRequestID unless `id` was handed out and not yet answered.
  bool ClaimRequestId(const std::shared_ptr<http::HttpExchange>& ex, const std::string& id);

  Callbacks callbacks_;
  http::Router router_;
  http::HttpServer server_;
  std::deque<Event> queue_;
  std::shared_ptr<http::HttpExchange> parked_next_;
  std::set<std::string> outstanding_;  // handed out, not yet answered
  uint64_t next_calls_ = 0;
  bool offers_log_marks_ = false;
};

// {"errorMessage":..,"errorType":..} with status, as the Runtime API answers errors.
http::HttpResponse RuntimeApiError(int status, const std::string& type, const std::string& message);

}  // namespace ephemera::runtime_api
