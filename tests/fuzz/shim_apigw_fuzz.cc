// Fuzz target: the shim's API Gateway conversion (shim/apigw.h) and the JSON
// reader and writer under it (shim/json.h).
//
// Input: an event, as JSON text (anything else still exercises the string
// helpers). Properties (the target aborts if one fails):
//   - the Lambda proxy result written for any response is valid JSON, and its
//     body (text or base64) gives back the response body;
//   - JsonQuote of valid UTF-8 parses back to the same string; base64 round trips;
//     PercentEncode emits only unreserved characters and %XX.
// With EPHEMERA_FUZZ_STRICT_WIRE=1 in the environment it also checks that the
// HTTP request built from an event is safe to put on the wire (method a token,
// no space or control character in the target, no CR, LF or NUL in header
// names and values). The shim does not enforce that today, so it is off by
// default (see tests/fuzz/README.md).
// Thread: libFuzzer's. Depends on: shim core (no sockets used here).
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "shim/apigw.h"
#include "shim/http_client.h"
#include "shim/json.h"

namespace {

namespace shim = ephemera::shim;

bool g_strict_wire = false;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

bool HasNoCtlOrSpace(std::string_view s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c == 0x7F) return false;
  }
  return true;
}

bool IsFieldValue(std::string_view s) {
  for (unsigned char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

void CheckWire(const shim::HttpRequest& r) {
  if (!g_strict_wire) return;
  Check(IsToken(r.method), "the method is a token");
  Check(!r.target.empty() && r.target[0] == '/' && HasNoCtlOrSpace(r.target),
        "the target is an origin-form without spaces or controls");
  for (const auto& [name, value] : r.headers) {
    Check(IsToken(name), "header names are tokens");
    Check(IsFieldValue(value), "header values hold no CR, LF or NUL");
  }
}

// The result for `response` is valid JSON that carries the body back.
void CheckResult(const shim::HttpResponse& response, shim::ApiGatewayFormat format) {
  std::string result = shim::HttpResponseToApiGatewayResult(response, format);
  shim::JsonValue parsed;
  std::string error;
  if (!shim::JsonValue::Parse(result, &parsed, &error)) {
    std::fprintf(stderr, "proxy result is not JSON (%s): %s\n", error.c_str(), result.c_str());
    std::abort();
  }
  const std::string* body = parsed.FindString("body");
  const shim::JsonValue* b64 = parsed.Find("isBase64Encoded");
  Check(body != nullptr && b64 != nullptr && b64->is_bool(), "body and isBase64Encoded present");
  if (b64->bool_value()) {
    std::string decoded;
    Check(shim::Base64Decode(*body, &decoded), "a base64 body decodes");
    Check(decoded == response.body, "the base64 body is the response body");
  } else {
    Check(*body == response.body, "a text body is the response body");
  }
  const shim::JsonValue* status = parsed.Find("statusCode");
  Check(status != nullptr && status->text() == std::to_string(response.status),
        "statusCode is the status");
}

void CheckStrings(std::string_view s) {
  std::string quoted = shim::JsonQuote(s);
  shim::JsonValue v;
  std::string error;
  Check(shim::JsonValue::Parse(quoted, &v, &error) && v.is_string(), "JsonQuote gives JSON");
  if (shim::IsValidUtf8(s)) Check(v.text() == s, "JsonQuote of UTF-8 parses back unchanged");
  std::string decoded;
  Check(shim::Base64Decode(shim::Base64Encode(s), &decoded) && decoded == s, "base64 round trip");
  (void)shim::Base64Decode(s, &decoded);
  std::string encoded = shim::PercentEncode(s);
  for (size_t i = 0; i < encoded.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(encoded[i]);
    if (c == '%') {
      Check(i + 2 < encoded.size() && std::isxdigit(static_cast<unsigned char>(encoded[i + 1])) &&
                std::isxdigit(static_cast<unsigned char>(encoded[i + 2])),
            "a % is followed by two hex digits");
      i += 2;
      continue;
    }
    Check(IsTokenChar(c) || c == '~', "PercentEncode leaves only safe characters");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // On by default since the shim refuses CR/LF in what it writes to the wire;
  // EPHEMERA_FUZZ_STRICT_WIRE=0 turns the check off.
  const char* strict = std::getenv("EPHEMERA_FUZZ_STRICT_WIRE");
  g_strict_wire = strict == nullptr || std::string_view(strict) != "0";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckStrings(text.substr(0, 4096));

  shim::JsonValue event;
  std::string error;
  if (!shim::JsonValue::Parse(text, &event, &error)) return 0;
  shim::ApiGatewayFormat format = shim::DetectApiGatewayFormat(event);
  shim::HttpRequest request;
  shim::Status st = shim::ApiGatewayEventToRequest(event, format, &request);
  if (format == shim::ApiGatewayFormat::kNone) {
    Check(!st.ok(), "a non-proxy event is refused");
    // Still answer it in both formats, as http mode does for the service's reply.
    shim::HttpResponse response;
    response.status = 200;
    response.body = std::string(text.substr(0, 256));
    CheckResult(response, shim::ApiGatewayFormat::kV1);
    CheckResult(response, shim::ApiGatewayFormat::kV2);
    return 0;
  }
  if (!st.ok()) return 0;  // a body marked base64 that is not
  CheckWire(request);
  // The service answers with what it was sent: every header and body shape the
  // event could produce goes through the result writer.
  shim::HttpResponse response;
  response.status = 100 + static_cast<int>(size % 500);
  response.headers = request.headers;
  response.headers.emplace_back("Set-Cookie", "a=1");
  response.headers.emplace_back("set-cookie", request.method);
  response.body = request.body;
  CheckResult(response, format);
  return 0;
}
