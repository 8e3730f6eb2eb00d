#include "runtime/api/lambda_api.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "runtime/api/aws_errors.h"
#include "runtime/api/events_api.h"
#include "runtime/api/gateway.h"
#include "runtime/core/base64.h"
#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/core/log.h"
#include "runtime/events/events.h"
#include "runtime/json/json.h"

namespace ephemera::api {
namespace {

using sandbox::InvokeOutcome;
using sandbox::OutcomeKind;
using C = AwsErrorCode;

constexpr char kInvokePrefix[] = "/2015-03-31/functions/";
constexpr size_t kMaxClientContextBytes = 3583;
constexpr size_t kLogTailBytes = 4096;

bool IsAsyncInvoke(const http::HttpRequest& head) {
  auto type = head.headers.Get("X-Amz-Invocation-Type");
  return type && *type == "Event";
}

// Whether a declared Content-Type can carry a JSON event. Clients send none (the AWS
// CLI), JSON types, octet-stream (SDKs, `ephemera invoke`) or curl's form default;
// anything else (text/xml, multipart/form-data, ...) is refused with 415.
bool CanCarryJson(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (type.empty() || type == "*/*") return true;
  for (const char* ok :
       {"application/json", "text/json", "application/octet-stream", "binary/octet-stream",
        "text/plain", "application/x-www-form-urlencoded"}) {
    if (type == ok) return true;
  }
  if (type.rfind("application/x-amz-json", 0) == 0) return true;
  return type.size() > 5 && type.compare(type.size() - 5, 5, "+json") == 0;
}

bool IsInvokePath(const std::string& path) {
  return path.rfind(kInvokePrefix, 0) == 0 && path.size() > 12 &&
         path.compare(path.size() - 12, 12, "/invocations") == 0;
}

http::HttpServer::Options ServerOptions() {
  http::HttpServer::Options o;
  o.name = "api";
  o.limits.max_body_bytes = kMaxSyncPayload;
  o.body_limit = [](const http::HttpRequest& head) {
    return IsInvokePath(head.path) && IsAsyncInvoke(head) ? kMaxAsyncPayload : kMaxSyncPayload;
  };
  o.error_response = [](int status, const std::string& message, const http::HttpRequest& head) {
    std::string id = NewRequestId();
    if (status == 413) {
      if (IsAsyncInvoke(head)) {
        return AwsError(C::kRequestTooLarge,
                        "Request payload is too large for the Event invocation type (limit " +
                            std::to_string(kMaxAsyncPayload) + " bytes): " + message,
                        id);
      }
      return AwsError(C::kRequestTooLarge,
                      "Request must be smaller than " + std::to_string(kMaxSyncPayload) +
                          " bytes for the InvokeFunction operation: " + message,
                      id);
    }
    if (status == 503) return AwsError(C::kServiceUnavailable, message, id);
    return AwsError(status == 431 ? C::kRequestHeaderTooLarge : C::kInvalidRequestContent, message,
                    id);
  };
  return o;
}

http::HttpResponse JsonResponse(int status, const cJSON* body, const std::string& request_id) {
  http::HttpResponse r(status, json::Print(body), "application/json");
  r.headers.Set("x-amzn-RequestId", request_id);
  return r;
}

// How a service-side failure looks to an AWS client.
http::HttpResponse ServiceErrorResponse(const InvokeOutcome& out, const std::string& request_id) {
  return AwsError(ForOutcome(out.kind), out.status.message(), request_id, out.throttle_reason);
}

// Headers every reply of a function that ran carries.
void SetInvocationHeaders(http::HttpResponse& r, const InvokeOutcome& out,
                          const std::string& request_id) {
  r.headers.Set("x-amzn-RequestId", request_id);
  r.headers.Set("Server-Timing", out.phases.ServerTiming());
  r.headers.Set("X-Ephemera-Start", sandbox::StartKindName(out.start));
  if (!out.environment_id.empty()) r.headers.Set("X-Ephemera-Environment", out.environment_id);
  if (out.kind == OutcomeKind::kFunctionError) r.headers.Set("X-Amz-Function-Error", "Unhandled");
}

// Keeps a record of every invocation (docs/architecture.md "Durable Event invocations");
// Event invocations are recorded by the event queue, per attempt.
void RecordInvocation(events::Events* events, const char* type, const std::string& function,
                      const std::string& request_id, size_t payload_bytes, int64_t started_ms,
                      const InvokeOutcome& out) {
  if (events == nullptr || out.kind == OutcomeKind::kCancelled) return;
  events::InvocationRecord rec = events::MakeRecord(out);
  rec.request_id = request_id;
  rec.function = function;
  rec.type = type;
  rec.payload_bytes = payload_bytes;
  rec.started_ms = started_ms;
  rec.ended_ms = EpochMs();
  rec.daemon = events->options().queue.daemon_id;
  events->Record(rec);
}

}  // namespace

std::string LogResult(const std::string& request_id, const InvokeOutcome& out) {
  std::string text = "START RequestId: " + request_id + " Version: $LATEST\n";
  text += out.logs;
  if (!out.logs.empty() && out.logs.back() != '\n') text += '\n';
  text += "END RequestId: " + request_id + "\n";
  double duration = out.phases.handler >= 0 ? out.phases.handler : out.phases.total;
  char report[400];
  int n = std::snprintf(report, sizeof report,
                        "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %lld ms\t"
                        "Memory Size: %d MB\tMax Memory Used: %d MB\t",
                        request_id.c_str(), duration, static_cast<long long>(duration + 0.999999),
                        out.memory_mb, out.max_memory_used_mb);
  text.append(report, static_cast<size_t>(std::min<int>(n, sizeof report - 1)));
  if (out.init_duration_ms >= 0) {
    std::snprintf(report, sizeof report, "Init Duration: %.2f ms\t", out.init_duration_ms);
    text += report;
  }
  text += '\n';
  if (text.size() > kLogTailBytes) text.erase(0, text.size() - kLogTailBytes);
  return Base64Encode(text);
}

LambdaApi::LambdaApi(uv_loop_t* loop, registry::Registry* registry, scheduler::Scheduler* scheduler)
    : registry_(registry),
      scheduler_(scheduler),
      server_(
          loop, [this](std::shared_ptr<http::HttpExchange> ex) { router_.Dispatch(ex); },
          ServerOptions()) {
  using P = http::Router::Params;
  router_.Add("POST", "/2015-03-31/functions/{}/invocations",
              [this](const Ex& ex, const P& p) { Invoke(ex, p[0]); });
  router_.Add("POST", "/function/{}", [this](const Ex& ex, const P& p) { InvokePlain(ex, p[0]); });
  // API Gateway's ANY: every method an HTTP API route takes (HEAD is served by GET).
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    router_.Add(method, "/gateway/{}",
                [this](const Ex& ex, const P& p) { InvokeGateway(ex, p[0], nullptr); });
    router_.Add(method, "/gateway/{}/{...}",
                [this](const Ex& ex, const P& p) { InvokeGateway(ex, p[0], &p[1]); });
  }
  router_.Add("POST", "/2015-03-31/functions",
              [this](const Ex& ex, const P&) { CreateFunction(ex); });
  router_.Add("POST", "/2015-03-31/functions/",
              [this](const Ex& ex, const P&) { CreateFunction(ex); });
  router_.Add("GET", "/2015-03-31/functions",
              [this](const Ex& ex, const P&) { ListFunctions(ex); });
  router_.Add("GET", "/2015-03-31/functions/",
              [this](const Ex& ex, const P&) { ListFunctions(ex); });
  router_.Add("GET", "/2015-03-31/functions/{}",
              [this](const Ex& ex, const P& p) { GetFunction(ex, p[0], false); });
  router_.Add("GET", "/2015-03-31/functions/{}/configuration",
              [this](const Ex& ex, const P& p) { GetFunction(ex, p[0], true); });
  router_.Add("DELETE", "/2015-03-31/functions/{}",
              [this](const Ex& ex, const P& p) { DeleteFunction(ex, p[0]); });
  router_.Add("GET", "/healthz", [this](const Ex& ex, const P&) { Health(ex); });
  router_.Add("GET", "/metrics", [this](const Ex& ex, const P&) { Metrics(ex); });
  router_.SetFallback([](const Ex& ex, int status) {
    const auto& req = ex->request();
    std::string what = req.method + " " + req.path;
    if (status == 405) {
      ex->Reply(AwsError(C::kMethodNotAllowed, "method not allowed: " + what, NewRequestId()));
    } else {
      ex->Reply(AwsError(C::kUnknownOperation, "no such route: " + what, NewRequestId()));
    }
  });
}

LambdaApi::~LambdaApi() {
  server_.Close();
}

void LambdaApi::set_events(events::Events* events) {
  events_ = events;
  if (events_ != nullptr && !events_api_) {
    events_api_ = std::make_unique<EventsApi>(registry_, events_);
    events_api_->AddRoutes(router_);
  }
}

uint64_t LambdaApi::async_pending() const {
  return events_ == nullptr ? 0 : events_->queue().in_flight();
}

Status LambdaApi::Listen(const std::string& host, int port) {
  return server_.Listen(host, port);
}

std::shared_ptr<const registry::FunctionSpec> LambdaApi::Resolve(const Ex& ex,
                                                                 const std::string& ref,
                                                                 const std::string& request_id) {
  std::string name, qualifier;
  if (Status s = registry::ParseFunctionRef(ref, &name, &qualifier); !s.ok()) {
    ex->Reply(AwsError(C::kInvalidParameterValue, s.message(), request_id));
    return nullptr;
  }
  if (auto q = ex->request().QueryParam("Qualifier"); q && !q->empty()) {
    if (!qualifier.empty() && qualifier != *q) {
      ex->Reply(AwsError(
          C::kInvalidParameterValue,
          "The derived qualifier from the function name does not match the specified qualifier.",
          request_id));
      return nullptr;
    }
    qualifier = *q;
  }
  auto spec = registry_->Find(name);
  if (!spec || (!qualifier.empty() && qualifier != "$LATEST")) {
    std::string arn = registry::FunctionArn(name) + (qualifier.empty() ? "" : ":" + qualifier);
    std::string msg = "Function not found: " + arn;
    if (spec) msg += " (ephemera has only the $LATEST version)";
    ex->Reply(AwsError(C::kResourceNotFound, msg, request_id));
    return nullptr;
  }
  return spec;
}

// ---- Invoke: validate, then hand to the scheduler; reply when the outcome is known ----

void LambdaApi::Invoke(const Ex& ex, const std::string& function_ref, const std::string& caller) {
  const http::HttpRequest& req = ex->request();
  std::string request_id = NewRequestId();
  auto spec = Resolve(ex, function_ref, request_id);
  if (!spec) return;

  std::string type(req.headers.Get("X-Amz-Invocation-Type").value_or("RequestResponse"));
  if (type != "RequestResponse" && type != "Event" && type != "DryRun") {
    ex->Reply(AwsError(
        C::kInvalidParameterValue,
        "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun (got " + type + ")",
        request_id));
    return;
  }
  std::string log_type(req.headers.Get("X-Amz-Log-Type").value_or("None"));
  if (log_type != "None" && log_type != "Tail") {
    ex->Reply(AwsError(C::kInvalidParameterValue,
                       "X-Amz-Log-Type must be None or Tail (got " + log_type + ")", request_id));
    return;
  }
  if (auto ct = req.headers.Get("Content-Type"); ct && !CanCarryJson(*ct)) {
    ex->Reply(
        AwsError(C::kUnsupportedMediaType,
                 "The content type of the Invoke request body is not JSON: " + std::string(*ct),
                 request_id));
    return;
  }
  if (!req.body.empty()) {
    size_t at = 0;
    if (!json::Parse(req.body, &at)) {
      ex->Reply(AwsError(C::kInvalidRequestContent,
                         "Could not parse request body into json: unexpected content at byte " +
                             std::to_string(at) + " of " + std::to_string(req.body.size()),
                         request_id));
      return;
    }
  }
  std::string client_context;
  if (auto cc = req.headers.Get("X-Amz-Client-Context"); cc && !cc->empty()) {
    auto decoded = cc->size() <= kMaxClientContextBytes ? Base64Decode(*cc) : std::nullopt;
    if (!decoded || !json::Parse(*decoded)) {
      ex->Reply(AwsError(C::kInvalidParameterValue,
                         "X-Amz-Client-Context must be base64-encoded JSON of at most " +
                             std::to_string(kMaxClientContextBytes) + " bytes",
                         request_id));
      return;
    }
    client_context = std::move(*decoded);
  }

  if (type == "DryRun") {
    scheduler_->Validate(*spec, [ex, request_id](Status s) {
      if (!s.ok()) {
        ex->Reply(AwsError(s.code() == StatusCode::kUnavailable ? C::kServiceUnavailable
                           : s.code() == StatusCode::kNotFound  ? C::kResourceNotReady
                                                                : C::kEngineFailed,
                           s.message(), request_id));
        return;
      }
      http::HttpResponse r(204, "", "");
      r.headers.Set("x-amzn-RequestId", request_id);
      ex->Reply(std::move(r));
    });
    return;
  }

  sandbox::InvokeRequest ir;
  ir.function = spec;
  ir.request_id = request_id;
  ir.payload = std::move(ex->mutable_request().body);
  ir.async = type == "Event";
  ir.caller = caller;
  ir.client_context = type == "Event" ? "" : std::move(client_context);
  ir.capture_logs = log_type == "Tail" && type == "RequestResponse";
  if (auto ct = req.headers.Get("Content-Type"); ct && !ct->empty())
    ir.content_type = std::string(*ct);

  if (type == "Event") {
    // Durable: the 202 goes out only once the event is in the Redis stream; if Redis
    // cannot take it, 503 and it never runs (runtime/events/event_queue.h).
    if (events_ == nullptr) {
      ex->Reply(AwsError(C::kServiceUnavailable,
                         "Event invocations need Redis, and this daemon runs without it",
                         request_id));
      return;
    }
    events::AcceptRequest accept;
    accept.function = spec->name;
    accept.request_id = request_id;
    accept.payload = std::move(ir.payload);
    accept.content_type = ir.content_type;
    accept.caller = ir.caller;
    events_->queue().Accept(std::move(accept), [ex, request_id](Status s) {
      if (!s.ok()) {
        ex->Reply(s.code() == StatusCode::kConflict
                      ? AwsError(C::kTooManyRequests, s.message(), request_id,
                                 "ConcurrentInvocationLimitExceeded")
                      : AwsError(C::kServiceUnavailable, s.message(), request_id));
        return;
      }
      http::HttpResponse r(202, "", "");
      r.headers.Set("x-amzn-RequestId", request_id);
      r.headers.Set("X-Amz-Executed-Version", "$LATEST");
      ex->Reply(std::move(r));
    });
    return;
  }

  bool tail = ir.capture_logs;
  RunSync(ex, std::move(ir), "RequestResponse", [ex, request_id, tail](InvokeOutcome out) {
    if (!sandbox::IsFunctionOutcome(out.kind)) {
      ex->Reply(ServiceErrorResponse(out, request_id));
      return;
    }
    http::HttpResponse r(200, std::move(out.body), out.content_type);
    SetInvocationHeaders(r, out, request_id);
    r.headers.Set("X-Amz-Executed-Version", "$LATEST");
    if (tail) r.headers.Set("X-Amz-Log-Result", LogResult(request_id, out));
    ex->Reply(std::move(r));
  });
}

void LambdaApi::RunSync(const Ex& ex, sandbox::InvokeRequest ir, const char* record_type,
                        std::function<void(InvokeOutcome)> done) {
  std::string name = ir.function->name, request_id = ir.request_id;
  size_t payload_bytes = ir.payload.size();
  int64_t started_ms = EpochMs();
  auto handle =
      scheduler_->Invoke(std::move(ir), [this, record_type, name, request_id, payload_bytes,
                                         started_ms, done = std::move(done)](InvokeOutcome out) {
        RecordInvocation(events_, record_type, name, request_id, payload_bytes, started_ms, out);
        done(std::move(out));
      });
  ex->SetOnAbort([this, handle] { scheduler_->Cancel(handle); });
}

// ---- The plain route: no JSON rules, raw bytes both ways ----

void LambdaApi::InvokePlain(const Ex& ex, const std::string& name) {
  std::string request_id = NewRequestId();
  auto spec = registry_->Find(name);
  if (!spec) {
    ex->Reply(AwsError(C::kResourceNotFound,
                       "Function not found: " + name + " (see GET /2015-03-31/functions)",
                       request_id));
    return;
  }
  sandbox::InvokeRequest ir;
  ir.function = spec;
  ir.request_id = request_id;
  ir.payload = std::move(ex->mutable_request().body);
  if (auto ct = ex->request().headers.Get("Content-Type"); ct && !ct->empty())
    ir.content_type = std::string(*ct);
  RunSync(ex, std::move(ir), "plain", [ex, request_id](InvokeOutcome out) {
    if (!sandbox::IsFunctionOutcome(out.kind)) {
      ex->Reply(ServiceErrorResponse(out, request_id));
      return;
    }
    bool failed = out.kind == OutcomeKind::kFunctionError;
    http::HttpResponse r(failed ? 500 : 200, std::move(out.body),
                         failed ? "application/json" : out.content_type);
    SetInvocationHeaders(r, out, request_id);
    ex->Reply(std::move(r));
  });
}

// ---- The HTTP gateway: a request becomes an API Gateway event, the answer a reply ----

void LambdaApi::InvokeGateway(const Ex& ex, const std::string& name, const std::string* proxy) {
  std::string request_id = NewRequestId();
  auto spec = registry_->Find(name);
  if (!spec) {
    ex->Reply(GatewayError(404, "Not Found", request_id, "no function " + name));
    return;
  }
  sandbox::InvokeRequest ir;
  if (Status s = BuildGatewayEvent(ex->request(), proxy, request_id, EpochMs(), kMaxSyncPayload,
                                   &ir.payload);
      !s.ok()) {
    bool large = s.code() == StatusCode::kTooLarge;
    ex->Reply(GatewayError(large ? 413 : 404, large ? "Request Entity Too Large" : "Not Found",
                           request_id, s.message()));
    return;
  }
  std::string().swap(ex->mutable_request().body);  // the event holds it now
  ir.function = spec;
  ir.request_id = request_id;
  RunSync(ex, std::move(ir), "gateway", [ex, request_id](InvokeOutcome out) {
    http::HttpResponse r = GatewayResponse(out, request_id);
    if (sandbox::IsFunctionOutcome(out.kind)) SetInvocationHeaders(r, out, request_id);
    ex->Reply(std::move(r));
  });
}

// ---- Control plane ----

void LambdaApi::CreateFunction(const Ex& ex) {
  std::string request_id = NewRequestId();
  // cJSON ends a string at an escaped NUL: refuse rather than run a shortened value.
  if (registry::ContainsEscapedNul(ex->request().body)) {
    ex->Reply(AwsError(C::kInvalidParameterValue,
                       "the request contains a NUL character (\\u0000): names, values and "
                       "environment variables cannot contain one",
                       request_id));
    return;
  }
  size_t at = 0;
  auto body = json::Parse(ex->request().body, &at);
  if (!body || !cJSON_IsObject(body.get())) {
    ex->Reply(
        AwsError(C::kInvalidRequestContent,
                 "Could not parse request body into json: expected a JSON object (error at byte " +
                     std::to_string(at) + ")",
                 request_id));
    return;
  }
  registry::FunctionSpec spec;
  if (Status s = registry::SpecFromCreateFunction(body.get(), &spec); !s.ok()) {
    ex->Reply(AwsError(C::kInvalidParameterValue, s.message(), request_id));
    return;
  }
  if (registry_->Find(spec.name)) {
    ex->Reply(AwsError(C::kResourceConflict, "Function already exist: " + spec.name, request_id));
    return;
  }
  // The image must exist here: nothing can be pulled (docs/decisions.md decision 6).
  scheduler_->Validate(spec, [this, ex, request_id, spec](Status s) mutable {
    if (!s.ok()) {
      bool missing = s.code() == StatusCode::kNotFound;
      ex->Reply(AwsError(missing ? C::kInvalidParameterValue : C::kServiceUnavailable, s.message(),
                         request_id));
      return;
    }
    std::string name = spec.name;
    if (Status c = registry_->Create(std::move(spec)); !c.ok()) {
      ex->Reply(AwsError(c.code() == StatusCode::kConflict          ? C::kResourceConflict
                         : c.code() == StatusCode::kInvalidArgument ? C::kInvalidParameterValue
                                                                    : C::kService,
                         c.message(), request_id));
      return;
    }
    LOG_INFO("api", "created function %s", name.c_str());
    scheduler_->SyncFunctions(registry_->List());
    auto config = registry::FunctionConfiguration(*registry_->Find(name));
    ex->Reply(JsonResponse(201, config.get(), request_id));
  });
}

void LambdaApi::ListFunctions(const Ex& ex) {
  std::string request_id = NewRequestId();
  const auto& req = ex->request();
  size_t max_items = 50;
  if (auto m = req.QueryParam("MaxItems"); m) {
    char* end = nullptr;
    long v = std::strtol(m->c_str(), &end, 10);
    if (m->empty() || *end != '\0' || v < 1 || v > 10000) {
      ex->Reply(AwsError(C::kInvalidParameterValue,
                         "MaxItems must be an integer between 1 and 10000 (got " + *m + ")",
                         request_id));
      return;
    }
    max_items = static_cast<size_t>(v);
  }
  std::string marker = req.QueryParam("Marker").value_or("");
  auto all = registry_->List();
  auto result = json::NewObject();
  cJSON* functions = cJSON_AddArrayToObject(result.get(), "Functions");
  // Names are sorted: a page is the next max_items names after the marker, and
  // NextMarker appears only when more follow.
  std::string last;
  bool more = false;
  size_t added = 0;
  for (const auto& spec : all) {
    if (!marker.empty() && spec->name <= marker) continue;
    if (added == max_items) {
      more = true;
      break;
    }
    cJSON_AddItemToArray(functions, registry::FunctionConfiguration(*spec).release());
    last = spec->name;
    ++added;
  }
  if (more) cJSON_AddStringToObject(result.get(), "NextMarker", last.c_str());
  ex->Reply(JsonResponse(200, result.get(), request_id));
}

void LambdaApi::GetFunction(const Ex& ex, const std::string& ref, bool configuration_only) {
  std::string request_id = NewRequestId();
  auto spec = Resolve(ex, ref, request_id);
  if (!spec) return;
  auto body = configuration_only ? registry::FunctionConfiguration(*spec)
                                 : registry::GetFunctionResult(*spec);
  ex->Reply(JsonResponse(200, body.get(), request_id));
}

void LambdaApi::DeleteFunction(const Ex& ex, const std::string& ref) {
  std::string request_id = NewRequestId();
  auto spec = Resolve(ex, ref, request_id);
  if (!spec) return;
  if (Status s = registry_->Remove(spec->name); !s.ok()) {
    ex->Reply(AwsError(s.code() == StatusCode::kNotFound ? C::kResourceNotFound : C::kService,
                       s.message(), request_id));
    return;
  }
  LOG_INFO("api", "deleted function %s", spec->name.c_str());
  scheduler_->SyncFunctions(registry_->List());
  http::HttpResponse r(204, "", "");
  r.headers.Set("x-amzn-RequestId", request_id);
  ex->Reply(std::move(r));
}

// ---- Health and metrics ----

void LambdaApi::Health(const Ex& ex) {
  char body[380];
  std::snprintf(body, sizeof body,
                "{\"status\":\"ok\",\"in_flight\":%zu,\"waiting\":%zu,\"environments\":%zu,"
                "\"idle_environments\":%zu,\"disposing\":%zu,\"holders_starting\":%zu,"
                "\"holders_ahead_left\":%zu,"
                "\"functions\":%zu}\n",
                // Event invocations the queue holds outside the scheduler count as in flight:
                // picked up and not yet running, or recording their outcome.
                scheduler_->in_flight() + (events_ ? events_->queue().held_not_running() : 0),
                scheduler_->waiting(), scheduler_->environments(), scheduler_->idle_environments(),
                scheduler_->disposing(), scheduler_->holders_starting(),
                scheduler_->holders_ahead_left(), registry_->List().size());
  ex->Reply(http::HttpResponse(200, body, "application/json"));
}

void LambdaApi::Metrics(const Ex& ex) {
  const scheduler::SchedulerStats& s = scheduler_->stats();
  std::string out;
  char line[320];
  auto metric = [&](const char* name, const char* help, double v, const char* kind) {
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.6g\n", name, help, name,
                  kind, name, v);
    out += line;
  };
  metric("ephemera_invocations_started_total", "Invocations admitted.", double(s.started),
         "counter");
  metric("ephemera_invocations_succeeded_total", "Invocations answered by /response.",
         double(s.succeeded), "counter");
  metric("ephemera_invocations_function_errors_total",
         "Invocations that ended in a function error.", double(s.function_errors), "counter");
  metric("ephemera_invocations_service_errors_total", "Invocations ephemera could not run.",
         double(s.service_errors), "counter");
  metric("ephemera_invocations_timeouts_total", "Invocations killed at their timeout.",
         double(s.timeouts), "counter");
  metric("ephemera_invocations_cancelled_total",
         "Invocations stopped because their caller went away (or the daemon stopped).",
         double(s.cancelled), "counter");
  metric("ephemera_invocations_throttled_total", "Invocations refused with 429.",
         double(s.throttled), "counter");
  metric("ephemera_invocations_queued_total", "Invocations that waited for capacity.",
         double(s.queued), "counter");
  metric("ephemera_invocations_queue_timeouts_total",
         "Invocations refused because their wait for capacity ran out.", double(s.queue_timeouts),
         "counter");
  out +=
      "# HELP ephemera_starts_total Invocations by where their environment came from.\n"
      "# TYPE ephemera_starts_total counter\n";
  for (auto [kind, v] :
       {std::pair{"cold", s.cold_starts}, {"warm", s.warm_starts}, {"pool", s.pool_starts}}) {
    std::snprintf(line, sizeof line, "ephemera_starts_total{kind=\"%s\"} %llu\n", kind,
                  static_cast<unsigned long long>(v));
    out += line;
  }
  metric("ephemera_containers_created_total", "Containers created.", double(s.environments_created),
         "counter");
  metric("ephemera_containers_removed_total", "Containers removed.", double(s.environments_removed),
         "counter");
  metric("ephemera_environments_lost_total",
         "Environments that failed while idle or while being started ahead.",
         double(s.environments_lost), "counter");
  metric("ephemera_environments_drained_total",
         "Idle environments removed because their image or function changed.",
         double(s.environments_drained), "counter");
  metric("ephemera_environments", "Environments that exist now.",
         double(scheduler_->environments()), "gauge");
  metric("ephemera_environments_idle", "Environments waiting for an invocation.",
         double(scheduler_->idle_environments()), "gauge");
  metric("ephemera_container_starts_in_flight", "Container starts in flight.",
         double(scheduler_->starts_in_flight()), "gauge");
  metric("ephemera_invocations_in_flight", "Invocations running now.",
         double(scheduler_->in_flight()), "gauge");
  metric("ephemera_invocations_waiting", "Invocations waiting for capacity.",
         double(scheduler_->waiting()), "gauge");
  metric("ephemera_async_pending",
         "Event invocations this daemon holds now (accepted ones wait in Redis).",
         double(async_pending()), "gauge");
  out +=
      "# HELP ephemera_phase_seconds_sum Time spent per phase, summed over successful "
      "invocations.\n"
      "# TYPE ephemera_phase_seconds_sum counter\n";
  for (auto [name, v] : {std::pair{"queue", s.sum.queue},
                         {"image", s.sum.image},
                         {"create", s.sum.create},
                         {"start", s.sum.start},
                         {"init", s.sum.init},
                         {"handler", s.sum.handler},
                         {"total", s.sum.total}}) {
    std::snprintf(line, sizeof line, "ephemera_phase_seconds_sum{phase=\"%s\"} %.6f\n", name,
                  v / 1000.0);
    out += line;
  }
  if (events_ != nullptr) out += events_->MetricsText();
  ex->Reply(http::HttpResponse(200, std::move(out), "text/plain; version=0.0.4"));
}

}  // namespace ephemera::api
