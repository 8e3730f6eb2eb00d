// runtime/api/gateway.cc: see gateway.h.
#include "runtime/api/gateway.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/core/base64.h"
#include "runtime/json/json.h"

namespace ephemera::api {
namespace {

constexpr size_t kMaxDetailBytes = 512;
constexpr char kHex[] = "0123456789abcdef";

// ---- JSON text, written straight into the event ----

// Length of the valid UTF-8 sequence that starts at s[i] (1 to 4), or 0 if none does
// (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
size_t Utf8SequenceAt(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c == 0xE0) {
    n = 3, lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    n = 3;
  } else if (c == 0xED) {
    n = 3, hi = 0x9F;
  } else if (c == 0xF0) {
    n = 4, lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    n = 4;
  } else if (c == 0xF4) {
    n = 4, hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
  if (c1 < lo || c1 > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    unsigned char ck = static_cast<unsigned char>(s[i + k]);
    if (ck < 0x80 || ck > 0xBF) return 0;
  }
  return n;
}

// Whether a body can travel as a JSON string as it is: valid UTF-8 without NUL bytes
// (cJSON, like many runtimes' parsers, ends a string at an escaped NUL).
bool IsTextBody(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = Utf8SequenceAt(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Appends `s` as a JSON string literal. Runs of bytes that need no escape are appended
// in one piece; a byte that is not part of valid UTF-8 is written as \u00XX (Latin-1).
void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  size_t run = 0, i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (size_t n = Utf8SequenceAt(s, i); n > 0) {
        i += n;
        continue;
      }
    }
    out->append(s.data() + run, i - run);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
    run = ++i;
  }
  out->append(s.data() + run, i - run);
  out->push_back('"');
}

// Appends the base64 of `data` (RFC 4648, padded), the same text as core's Base64Encode,
// without a temporary string as large as the body.
void AppendBase64(std::string* out, std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(data[k])); };
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    char quad[4] = {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63],
                    kAlphabet[v & 63]};
    out->append(quad, 4);
  }
  size_t left = data.size() - i;
  if (left == 0) return;
  uint32_t v = byte(i) << 16 | (left == 2 ? byte(i + 1) << 8 : 0);
  char quad[4] = {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63],
                  left == 2 ? kAlphabet[(v >> 6) & 63] : '=', '='};
  out->append(quad, 4);
}

// ---- the request's parts ----

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Values by name in order of first appearance; a repeated name gets its values joined
// with ",", as format 2.0 joins repeated headers and query parameters.
class JoinedFields {
 public:
  void Add(std::string name, std::string_view value) {
    auto [it, fresh] = index_.emplace(name, fields_.size());
    if (fresh) {
      fields_.emplace_back(std::move(name), std::string(value));
    } else {
      fields_[it->second].second.append(",").append(value);
    }
  }
  std::string_view Get(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? std::string_view() : fields_[it->second].second;
  }
  bool empty() const { return fields_.empty(); }
  // Appends {"name":"value",...}.
  void AppendJson(std::string* out) const {
    out->push_back('{');
    for (size_t i = 0; i < fields_.size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendJsonString(out, fields_[i].first);
      out->push_back(':');
      AppendJsonString(out, fields_[i].second);
    }
    out->push_back('}');
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
  std::unordered_map<std::string, size_t> index_;
};

// The path of a request target: origin form "/p?q" or absolute form "http://h/p?q".
std::string_view TargetPath(std::string_view target) {
  std::string_view t = target.substr(0, target.find_first_of("?#"));
  if (!t.empty() && t.front() != '/') {
    size_t scheme = t.find("://");
    size_t slash = scheme == std::string_view::npos ? scheme : t.find('/', scheme + 3);
    t = slash == std::string_view::npos ? std::string_view() : t.substr(slash);
  }
  return t;
}

// "host:port" -> "host"; "[::1]:9000" -> "[::1]".
std::string_view HostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') return host.substr(0, host.find(']') + 1);
  return host.substr(0, host.rfind(':'));
}

// ---- the function's answer ----

bool IsTokenChar(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
         (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
}

bool IsFramingHeader(std::string_view name) {
  for (const char* h :
       {"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade"}) {
    if (http::EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

// A short rendering of a JSON value for a message.
std::string Shown(const cJSON* v) {
  std::string text = json::Print(v);
  if (text.size() > 64) text = text.substr(0, 61) + "...";
  return text;
}

// A header of a proxy response as the wire will carry it, or why it cannot be one.
Status CheckHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return InvalidArgument("a header has an empty name");
  for (unsigned char c : name) {
    if (!IsTokenChar(c)) {
      return InvalidArgument("header name " + json::Quote(name.substr(0, 64)) +
                             " is not an HTTP token");
    }
  }
  for (unsigned char c : value) {
    if ((c < 0x20 && c != '\t') || c == 0x7F) {
      return InvalidArgument("header " + std::string(name.substr(0, 64)) +
                             " has a line break or a control character in its value");
    }
  }
  return Status::Ok();
}

// A header value of a proxy response: a string, a number or a boolean.
Status HeaderValue(const cJSON* v, std::string_view name, std::string* out) {
  if (cJSON_IsString(v) && v->valuestring != nullptr) {
    *out = v->valuestring;
  } else if (cJSON_IsNumber(v) || cJSON_IsBool(v)) {
    *out = json::Print(v);
  } else {
    return InvalidArgument("header " + std::string(name.substr(0, 64)) +
                           " must be a string, a number or a boolean (got " + Shown(v) + ")");
  }
  return CheckHeader(name, *out);
}

Status StatusCodeOf(const cJSON* code, int* status) {
  double v = 0;
  if (cJSON_IsNumber(code)) {
    v = code->valuedouble;
  } else if (cJSON_IsString(code) && code->valuestring != nullptr &&
             std::strlen(code->valuestring) == 3 &&
             std::strspn(code->valuestring, "0123456789") == 3) {
    v = std::atoi(code->valuestring);
  } else {
    return InvalidArgument("statusCode must be an integer between 100 and 599 (got " + Shown(code) +
                           ")");
  }
  if (!(v >= 100 && v <= 599) || v != std::floor(v)) {
    return InvalidArgument("statusCode " + Shown(code) + " is not an integer between 100 and 599");
  }
  *status = static_cast<int>(v);
  return Status::Ok();
}

// Builds the reply a format 2.0 proxy response describes, or says what is wrong with it.
Status ProxyResponse(const cJSON* proxy, http::HttpResponse* r) {
  int status = 0;
  if (Status s = StatusCodeOf(cJSON_GetObjectItemCaseSensitive(proxy, "statusCode"), &status);
      !s.ok()) {
    return s;
  }
  std::vector<std::pair<std::string, std::string>> headers;
  const cJSON* single = cJSON_GetObjectItemCaseSensitive(proxy, "headers");
  if (single != nullptr && !cJSON_IsNull(single)) {
    if (!cJSON_IsObject(single)) return InvalidArgument("headers must be an object");
    const cJSON* h = nullptr;
    cJSON_ArrayForEach(h, single) {
      std::string value;
      std::string_view name = h->string != nullptr ? h->string : "";
      if (Status s = HeaderValue(h, name, &value); !s.ok()) return s;
      headers.emplace_back(name, std::move(value));
    }
  }
  const cJSON* multi = cJSON_GetObjectItemCaseSensitive(proxy, "multiValueHeaders");
  if (multi != nullptr && !cJSON_IsNull(multi)) {
    if (!cJSON_IsObject(multi)) return InvalidArgument("multiValueHeaders must be an object");
    // Names given here replace a header of the same name (as in format 1.0).
    std::unordered_set<std::string> replaced;
    const cJSON* h = nullptr;
    cJSON_ArrayForEach(h, multi) replaced.insert(Lower(h->string != nullptr ? h->string : ""));
    std::erase_if(headers, [&](const auto& kv) { return replaced.count(Lower(kv.first)) > 0; });
    cJSON_ArrayForEach(h, multi) {
      std::string_view name = h->string != nullptr ? h->string : "";
      if (!cJSON_IsArray(h)) {
        return InvalidArgument("multiValueHeaders." + std::string(name.substr(0, 64)) +
                               " must be an array");
      }
      const cJSON* v = nullptr;
      cJSON_ArrayForEach(v, h) {
        std::string value;
        if (Status s = HeaderValue(v, name, &value); !s.ok()) return s;
        headers.emplace_back(name, std::move(value));
      }
    }
  }
  const cJSON* cookies = cJSON_GetObjectItemCaseSensitive(proxy, "cookies");
  if (cookies != nullptr && !cJSON_IsNull(cookies)) {
    if (!cJSON_IsArray(cookies)) return InvalidArgument("cookies must be an array of strings");
    const cJSON* c = nullptr;
    cJSON_ArrayForEach(c, cookies) {
      if (!cJSON_IsString(c) || c->valuestring == nullptr) {
        return InvalidArgument("cookies must be an array of strings (got " + Shown(c) + ")");
      }
      if (Status s = CheckHeader("Set-Cookie", c->valuestring); !s.ok()) return s;
      headers.emplace_back("Set-Cookie", c->valuestring);
    }
  }
  std::string body;
  const cJSON* b = cJSON_GetObjectItemCaseSensitive(proxy, "body");
  if (b != nullptr && !cJSON_IsNull(b)) {
    if (!cJSON_IsString(b) || b->valuestring == nullptr) {
      return InvalidArgument("body must be a string (got " + Shown(b) + ")");
    }
    body = b->valuestring;
  }
  const cJSON* b64 = cJSON_GetObjectItemCaseSensitive(proxy, "isBase64Encoded");
  if (b64 != nullptr && !cJSON_IsNull(b64) && !cJSON_IsBool(b64)) {
    return InvalidArgument("isBase64Encoded must be a boolean (got " + Shown(b64) + ")");
  }
  if (cJSON_IsTrue(b64)) {
    auto decoded = Base64Decode(body);
    if (!decoded) return InvalidArgument("isBase64Encoded is true but the body is not base64");
    body = std::move(*decoded);
  }
  *r = http::HttpResponse(status, std::move(body), "");
  for (auto& [name, value] : headers) {
    if (!IsFramingHeader(name)) r->headers.Add(std::move(name), std::move(value));
  }
  return Status::Ok();
}

}  // namespace

std::string GatewayTime(int64_t epoch_ms) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t secs = static_cast<time_t>(epoch_ms / 1000);
  tm utc{};
  gmtime_r(&secs, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%02d/%s/%04d:%02d:%02d:%02d +0000", utc.tm_mday,
                kMonths[utc.tm_mon % 12], utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return buf;
}

Status BuildGatewayEvent(const http::HttpRequest& request, const std::string* proxy,
                         const std::string& request_id, int64_t epoch_ms, size_t max_event_bytes,
                         std::string* event) {
  std::string_view path = TargetPath(request.target);
  constexpr size_t kPrefixLen = sizeof kGatewayPrefix - 1;
  if (path.substr(0, kPrefixLen) != kGatewayPrefix) {
    return InvalidArgument("the request target " + json::Quote(request.target.substr(0, 64)) +
                           " is not under " + kGatewayPrefix);
  }
  std::string_view rest = path.substr(kPrefixLen);
  size_t slash = rest.find('/');
  std::string_view raw_path = slash == std::string_view::npos ? "/" : rest.substr(slash);

  JoinedFields headers;
  std::vector<std::string_view> cookies;
  for (const auto& [name, value] : request.headers.items()) {
    std::string lower = Lower(name);
    if (lower == "cookie") {
      std::string_view list = value;
      while (!list.empty()) {
        size_t semi = list.find(';');
        std::string_view cookie = Trim(list.substr(0, semi));
        if (!cookie.empty()) cookies.push_back(cookie);
        list = semi == std::string_view::npos ? std::string_view() : list.substr(semi + 1);
      }
      continue;
    }
    headers.Add(std::move(lower), value);
  }
  JoinedFields query;
  for (std::string_view list = request.query; !list.empty();) {
    size_t amp = list.find('&');
    std::string_view pair = list.substr(0, amp);
    list = amp == std::string_view::npos ? std::string_view() : list.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
    std::string decoded_value = http::PercentDecode(value).value_or(std::string(value));
    query.Add(http::PercentDecode(key).value_or(std::string(key)), decoded_value);
  }

  std::string_view host = HostWithoutPort(headers.Get("host"));
  if (host.empty()) host = "localhost";
  std::string_view source_ip =
      Trim(headers.Get("x-forwarded-for").substr(0, headers.Get("x-forwarded-for").find(',')));
  if (source_ip.empty()) source_ip = "127.0.0.1";
  const std::string& body = request.body;
  bool text = IsTextBody(body);

  std::string& e = *event;
  e.clear();
  // The head is small next to a large body: reserve for the body's usual size once.
  e.reserve(1024 + request.target.size() * 2 + request.headers.size() * 64 +
            (text ? body.size() + body.size() / 16 : (body.size() + 2) / 3 * 4));
  e.append(R"({"version":"2.0","routeKey":"$default","rawPath":)");
  AppendJsonString(&e, raw_path);
  e.append(",\"rawQueryString\":");
  AppendJsonString(&e, request.query);
  if (!cookies.empty()) {
    e.append(",\"cookies\":[");
    for (size_t i = 0; i < cookies.size(); ++i) {
      if (i > 0) e.push_back(',');
      AppendJsonString(&e, cookies[i]);
    }
    e.push_back(']');
  }
  e.append(",\"headers\":");
  headers.AppendJson(&e);
  if (!query.empty()) {
    e.append(",\"queryStringParameters\":");
    query.AppendJson(&e);
  }
  e.append(R"(,"requestContext":{"accountId":"000000000000","apiId":"ephemera","domainName":)");
  AppendJsonString(&e, host);
  e.append(",\"domainPrefix\":");
  AppendJsonString(&e, host.substr(0, host.find('.')));
  e.append(",\"http\":{\"method\":");
  AppendJsonString(&e, request.method);
  e.append(",\"path\":");
  AppendJsonString(&e, raw_path);
  e.append(",\"protocol\":\"HTTP/1.").append(std::to_string(request.http_minor)).append("\"");
  e.append(",\"sourceIp\":");
  AppendJsonString(&e, source_ip);
  e.append(",\"userAgent\":");
  AppendJsonString(&e, headers.Get("user-agent"));
  e.append("},\"requestId\":");
  AppendJsonString(&e, request_id);
  e.append(R"(,"routeKey":"$default","stage":"$default","time":)");
  AppendJsonString(&e, GatewayTime(epoch_ms));
  e.append(",\"timeEpoch\":").append(std::to_string(epoch_ms)).append("}");
  if (proxy != nullptr && !proxy->empty()) {
    e.append(",\"pathParameters\":{\"proxy\":");
    AppendJsonString(&e, *proxy);
    e.push_back('}');
  }
  e.append(",\"isBase64Encoded\":").append(text || body.empty() ? "false" : "true");
  auto too_large = [&](size_t bytes) {
    return TooLarge("the event would be " + std::to_string(bytes) + " bytes, more than the " +
                    std::to_string(max_event_bytes) + " a synchronous invocation takes");
  };
  if (!body.empty()) {
    e.append(",\"body\":");
    if (text) {
      if (e.size() + body.size() > max_event_bytes) return too_large(e.size() + body.size());
      AppendJsonString(&e, body);
    } else {
      size_t bytes = e.size() + (body.size() + 2) / 3 * 4 + 3;
      if (bytes > max_event_bytes) return too_large(bytes);
      e.push_back('"');
      AppendBase64(&e, body);
      e.push_back('"');
    }
  }
  e.push_back('}');
  if (e.size() > max_event_bytes) return too_large(e.size());
  return Status::Ok();
}

http::HttpResponse ResponseFromAnswer(std::string answer) {
  size_t first = answer.find_first_not_of(" \t\r\n");
  json::Json parsed;
  if (first != std::string::npos && answer[first] == '{') parsed = json::Parse(answer);
  const cJSON* code =
      parsed ? cJSON_GetObjectItemCaseSensitive(parsed.get(), "statusCode") : nullptr;
  if (code == nullptr) {
    // Not a proxy response: format 2.0 returns it as the body of a 200.
    return http::HttpResponse(200, std::move(answer), "application/json");
  }
  http::HttpResponse r;
  if (Status s = ProxyResponse(parsed.get(), &r); !s.ok()) {
    return GatewayError(502, "Malformed Lambda proxy response: " + s.message(), "", s.message());
  }
  return r;
}

http::HttpResponse GatewayError(int status, std::string_view message, const std::string& request_id,
                                std::string_view detail) {
  std::string body = "{\"message\":";
  AppendJsonString(&body, message);
  body.push_back('}');
  http::HttpResponse r(status, std::move(body), "application/json");
  if (!request_id.empty()) r.headers.Set("Apigw-Requestid", request_id);
  if (!detail.empty()) {
    std::string shown(detail.substr(0, kMaxDetailBytes));
    for (char& c : shown) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7F) c = ' ';
    }
    r.headers.Set("X-Ephemera-Error", std::move(shown));
  }
  return r;
}

http::HttpResponse GatewayResponse(sandbox::InvokeOutcome& out, const std::string& request_id) {
  using sandbox::OutcomeKind;
  http::HttpResponse r;
  switch (out.kind) {
    case OutcomeKind::kSuccess: r = ResponseFromAnswer(std::move(out.body)); break;
    case OutcomeKind::kFunctionError:
      r = out.error_type == "Sandbox.Timedout"
              ? GatewayError(504, "Endpoint request timed out", request_id, out.error_type)
              : GatewayError(502, "Internal Server Error", request_id,
                             out.error_type.empty() ? "function error" : out.error_type);
      break;
    case OutcomeKind::kThrottled:
      r = GatewayError(429, "Too Many Requests", request_id, out.status.message());
      break;
    case OutcomeKind::kEngineUnavailable:
    case OutcomeKind::kCancelled:
      r = GatewayError(503, "Service Unavailable", request_id, out.status.message());
      break;
    case OutcomeKind::kImageNotReady:
    case OutcomeKind::kEngineFailed:
    case OutcomeKind::kInternal:
      r = GatewayError(500, "Internal Server Error", request_id, out.status.message());
      break;
  }
  r.headers.Set("Apigw-Requestid", request_id);
  return r;
}

}  // namespace ephemera::api
