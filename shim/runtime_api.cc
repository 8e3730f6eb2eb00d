// shim/runtime_api.cc: see runtime_api.h.
#include "shim/runtime_api.h"

#include <cstdlib>

#include "shim/json.h"

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

Status RuntimeApiClient::Next(Invocation* invocation, HttpResponse* full_response) {
  HttpRequest request;
  request.method = "GET";
  request.target = std::string(kPrefix) + "/invocation/next";
  request.headers.emplace_back("User-Agent", kUserAgent);
  HttpResponse local_response;
  HttpResponse& response = full_response != nullptr ? *full_response : local_response;
  Status st = http_.Send(request, &response, /*abortable=*/true);  // SIGTERM ends the wait
  if (!st.ok()) return st;
  if (response.status != 200) {
    return Status::Error("GET /next answered " + std::to_string(response.status) + ": " +
                         Excerpt(response.body));
  }
  *invocation = Invocation();
  invocation->request_id = HeaderOrEmpty(response, "Lambda-Runtime-Aws-Request-Id");
  if (invocation->request_id.empty()) {
    return Status::Error("GET /next answered without Lambda-Runtime-Aws-Request-Id");
  }
  std::string deadline = HeaderOrEmpty(response, "Lambda-Runtime-Deadline-Ms");
  invocation->deadline_ms = deadline.empty() ? 0 : strtoll(deadline.c_str(), nullptr, 10);
  invocation->function_arn = HeaderOrEmpty(response, "Lambda-Runtime-Invoked-Function-Arn");
  invocation->trace_id = HeaderOrEmpty(response, "Lambda-Runtime-Trace-Id");
  invocation->client_context = HeaderOrEmpty(response, "Lambda-Runtime-Client-Context");
  invocation->cognito_identity = HeaderOrEmpty(response, "Lambda-Runtime-Cognito-Identity");
  invocation->content_type = HeaderOrEmpty(response, "Content-Type");
  if (full_response != nullptr) {
    invocation->event = response.body;
  } else {
    invocation->event.swap(response.body);
  }
  return Status::Ok();
}

Status RuntimeApiClient::Post(std::string target, std::string body, std::string_view content_type,
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
  HttpResponse response;
  Status st = http_.Send(request, &response);
  if (!st.ok()) return st;
  if (response.status < 200 || response.status > 299) {
    return Status::Error("POST " + request.target + " answered " + std::to_string(response.status) +
                         ": " + Excerpt(response.body));
  }
  return Status::Ok();
}

Status RuntimeApiClient::PostResponse(std::string_view request_id, std::string body,
                                      std::string_view content_type) {
  return Post(std::string(kPrefix) + "/invocation/" + std::string(request_id) + "/response",
              std::move(body), content_type, {});
}

Status RuntimeApiClient::PostError(std::string_view request_id, std::string_view error_type,
                                   std::string_view message) {
  return Post(std::string(kPrefix) + "/invocation/" + std::string(request_id) + "/error",
              ErrorBody(error_type, message), "application/json", error_type);
}

Status RuntimeApiClient::PostInitError(std::string_view error_type, std::string_view message) {
  return Post(std::string(kPrefix) + "/init/error", ErrorBody(error_type, message),
              "application/json", error_type);
}

}  // namespace ephemera::shim
