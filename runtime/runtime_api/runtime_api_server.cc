#include "runtime/runtime_api/runtime_api_server.h"

#include "runtime/core/clock.h"
#include "runtime/core/log.h"
#include "runtime/json/json.h"
#include "shim/log_mark.h"

namespace ephemera::runtime_api {
namespace {

constexpr char kPrefix[] = "/2018-06-01";

http::HttpServer::Options ServerOptions() {
  http::HttpServer::Options o;
  o.name = "runtime-api";
  o.limits.max_body_bytes = kMaxRuntimeResponseBytes;
  o.error_response = [](int status, const std::string& message, const http::HttpRequest&) {
    if (status == 413) {
      return RuntimeApiError(413, "RequestEntityTooLarge",
                             "Exceeded maximum allowed payload size (" +
                                 std::to_string(kMaxRuntimeResponseBytes) + " bytes).");
    }
    return RuntimeApiError(status, "InvalidRequest", message);
  };
  return o;
}

// The error type a runtime reported: the header when present, else the body's
// errorType, else a generic one.
RuntimeError ReadRuntimeError(const http::HttpRequest& req) {
  RuntimeError err;
  err.body = req.body;
  err.content_type = std::string(req.headers.Get("Content-Type").value_or("application/json"));
  if (auto h = req.headers.Get("Lambda-Runtime-Function-Error-Type"); h && !h->empty()) {
    err.error_type = std::string(*h);
  } else if (auto j = json::Parse(req.body); j) {
    err.error_type = json::GetString(j.get(), "errorType").value_or("");
  }
  if (err.error_type.empty()) err.error_type = "Runtime.Unknown";
  return err;
}

// The answer to a result. A runtime that sent its next GET /next with the result gets it
// together with that event (HttpResponse::may_wait_for_next).
http::HttpResponse Accepted() {
  http::HttpResponse r(202, "{\"status\":\"OK\"}\n", "application/json");
  r.may_wait_for_next = true;
  return r;
}

}  // namespace

http::HttpResponse RuntimeApiError(int status, const std::string& type,
                                   const std::string& message) {
  return http::HttpResponse(
      status,
      "{\"errorMessage\":" + json::Quote(message) + ",\"errorType\":" + json::Quote(type) + "}\n",
      "application/json");
}

RuntimeApiServer::RuntimeApiServer(uv_loop_t* loop, Callbacks callbacks)
    : callbacks_(std::move(callbacks)),
      server_(
          loop, [this](std::shared_ptr<http::HttpExchange> ex) { router_.Dispatch(ex); },
          ServerOptions()) {
  using Ex = std::shared_ptr<http::HttpExchange>;
  using Params = http::Router::Params;
  const std::string p = kPrefix;
  router_.Add("GET", p + "/runtime/invocation/next",
              [this](const Ex& ex, const Params&) { HandleNext(ex); });
  router_.Add("POST", p + "/runtime/invocation/{}/response",
              [this](const Ex& ex, const Params& a) { HandleResponse(ex, a[0]); });
  router_.Add("POST", p + "/runtime/invocation/{}/error",
              [this](const Ex& ex, const Params& a) { HandleError(ex, a[0]); });
  router_.Add("POST", p + "/runtime/init/error",
              [this](const Ex& ex, const Params&) { HandleInitError(ex); });
  router_.Add("POST", "/2015-03-31/functions/{}/invocations",
              [this](const Ex& ex, const Params& a) {
                if (callbacks_.on_invoke) {
                  callbacks_.on_invoke(ex, a[0]);
                  return;
                }
                ex->Reply(RuntimeApiError(404, "NotFound", "no Invoke endpoint here"));
              });
  router_.Add("GET", p + "/ping",
              [](const Ex& ex, const Params&) { ex->Reply(http::HttpResponse(200, "pong\n")); });
  router_.SetFallback([](const Ex& ex, int status) {
    ex->Reply(RuntimeApiError(
        status, status == 405 ? "MethodNotAllowed" : "NotFound",
        "no Runtime API route for " + ex->request().method + " " + ex->request().path));
  });
}

RuntimeApiServer::~RuntimeApiServer() {
  parked_next_.reset();
  server_.Close();
}

Status RuntimeApiServer::Listen(const std::string& host) {
  return server_.Listen(host, 0);
}

Status RuntimeApiServer::ListenUnix(const std::string& path) {
  return server_.ListenUnix(path, 0666);
}

std::string RuntimeApiServer::address() const {
  return server_.host() + ":" + std::to_string(server_.port());
}

bool RuntimeApiServer::runtime_waiting() const {
  return parked_next_ && parked_next_->waiting();
}

void RuntimeApiServer::Deliver(Event event) {
  queue_.push_back(std::move(event));
  if (parked_next_ && parked_next_->waiting()) {
    auto ex = std::move(parked_next_);
    parked_next_.reset();
    HandOut(ex);
  }
}

void RuntimeApiServer::HandleNext(const std::shared_ptr<http::HttpExchange>& ex) {
  ++next_calls_;
  if (ex->request().headers.Has(shim::kLogMarksOfferHeader)) offers_log_marks_ = true;
  if (queue_.empty()) {
    if (parked_next_ && parked_next_->waiting()) {
      ex->Reply(RuntimeApiError(403, "InvalidStateTransition",
                                "another /next request is already waiting for an event"));
      return;
    }
    parked_next_ = ex;
    std::weak_ptr<http::HttpExchange> weak = ex;
    ex->SetOnAbort([this, weak] {
      if (parked_next_ && parked_next_ == weak.lock()) parked_next_.reset();
    });
    if (callbacks_.on_next) callbacks_.on_next(nullptr);
    return;
  }
  HandOut(ex);
}

void RuntimeApiServer::HandOut(const std::shared_ptr<http::HttpExchange>& ex) {
  Event event = std::move(queue_.front());
  queue_.pop_front();
  http::HttpResponse r(200, std::move(event.payload), event.content_type);
  r.headers.Set("Lambda-Runtime-Aws-Request-Id", event.request_id);
  r.headers.Set("Lambda-Runtime-Deadline-Ms",
                std::to_string(EpochMs() + static_cast<int64_t>(event.timeout_ms)));
  r.headers.Set("Lambda-Runtime-Invoked-Function-Arn", event.function_arn);
  if (!event.trace_id.empty()) r.headers.Set("Lambda-Runtime-Trace-Id", event.trace_id);
  if (!event.client_context.empty())
    r.headers.Set("Lambda-Runtime-Client-Context", event.client_context);
  if (!event.cognito_identity.empty()) {
    r.headers.Set("Lambda-Runtime-Cognito-Identity", event.cognito_identity);
  }
  if (event.log_mark) r.headers.Set(shim::kLogMarkAskHeader, "1");
  outstanding_.insert(event.request_id);
  event.payload.clear();
  // Tell the owner before replying: it starts the handler clock at hand-out.
  if (callbacks_.on_next) callbacks_.on_next(&event);
  ex->Reply(std::move(r));
}

bool RuntimeApiServer::ClaimRequestId(const std::shared_ptr<http::HttpExchange>& ex,
                                      const std::string& id) {
  if (outstanding_.erase(id) == 1) return true;
  ex->Reply(RuntimeApiError(400, "InvalidRequestID", "Invalid request ID"));
  return false;
}

void RuntimeApiServer::HandleResponse(const std::shared_ptr<http::HttpExchange>& ex,
                                      const std::string& id) {
  const auto& req = ex->request();
  if (auto mode = req.headers.Get("Lambda-Runtime-Function-Response-Mode");
      mode && !http::EqualsIgnoreCase(*mode, "buffered")) {
    ex->Reply(RuntimeApiError(
        400, "InvalidFunctionResponseMode",
        "Invalid function response mode: ephemera supports buffered responses only"));
    return;
  }
  if (!ClaimRequestId(ex, id)) return;
  std::string content_type(req.headers.Get("Content-Type").value_or("application/json"));
  std::string body = std::move(ex->mutable_request().body);
  ex->Reply(Accepted());
  if (callbacks_.on_response) callbacks_.on_response(id, std::move(body), std::move(content_type));
}

void RuntimeApiServer::HandleError(const std::shared_ptr<http::HttpExchange>& ex,
                                   const std::string& id) {
  if (!ClaimRequestId(ex, id)) return;
  RuntimeError err = ReadRuntimeError(ex->request());
  ex->Reply(Accepted());
  if (callbacks_.on_error) callbacks_.on_error(id, std::move(err));
}

void RuntimeApiServer::HandleInitError(const std::shared_ptr<http::HttpExchange>& ex) {
  RuntimeError err = ReadRuntimeError(ex->request());
  ex->Reply(Accepted());
  if (callbacks_.on_init_error) callbacks_.on_init_error(std::move(err));
}

}  // namespace ephemera::runtime_api
