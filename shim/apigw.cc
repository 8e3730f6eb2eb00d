// shim/apigw.cc: see apigw.h.
#include "shim/apigw.h"

#include <string_view>

namespace ephemera::shim {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Bytes that cannot appear literally in the path of a request line.
bool NeedsPathEscape(unsigned char c) {
  if (c <= 0x20 || c >= 0x7F) return true;
  switch (c) {
    case '"':
    case '#':
    case '<':
    case '>':
    case '?':
    case '\\':
    case '^':
    case '`':
    case '{':
    case '|':
    case '}': return true;
    default: return false;
  }
}

std::string EncodePath(std::string_view path) {
  std::string out;
  if (path.empty() || path.front() != '/') out.push_back('/');
  for (char ch : path) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (NeedsPathEscape(c)) {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

bool IsHopByHop(std::string_view name) {
  return EqualsIgnoreCase(name, "Connection") || EqualsIgnoreCase(name, "Keep-Alive") ||
         EqualsIgnoreCase(name, "Transfer-Encoding") || EqualsIgnoreCase(name, "Content-Length") ||
         EqualsIgnoreCase(name, "Upgrade") || EqualsIgnoreCase(name, "Expect");
}

void AppendQuery(std::string* query, std::string_view key, std::string_view value) {
  if (!query->empty()) query->push_back('&');
  query->append(PercentEncode(key)).append("=").append(PercentEncode(value));
}

std::string V1Query(const JsonValue& event) {
  std::string query;
  const JsonValue* multi = event.Find("multiValueQueryStringParameters");
  if (multi != nullptr && multi->is_object()) {
    for (size_t i = 0; i < multi->keys().size(); ++i) {
      const JsonValue& values = multi->items()[i];
      if (values.is_array()) {
        for (const JsonValue& v : values.items()) {
          if (v.is_string()) AppendQuery(&query, multi->keys()[i], v.text());
        }
      } else if (values.is_string()) {
        AppendQuery(&query, multi->keys()[i], values.text());
      }
    }
    return query;
  }
  const JsonValue* single = event.Find("queryStringParameters");
  if (single != nullptr && single->is_object()) {
    for (size_t i = 0; i < single->keys().size(); ++i) {
      if (single->items()[i].is_string()) {
        AppendQuery(&query, single->keys()[i], single->items()[i].text());
      }
    }
  }
  return query;
}

bool HasHeader(const HttpHeaders& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (EqualsIgnoreCase(h.first, name)) return true;
  }
  return false;
}

void V1Headers(const JsonValue& event, HttpHeaders* out) {
  const JsonValue* multi = event.Find("multiValueHeaders");
  if (multi != nullptr && multi->is_object()) {
    for (size_t i = 0; i < multi->keys().size(); ++i) {
      const std::string& name = multi->keys()[i];
      if (IsHopByHop(name)) continue;
      const JsonValue& values = multi->items()[i];
      if (values.is_array()) {
        for (const JsonValue& v : values.items()) {
          if (v.is_string()) out->emplace_back(name, v.text());
        }
      } else if (values.is_string()) {
        out->emplace_back(name, values.text());
      }
    }
  }
  HttpHeaders from_multi = *out;
  const JsonValue* single = event.Find("headers");
  if (single != nullptr && single->is_object()) {
    for (size_t i = 0; i < single->keys().size(); ++i) {
      const std::string& name = single->keys()[i];
      if (IsHopByHop(name) || !single->items()[i].is_string()) continue;
      if (HasHeader(from_multi, name)) continue;  // multiValueHeaders wins
      out->emplace_back(name, single->items()[i].text());
    }
  }
}

void V2Headers(const JsonValue& event, HttpHeaders* out) {
  const JsonValue* headers = event.Find("headers");
  if (headers != nullptr && headers->is_object()) {
    for (size_t i = 0; i < headers->keys().size(); ++i) {
      const std::string& name = headers->keys()[i];
      if (IsHopByHop(name) || !headers->items()[i].is_string()) continue;
      out->emplace_back(name, headers->items()[i].text());
    }
  }
  const JsonValue* cookies = event.Find("cookies");
  if (cookies != nullptr && cookies->is_array() && !cookies->items().empty()) {
    std::string joined;
    for (const JsonValue& c : cookies->items()) {
      if (!c.is_string()) continue;
      if (!joined.empty()) joined.append("; ");
      joined.append(c.text());
    }
    if (!joined.empty()) {
      bool merged = false;
      for (auto& h : *out) {
        if (EqualsIgnoreCase(h.first, "Cookie")) {
          h.second.append("; ").append(joined);
          merged = true;
          break;
        }
      }
      if (!merged) out->emplace_back("cookie", joined);
    }
  }
}

// Response headers grouped by name (case-insensitive; the first spelling wins).
struct HeaderGroup {
  std::string name;
  std::vector<std::string> values;
};

std::vector<HeaderGroup> GroupHeaders(const HttpHeaders& headers) {
  std::vector<HeaderGroup> groups;
  for (const auto& [name, value] : headers) {
    if (IsHopByHop(name)) continue;
    HeaderGroup* group = nullptr;
    for (auto& g : groups) {
      if (EqualsIgnoreCase(g.name, name)) group = &g;
    }
    if (group == nullptr) {
      groups.push_back({name, {}});
      group = &groups.back();
    }
    group->values.push_back(value);
  }
  return groups;
}

}  // namespace

std::string PercentEncode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

ApiGatewayFormat DetectApiGatewayFormat(const JsonValue& event) noexcept {
  if (!event.is_object()) return ApiGatewayFormat::kNone;
  const std::string* version = event.FindString("version");
  if (version != nullptr && *version == "2.0" && event.FindString("rawPath") != nullptr) {
    const JsonValue* context = event.Find("requestContext");
    const JsonValue* http = context != nullptr ? context->Find("http") : nullptr;
    if (http != nullptr && http->FindString("method") != nullptr) return ApiGatewayFormat::kV2;
  }
  if (event.FindString("httpMethod") != nullptr && event.FindString("path") != nullptr) {
    return ApiGatewayFormat::kV1;
  }
  return ApiGatewayFormat::kNone;
}

Status ApiGatewayEventToRequest(const JsonValue& event, ApiGatewayFormat format,
                                HttpRequest* request) {
  *request = HttpRequest();
  if (format == ApiGatewayFormat::kV2) {
    request->method = *event.Find("requestContext")->Find("http")->FindString("method");
    request->target = EncodePath(*event.FindString("rawPath"));
    const std::string* query = event.FindString("rawQueryString");
    if (query != nullptr && !query->empty()) request->target.append("?").append(*query);
    V2Headers(event, &request->headers);
  } else if (format == ApiGatewayFormat::kV1) {
    request->method = *event.FindString("httpMethod");
    request->target = EncodePath(*event.FindString("path"));
    std::string query = V1Query(event);
    if (!query.empty()) request->target.append("?").append(query);
    V1Headers(event, &request->headers);
  } else {
    return Status::Error("not an API Gateway proxy event");
  }
  // The method, target and headers go onto the wire as they are: a line break, a space
  // or another control character in them would end the request line or a header early
  // and could smuggle a second request to the service on the same connection. Such an
  // event is refused, never passed on (RFC 9110: methods and field names are tokens).
  auto token_char = [](unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  };
  auto is_token = [&](const std::string& s) {
    if (s.empty()) return false;
    for (unsigned char c : s) {
      if (!token_char(c)) return false;
    }
    return true;
  };
  if (!is_token(request->method)) {
    return Status::Error(
        "API Gateway event: the HTTP method is not a token (empty, or it holds "
        "a space, a line break or a separator)");
  }
  if (request->target.empty()) request->target = "/";
  for (unsigned char c : request->target) {
    if (c <= 0x20 || c == 0x7F) {
      return Status::Error(
          "API Gateway event: the path or query string holds a space or a "
          "control character");
    }
  }
  if (request->target[0] != '/') {
    return Status::Error("API Gateway event: the path does not start with /");
  }
  for (const auto& [name, value] : request->headers) {
    if (!is_token(name) || value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
      return Status::Error("API Gateway event: header " + name.substr(0, 64) +
                           " has a name that is not a token or a value with a line break");
    }
  }
  const std::string* body = event.FindString("body");
  if (body != nullptr) {
    const JsonValue* b64 = event.Find("isBase64Encoded");
    if (b64 != nullptr && b64->is_bool() && b64->bool_value()) {
      if (!Base64Decode(*body, &request->body)) {
        return Status::Error("API Gateway event: body is marked isBase64Encoded but is not base64");
      }
    } else {
      request->body = *body;
    }
  }
  return Status::Ok();
}

std::string HttpResponseToApiGatewayResult(const HttpResponse& response, ApiGatewayFormat format) {
  std::vector<HeaderGroup> groups = GroupHeaders(response.headers);
  std::string out = "{\"statusCode\":" + std::to_string(response.status) + ",\"headers\":{";
  bool first = true;
  auto comma = [&] {
    if (!first) out.push_back(',');
    first = false;
  };
  if (format == ApiGatewayFormat::kV2) {
    for (const auto& g : groups) {
      if (EqualsIgnoreCase(g.name, "Set-Cookie")) continue;
      comma();
      AppendJsonString(&out, g.name);
      out.push_back(':');
      std::string joined;
      for (const auto& v : g.values) {
        if (!joined.empty()) joined.append(", ");
        joined.append(v);
      }
      AppendJsonString(&out, joined);
    }
    out.append("},\"cookies\":[");
    first = true;
    for (const auto& g : groups) {
      if (!EqualsIgnoreCase(g.name, "Set-Cookie")) continue;
      for (const auto& v : g.values) {
        comma();
        AppendJsonString(&out, v);
      }
    }
    out.append("]");
  } else {
    for (const auto& g : groups) {
      if (g.values.size() != 1) continue;
      comma();
      AppendJsonString(&out, g.name);
      out.push_back(':');
      AppendJsonString(&out, g.values[0]);
    }
    out.append("},\"multiValueHeaders\":{");
    first = true;
    for (const auto& g : groups) {
      comma();
      AppendJsonString(&out, g.name);
      out.append(":[");
      for (size_t i = 0; i < g.values.size(); ++i) {
        if (i > 0) out.push_back(',');
        AppendJsonString(&out, g.values[i]);
      }
      out.push_back(']');
    }
    out.append("}");
  }
  bool text = IsValidUtf8(response.body);
  out.append(",\"body\":");
  AppendJsonString(&out, text ? response.body : Base64Encode(response.body));
  out.append(",\"isBase64Encoded\":").append(text ? "false" : "true").append("}");
  return out;
}

}  // namespace ephemera::shim
