// shim/runtime_api.cc: see runtime_api.h.
#include "shim/runtime_api.h"

#include <cstdlib>

#include "shim/json.h"
#include "shim/log_mark.h"

namespace ephemera::shim {
namespace {

constexpr char kPrefix[] = "/2018-06-01/runtime";
constexpr char kUserAgent[] = "ephemera-shim/0.1";

std::string HeaderOrEmpty(const HttpResponse& r, std::string_view name) {
  const std::string* v = r.Header(name);
  return v != nullptr ? *v : std::string();
}

// The first ~200 bytes of a body, for error messages.
std::string Excerpt(const std::string& body) {
  return body.size() <= 200 ? body : body.substr(0, 200) + "...";
}

}  // namespace

std::string ErrorBody(std::string_view error_type, std::string_view message) {
  std::string body = "{\"errorMessage\":";
  AppendJsonString(&body, message);
  body.append(",\"errorType\":");
  AppendJsonString(&body, error_type);
  body.append(",\"stackTrace\":[]}");
  return body;
}

Status UpstreamFromEnvironment(Endpoint* endpoint, std::string* source) {
  auto value = [](const char* name) -> const char* {
    const char* v = getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
  };
  if (const char* path = value("EPHEMERA_RUNTIME_SOCKET")) {
    if (source != nullptr) *source = "EPHEMERA_RUNTIME_SOCKET";
    if (path[0] != '/') {
      return Status::Error(std::string("EPHEMERA_RUNTIME_SOCKET must be an absolute path, got '") +
                           path + "'");
    }
    *endpoint = Endpoint();
    endpoint->unix_path = path;
    return Status::Ok();
  }
  for (const char* name : {"EPHEMERA_RUNTIME_API", "AWS_LAMBDA_RUNTIME_API"}) {
    const char* spec = value(name);
    if (spec == nullptr) continue;
    if (source != nullptr) *source = name;
    if (!Endpoint::ParseHostPort(spec, endpoint)) {
      return Status::Error(std::string(name) + " must be host:port, got '" + spec + "'");
    }
    return Status::Ok();
  }
  if (source != nullptr) *source = "AWS_LAMBDA_RUNTIME_API";
  return Status::Error(
      "no Runtime API: set AWS_LAMBDA_RUNTIME_API=host:port or EPHEMERA_RUNTIME_SOCKET=/path");
}

namespace {

HttpRequest NextRequest() {
  HttpRequest request;
  request.method = "GET";
  request.target = std::string(kPrefix) + "/invocation/next";
  request.headers.emplace_back("User-Agent", kUserAgent);
  request.headers.emplace_back(std::string(kLogMarksOfferHeader), "1");
  return request;
}

HttpRequest PostRequest(std::string target, std::string body, std::string_view content_type,
                        std::string_view error_type) {
  HttpRequest request;
  request.method = "POST";
  request.target = std::move(target);
  request.headers.emplace_back("User-Agent", kUserAgent);
  request.headers.emplace_back("Content-Type",
                               content_type.empty() ? "application/octet-stream" : content_type);
  if (!error_type.empty()) {
    request.headers.emplace_back("Lambda-Runtime-Function-Error-Type", std::string(error_type));
  }
  request.body = std::move(body);
  return request;
}

Status CheckPosted(const HttpRequest& request, const HttpResponse& response) {
  if (response.status < 200 || response.status > 299) {
    return Status::Error("POST " + request.target + " answered " + std::to_string(response.status) +
                         ": " + Excerpt(response.body));
  }
  return Status::Ok();
}

// The event of a GET /next answer; `keep` leaves the response's body in place.
Status ReadInvocation(HttpResponse* response, bool keep, Invocation* invocation) {
  if (response->status != 200) {
    return Status::Error("GET /next answered " + std::to_string(response->status) + ": " +
                         Excerpt(response->body));
  }
  *invocation = Invocation();
  invocation->request_id = HeaderOrEmpty(*response, "Lambda-Runtime-Aws-Request-Id");
  if (invocation->request_id.empty()) {
    return Status::Error("GET /next answered without Lambda-Runtime-Aws-Request-Id");
  }
  std::string deadline = HeaderOrEmpty(*response, "Lambda-Runtime-Deadline-Ms");
  invocation->deadline_ms = deadline.empty() ? 0 : strtoll(deadline.c_str(), nullptr, 10);
  invocation->function_arn = HeaderOrEmpty(*response, "Lambda-Runtime-Invoked-Function-Arn");
  invocation->trace_id = HeaderOrEmpty(*response, "Lambda-Runtime-Trace-Id");
  invocation->client_context = HeaderOrEmpty(*response, "Lambda-Runtime-Client-Context");
  invocation->cognito_identity = HeaderOrEmpty(*response, "Lambda-Runtime-Cognito-Identity");
  invocation->content_type = HeaderOrEmpty(*response, "Content-Type");
  if (response->Header(kLogMarkAskHeader) != nullptr) ExpectLogMark(invocation->request_id);
  if (keep) {
    invocation->event = response->body;
  } else {
    invocation->event.swap(response->body);
  }
  return Status::Ok();
}

}  // namespace

Status RuntimeApiClient::Next(Invocation* invocation, HttpResponse* full_response) {
  HttpResponse local_response;
  HttpResponse& response = full_response != nullptr ? *full_response : local_response;
  Status st = http_.Send(NextRequest(), &response, /*abortable=*/true);  // SIGTERM ends the wait
  if (!st.ok()) return st;
  return ReadInvocation(&response, full_response != nullptr, invocation);
}

Status RuntimeApiClient::Post(std::string_view request_id, std::string target, std::string body,
                              std::string_view content_type, std::string_view error_type) {
  WriteLogMarkFor(request_id);  // the output so far is ahead of the mark (log_mark.h)
  HttpRequest request = PostRequest(std::move(target), std::move(body), content_type, error_type);
  HttpResponse response;
  Status st = http_.Send(request, &response);
  if (!st.ok()) return st;
  return CheckPosted(request, response);
}

Status RuntimeApiClient::PostResponse(std::string_view request_id, std::string body,
                                      std::string_view content_type) {
  return Post(request_id,
              std::string(kPrefix) + "/invocation/" + std::string(request_id) + "/response",
              std::move(body), content_type, {});
}

Status RuntimeApiClient::PostError(std::string_view request_id, std::string_view error_type,
                                   std::string_view message) {
  return Post(request_id,
              std::string(kPrefix) + "/invocation/" + std::string(request_id) + "/error",
              ErrorBody(error_type, message), "application/json", error_type);
}

Status RuntimeApiClient::PostThenNext(std::string_view request_id, const HttpRequest& post,
                                      Invocation* next, bool* posted) {
  *posted = false;
  WriteLogMarkFor(request_id);
  HttpResponse post_response;
  HttpResponse next_response;
  Status st = http_.SendPipelined(post, &post_response, NextRequest(), &next_response,
                                  /*abortable=*/true);  // SIGTERM ends the wait for the event
  if (post_response.status == 0) return st;             // the result's answer never came
  // A refused result withdrew the /next (SendPipelined): nothing was taken.
  if (Status checked = CheckPosted(post, post_response); !checked.ok()) return checked;
  *posted = true;
  if (!st.ok()) return st;
  return ReadInvocation(&next_response, /*keep=*/false, next);
}

Status RuntimeApiClient::PostResponseThenNext(std::string_view request_id, std::string body,
                                              std::string_view content_type, Invocation* next,
                                              bool* posted) {
  return PostThenNext(
      request_id,
      PostRequest(std::string(kPrefix) + "/invocation/" + std::string(request_id) + "/response",
                  std::move(body), content_type, {}),
      next, posted);
}

Status RuntimeApiClient::PostErrorThenNext(std::string_view request_id, std::string_view error_type,
                                           std::string_view message, Invocation* next,
                                           bool* posted) {
  return PostThenNext(
      request_id,
      PostRequest(std::string(kPrefix) + "/invocation/" + std::string(request_id) + "/error",
                  ErrorBody(error_type, message), "application/json", error_type),
      next, posted);
}

Status RuntimeApiClient::PostInitError(std::string_view error_type, std::string_view message) {
  return Post({}, std::string(kPrefix) + "/init/error", ErrorBody(error_type, message),
              "application/json", error_type);
}

}  // namespace ephemera::shim
