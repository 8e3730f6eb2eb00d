#include "runtime/api/lambda_api.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "runtime/core/base64.h"
#include "runtime/core/ids.h"
#include "runtime/core/log.h"
#include "runtime/json/json.h"

namespace ephemera::api {
namespace {

using invoke::InvokeOutcome;

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
        return AwsError(413, "RequestEntityTooLargeException",
                        "Request payload is too large for the Event invocation type (limit " +
                            std::to_string(kMaxAsyncPayload) + " bytes): " + message,
                        id);
      }
      return AwsError(413, "RequestEntityTooLargeException",
                      "Request must be smaller than " + std::to_string(kMaxSyncPayload) +
                          " bytes for the InvokeFunction operation: " + message,
                      id);
    }
    return AwsError(
        status, status == 431 ? "RequestHeaderFieldsTooLarge" : "InvalidRequestContentException",
        message, id);
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
  if (out.http_status == 429) {
    http::HttpResponse r(429,
                         "{\"Type\":\"User\",\"Message\":" + json::Quote(out.status.message()) +
                             ",\"Reason\":" + json::Quote(out.body) + "}",
                         "application/json");
    r.headers.Set("x-amzn-ErrorType", "TooManyRequestsException");
    r.headers.Set("x-amzn-RequestId", request_id);
    r.headers.Set("Retry-After", "1");
    return r;
  }
  return AwsError(out.http_status, out.error_code, out.status.message(), request_id,
                  out.http_status >= 500 ? "Service" : "User");
}

}  // namespace

http::HttpResponse AwsError(int status, const std::string& code, const std::string& message,
                            const std::string& request_id, const std::string& type) {
  http::HttpResponse r(
      status, "{\"Type\":" + json::Quote(type) + ",\"Message\":" + json::Quote(message) + "}",
      "application/json");
  r.headers.Set("x-amzn-ErrorType", code);
  r.headers.Set("x-amzn-RequestId", request_id);
  return r;
}

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

LambdaApi::LambdaApi(uv_loop_t* loop, registry::Registry* registry, invoke::Invoker* invoker)
    : registry_(registry),
      invoker_(invoker),
      server_(
          loop, [this](std::shared_ptr<http::HttpExchange> ex) { router_.Dispatch(ex); },
          ServerOptions()) {
  using P = http::Router::Params;
  router_.Add("POST", "/2015-03-31/functions/{}/invocations",
              [this](const Ex& ex, const P& p) { Invoke(ex, p[0]); });
  router_.Add("POST", "/function/{}", [this](const Ex& ex, const P& p) { InvokePlain(ex, p[0]); });
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
      ex->Reply(AwsError(405, "MethodNotAllowedException", "method not allowed: " + what,
                         NewRequestId()));
    } else {
      ex->Reply(
          AwsError(404, "UnknownOperationException", "no such route: " + what, NewRequestId()));
    }
  });
}

LambdaApi::~LambdaApi() {
  server_.Close();
}

Status LambdaApi::Listen(const std::string& host, int port) {
  return server_.Listen(host, port);
}

std::shared_ptr<const registry::FunctionSpec> LambdaApi::Resolve(const Ex& ex,
                                                                 const std::string& ref,
                                                                 const std::string& request_id) {
  std::string name, qualifier;
  if (Status s = registry::ParseFunctionRef(ref, &name, &qualifier); !s.ok()) {
    ex->Reply(AwsError(400, "InvalidParameterValueException", s.message(), request_id));
    return nullptr;
  }
  if (auto q = ex->request().QueryParam("Qualifier"); q && !q->empty()) {
    if (!qualifier.empty() && qualifier != *q) {
      ex->Reply(AwsError(
          400, "InvalidParameterValueException",
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
    ex->Reply(AwsError(404, "ResourceNotFoundException", msg, request_id));
    return nullptr;
  }
  return spec;
}

// ---- Invoke: validate, then hand to the invoker; reply when the outcome is known ----

void LambdaApi::Invoke(const Ex& ex, const std::string& function_ref) {
  const http::HttpRequest& req = ex->request();
  std::string request_id = NewRequestId();
  auto spec = Resolve(ex, function_ref, request_id);
  if (!spec) return;

  std::string type(req.headers.Get("X-Amz-Invocation-Type").value_or("RequestResponse"));
  if (type != "RequestResponse" && type != "Event" && type != "DryRun") {
    ex->Reply(AwsError(
        400, "InvalidParameterValueException",
        "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun (got " + type + ")",
        request_id));
    return;
  }
  std::string log_type(req.headers.Get("X-Amz-Log-Type").value_or("None"));
  if (log_type != "None" && log_type != "Tail") {
    ex->Reply(AwsError(400, "InvalidParameterValueException",
                       "X-Amz-Log-Type must be None or Tail (got " + log_type + ")", request_id));
    return;
  }
  if (auto ct = req.headers.Get("Content-Type"); ct && !CanCarryJson(*ct)) {
    ex->Reply(
        AwsError(415, "UnsupportedMediaTypeException",
                 "The content type of the Invoke request body is not JSON: " + std::string(*ct),
                 request_id));
    return;
  }
  if (!req.body.empty()) {
    size_t at = 0;
    if (!json::Parse(req.body, &at)) {
      ex->Reply(AwsError(400, "InvalidRequestContentException",
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
      ex->Reply(AwsError(400, "InvalidParameterValueException",
                         "X-Amz-Client-Context must be base64-encoded JSON of at most " +
                             std::to_string(kMaxClientContextBytes) + " bytes",
                         request_id));
      return;
    }
    client_context = std::move(*decoded);
  }

  if (type == "DryRun") {
    invoker_->Validate(*spec, [ex, request_id](Status s) {
      if (!s.ok()) {
        ex->Reply(AwsError(
            s.code() == StatusCode::kUnavailable ? 503 : 502,
            s.code() == StatusCode::kNotFound ? "ResourceNotReadyException" : "ServiceException",
            s.message(), request_id, "Service"));
        return;
      }
      http::HttpResponse r(204, "", "");
      r.headers.Set("x-amzn-RequestId", request_id);
      ex->Reply(std::move(r));
    });
    return;
  }

  invoke::InvokeRequest ir;
  ir.function = spec;
  ir.request_id = request_id;
  ir.payload = std::move(ex->mutable_request().body);
  ir.client_context = type == "Event" ? "" : std::move(client_context);
  ir.capture_logs = log_type == "Tail" && type == "RequestResponse";
  if (auto ct = req.headers.Get("Content-Type"); ct && !ct->empty())
    ir.content_type = std::string(*ct);

  if (type == "Event") {
    // Accepted now, run in the background. Durability (Redis) is a later step:
    // until then a daemon restart loses accepted events, and the log says so.
    ++async_pending_;
    std::string name = spec->name;
    invoker_->Invoke(std::move(ir), [this, name, request_id](InvokeOutcome out) {
      --async_pending_;
      const char* what = out.kind == InvokeOutcome::Kind::kSuccess ? "succeeded"
                         : out.kind == InvokeOutcome::Kind::kFunctionError
                             ? "failed (function error)"
                             : "failed (service error)";
      LOG_INFO("invoke", "event %s for %s %s: %s", request_id.c_str(), name.c_str(), what,
               out.kind == InvokeOutcome::Kind::kSuccess ? "" : out.body.substr(0, 300).c_str());
    });
    http::HttpResponse r(202, "", "");
    r.headers.Set("x-amzn-RequestId", request_id);
    r.headers.Set("X-Amz-Executed-Version", "$LATEST");
    ex->Reply(std::move(r));
    return;
  }

  bool tail = ir.capture_logs;
  auto handle = invoker_->Invoke(std::move(ir), [ex, request_id, tail](InvokeOutcome out) {
    if (out.kind == InvokeOutcome::Kind::kServiceError) {
      ex->Reply(ServiceErrorResponse(out, request_id));
      return;
    }
    http::HttpResponse r(200, std::move(out.body), out.content_type);
    r.headers.Set("x-amzn-RequestId", request_id);
    r.headers.Set("X-Amz-Executed-Version", "$LATEST");
    r.headers.Set("Server-Timing", out.phases.ServerTiming());
    if (out.kind == InvokeOutcome::Kind::kFunctionError)
      r.headers.Set("X-Amz-Function-Error", "Unhandled");
    if (tail) r.headers.Set("X-Amz-Log-Result", LogResult(request_id, out));
    ex->Reply(std::move(r));
  });
  if (handle != 0) ex->SetOnAbort([this, handle] { invoker_->Cancel(handle); });
}

// ---- The plain route: no JSON rules, raw bytes both ways ----

void LambdaApi::InvokePlain(const Ex& ex, const std::string& name) {
  std::string request_id = NewRequestId();
  auto spec = registry_->Find(name);
  if (!spec) {
    ex->Reply(AwsError(404, "ResourceNotFoundException",
                       "Function not found: " + name + " (see GET /2015-03-31/functions)",
                       request_id));
    return;
  }
  invoke::InvokeRequest ir;
  ir.function = spec;
  ir.request_id = request_id;
  ir.payload = std::move(ex->mutable_request().body);
  if (auto ct = ex->request().headers.Get("Content-Type"); ct && !ct->empty())
    ir.content_type = std::string(*ct);
  auto handle = invoker_->Invoke(std::move(ir), [ex, request_id](InvokeOutcome out) {
    if (out.kind == InvokeOutcome::Kind::kServiceError) {
      ex->Reply(ServiceErrorResponse(out, request_id));
      return;
    }
    bool failed = out.kind == InvokeOutcome::Kind::kFunctionError;
    http::HttpResponse r(failed ? 500 : 200, std::move(out.body),
                         failed ? "application/json" : out.content_type);
    r.headers.Set("x-amzn-RequestId", request_id);
    r.headers.Set("Server-Timing", out.phases.ServerTiming());
    if (failed) r.headers.Set("X-Amz-Function-Error", "Unhandled");
    ex->Reply(std::move(r));
  });
  if (handle != 0) ex->SetOnAbort([this, handle] { invoker_->Cancel(handle); });
}

// ---- Control plane ----

void LambdaApi::CreateFunction(const Ex& ex) {
  std::string request_id = NewRequestId();
  size_t at = 0;
  auto body = json::Parse(ex->request().body, &at);
  if (!body || !cJSON_IsObject(body.get())) {
    ex->Reply(
        AwsError(400, "InvalidRequestContentException",
                 "Could not parse request body into json: expected a JSON object (error at byte " +
                     std::to_string(at) + ")",
                 request_id));
    return;
  }
  registry::FunctionSpec spec;
  if (Status s = registry::SpecFromCreateFunction(body.get(), &spec); !s.ok()) {
    ex->Reply(AwsError(400, "InvalidParameterValueException", s.message(), request_id));
    return;
  }
  if (registry_->Find(spec.name)) {
    ex->Reply(AwsError(409, "ResourceConflictException", "Function already exist: " + spec.name,
                       request_id));
    return;
  }
  // The image must exist here: nothing can be pulled (DESIGN.md decision 6).
  invoker_->Validate(spec, [this, ex, request_id, spec](Status s) mutable {
    if (!s.ok()) {
      bool missing = s.code() == StatusCode::kNotFound;
      ex->Reply(AwsError(missing ? 400 : 503,
                         missing ? "InvalidParameterValueException" : "ServiceException",
                         s.message(), request_id, missing ? "User" : "Service"));
      return;
    }
    std::string name = spec.name;
    if (Status c = registry_->Create(std::move(spec)); !c.ok()) {
      int status = c.code() == StatusCode::kConflict          ? 409
                   : c.code() == StatusCode::kInvalidArgument ? 400
                                                              : 500;
      const char* code = status == 409   ? "ResourceConflictException"
                         : status == 400 ? "InvalidParameterValueException"
                                         : "ServiceException";
      ex->Reply(AwsError(status, code, c.message(), request_id));
      return;
    }
    LOG_INFO("api", "created function %s", name.c_str());
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
      ex->Reply(AwsError(400, "InvalidParameterValueException",
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
    ex->Reply(AwsError(
        s.code() == StatusCode::kNotFound ? 404 : 500,
        s.code() == StatusCode::kNotFound ? "ResourceNotFoundException" : "ServiceException",
        s.message(), request_id));
    return;
  }
  LOG_INFO("api", "deleted function %s", spec->name.c_str());
  http::HttpResponse r(204, "", "");
  r.headers.Set("x-amzn-RequestId", request_id);
  ex->Reply(std::move(r));
}

// ---- Health and metrics ----

void LambdaApi::Health(const Ex& ex) {
  char body[200];
  std::snprintf(body, sizeof body,
                "{\"status\":\"ok\",\"in_flight\":%zu,\"disposing\":%zu,\"functions\":%zu}\n",
                invoker_->in_flight(), invoker_->disposing(), registry_->List().size());
  ex->Reply(http::HttpResponse(200, body, "application/json"));
}

void LambdaApi::Metrics(const Ex& ex) {
  const invoke::InvokerStats& s = invoker_->stats();
  std::string out;
  char line[256];
  auto counter = [&](const char* name, const char* help, const char* labels, double v,
                     const char* kind) {
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s%s %.6g\n", name, help, name,
                  kind, name, labels, v);
    out += line;
  };
  counter("ephemera_invocations_started_total", "Invocations admitted.", "", double(s.started),
          "counter");
  counter("ephemera_invocations_succeeded_total", "Invocations answered by /response.", "",
          double(s.succeeded), "counter");
  counter("ephemera_invocations_function_errors_total",
          "Invocations that ended in a function error.", "", double(s.function_errors), "counter");
  counter("ephemera_invocations_service_errors_total", "Invocations ephemera could not run.", "",
          double(s.service_errors), "counter");
  counter("ephemera_invocations_timeouts_total", "Invocations killed at their timeout.", "",
          double(s.timeouts), "counter");
  counter("ephemera_invocations_throttled_total", "Invocations refused with 429.", "",
          double(s.throttled), "counter");
  counter("ephemera_containers_created_total", "Containers created.", "",
          double(s.containers_created), "counter");
  counter("ephemera_containers_removed_total", "Containers removed after their invocation.", "",
          double(s.containers_removed), "counter");
  counter("ephemera_invocations_in_flight", "Invocations running now.", "",
          double(invoker_->in_flight()), "gauge");
  counter("ephemera_async_pending", "Event invocations accepted and not finished.", "",
          double(async_pending_), "gauge");
  out +=
      "# HELP ephemera_phase_seconds_sum Time spent per cold-start phase, summed over successful "
      "invocations.\n"
      "# TYPE ephemera_phase_seconds_sum counter\n";
  for (auto [name, v] : {std::pair{"image", s.sum.image},
                         {"create", s.sum.create},
                         {"start", s.sum.start},
                         {"init", s.sum.init},
                         {"handler", s.sum.handler},
                         {"total", s.sum.total}}) {
    std::snprintf(line, sizeof line, "ephemera_phase_seconds_sum{phase=\"%s\"} %.6f\n", name,
                  v / 1000.0);
    out += line;
  }
  ex->Reply(http::HttpResponse(200, std::move(out), "text/plain; version=0.0.4"));
}

}  // namespace ephemera::api
