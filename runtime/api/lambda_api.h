// runtime/api/lambda_api.h: the daemon's public HTTP API.
//
// Routes (first match wins, see router.h):
//   POST   /2015-03-31/functions/{FunctionName}/invocations   Lambda Invoke
//   POST   /function/{name}                                   plain: raw body in, raw body out
//   any    /gateway/{name}[/{path...}]                        HTTP gateway (gateway.h)
//   POST   /2015-03-31/functions                              CreateFunction
//   GET    /2015-03-31/functions[/]                           ListFunctions (Marker, MaxItems)
//   GET    /2015-03-31/functions/{name}                       GetFunction
//   GET    /2015-03-31/functions/{name}/configuration         GetFunctionConfiguration
//   DELETE /2015-03-31/functions/{name}                       DeleteFunction
//   GET    /healthz, GET /metrics (Prometheus text)
// Errors follow AWS: JSON {"Type":"User","Message":..} with x-amzn-ErrorType and
// x-amzn-RequestId (docs/protocols.md section 2), from the one table in aws_errors.h.
// Replies of functions that ran carry Server-Timing and X-Ephemera-Start (cold, warm or
// pool). Request bodies are limited while they are
// read: 6 MB for synchronous invokes, 1 MB for Event invokes.
//
// Thread: the loop thread. Ownership: borrows the registry and the scheduler, which
// must outlive it. Destroying it closes the listener and every connection.
// Depends on: http, scheduler, sandbox, registry, core.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "registry/registry.h"
#include "runtime/http/router.h"
#include "runtime/scheduler/scheduler.h"

namespace ephemera::events {
class Events;
}

namespace ephemera::api {

class EventsApi;

inline constexpr size_t kMaxSyncPayload = 6291456;   // 6 MB
inline constexpr size_t kMaxAsyncPayload = 1048576;  // 1 MB

class LambdaApi {
 public:
  LambdaApi(uv_loop_t* loop, registry::Registry* registry, scheduler::Scheduler* scheduler);
  ~LambdaApi();
  LambdaApi(const LambdaApi&) = delete;
  LambdaApi& operator=(const LambdaApi&) = delete;

  Status Listen(const std::string& host, int port);
  int port() const { return server_.port(); }
  // Stops accepting; connections close, invocations in flight are cancelled by
  // the scheduler's shutdown.
  void Close() { server_.Close(); }

  // Durable Event invocations and invocation records (runtime/events) and their routes
  // (events_api.h). Without it (null, the default) Event invocations get 503 and nothing
  // is recorded. The Events must outlive this LambdaApi.
  void set_events(events::Events* events);
  // Event invocations this daemon holds now (accepted ones wait in Redis, not here).
  uint64_t async_pending() const;

  // An Invoke sent by function `caller` from inside its environment (the only part of the
  // API reachable there): the same rules as from outside, and the request knows its caller.
  void InvokeFromFunction(const std::shared_ptr<http::HttpExchange>& ex, const std::string& ref,
                          const std::string& caller) {
    Invoke(ex, ref, caller);
  }

 private:
  using Ex = std::shared_ptr<http::HttpExchange>;
  void Invoke(const Ex& ex, const std::string& function_ref, const std::string& caller = "");
  void InvokePlain(const Ex& ex, const std::string& name);
  // The HTTP gateway (gateway.h): `proxy` is the path after /gateway/{name}/, or null.
  void InvokeGateway(const Ex& ex, const std::string& name, const std::string* proxy);
  // Runs one synchronous invocation through the scheduler, the one path every synchronous
  // route takes: records it as `record_type`, hands its outcome to `done` (once), and
  // cancels it if the client goes away first.
  void RunSync(const Ex& ex, sandbox::InvokeRequest ir, const char* record_type,
               std::function<void(sandbox::InvokeOutcome)> done);
  void CreateFunction(const Ex& ex);
  void ListFunctions(const Ex& ex);
  void GetFunction(const Ex& ex, const std::string& ref, bool configuration_only);
  void DeleteFunction(const Ex& ex, const std::string& ref);
  void Health(const Ex& ex);
  void Metrics(const Ex& ex);
  // Resolves a FunctionName (name, ARN, partial ARN; optional qualifier) or replies
  // with the AWS error and returns null.
  std::shared_ptr<const registry::FunctionSpec> Resolve(const Ex& ex, const std::string& ref,
                                                        const std::string& request_id);

  registry::Registry* registry_;
  scheduler::Scheduler* scheduler_;
  http::Router router_;
  http::HttpServer server_;
  events::Events* events_ = nullptr;
  std::unique_ptr<EventsApi> events_api_;
};

// Lambda's log tail: START / output / END / REPORT lines, last 4 KB, base64.
std::string LogResult(const std::string& request_id, const sandbox::InvokeOutcome& outcome);

}  // namespace ephemera::api
