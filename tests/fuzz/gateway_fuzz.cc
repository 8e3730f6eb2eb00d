// Fuzz target: the HTTP gateway's conversions (runtime/api/gateway.h), on what a client
// and a function send: an HTTP request, parsed by the daemon's RequestParser, becomes a
// format 2.0 event (BuildGatewayEvent); a function's answer becomes the reply
// (ResponseFromAnswer).
//
// Input: one control byte, then bytes. The control byte's low bit picks the half:
// 0 = the bytes are a client's request to /gateway/..., 1 = the bytes are a function's
// answer. Properties (the target aborts if one fails): an event that was built is valid
// JSON with version "2.0" and the request's method; a reply's status is 100..599, and a
// reply to a malformed proxy response is a 502 that says why.
// Thread: libFuzzer's. Depends on: api, http, json (no daemon, no engine).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "runtime/api/gateway.h"
#include "runtime/core/log.h"
#include "runtime/http/request_parser.h"
#include "runtime/json/json.h"

namespace {

namespace api = ephemera::api;
namespace http = ephemera::http;
namespace json = ephemera::json;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

void FuzzRequest(std::string_view bytes) {
  http::RequestParser parser({}, nullptr);
  size_t consumed = 0;
  if (parser.Feed(bytes.data(), bytes.size(), &consumed) != http::RequestParser::Result::kRequest) {
    return;
  }
  http::HttpRequest request = parser.TakeRequest();
  // The router's catch-all: the rest of the path after /gateway/{function}/, if any.
  std::string proxy;
  const std::string* tail = nullptr;
  std::string_view path = request.path;
  if (path.rfind(api::kGatewayPrefix, 0) == 0) {
    size_t slash = path.find('/', sizeof(api::kGatewayPrefix) - 1);
    if (slash != std::string_view::npos) {
      proxy.assign(path.substr(slash + 1));
      tail = &proxy;
    }
  }
  std::string event;
  ephemera::Status st =
      api::BuildGatewayEvent(request, tail, "req-1", 1700000000000, 6 * 1024 * 1024, &event);
  if (!st.ok()) {
    Check(!st.message().empty(), "a refusal says why");
    return;
  }
  auto j = json::Parse(event);
  Check(j != nullptr, "the event is valid JSON");
  Check(json::GetString(j.get(), "version").value_or("") == "2.0", "version 2.0");
  const cJSON* ctx = cJSON_GetObjectItemCaseSensitive(j.get(), "requestContext");
  const cJSON* h = cJSON_GetObjectItemCaseSensitive(ctx, "http");
  Check(json::GetString(h, "method").value_or("") == request.method, "the method is kept");
}

void FuzzAnswer(std::string_view bytes) {
  http::HttpResponse reply = api::ResponseFromAnswer(std::string(bytes));
  Check(reply.status >= 100 && reply.status <= 599, "a status HTTP knows");
  if (reply.status == 502) Check(!reply.body.empty(), "a 502 says why");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    ephemera::SetLogLevel(ephemera::LogLevel::kError);
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    FuzzRequest(in);
  } else {
    FuzzAnswer(in);
  }
  return 0;
}
