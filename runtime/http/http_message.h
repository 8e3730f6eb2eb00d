// runtime/http/http_message.h: the request and response values the HTTP layer
// hands to and takes from handlers.
//
// Header names keep the case the peer sent; lookups are case-insensitive, as
// HTTP requires. Bodies are raw bytes in std::string (binary-safe).
// Thread: any. Depends on: nothing.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ephemera::http {

// ASCII case-insensitive equality, for header names and tokens.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

class Headers {
 public:
  void Add(std::string name, std::string value) {
    items_.emplace_back(std::move(name), std::move(value));
  }
  // Replaces every header called `name` with one value.
  void Set(std::string_view name, std::string value);
  // The first value of `name`, if present.
  std::optional<std::string_view> Get(std::string_view name) const;
  bool Has(std::string_view name) const { return Get(name).has_value(); }

  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path plus optional "?query"
  std::string path;    // target before '?', percent-decoded
  std::string query;   // after '?', raw
  Headers headers;
  std::string body;
  int http_minor = 1;
  bool keep_alive = true;

  // Value of query parameter `name` (percent-decoded), if present.
  std::optional<std::string> QueryParam(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  Headers headers;
  std::string body;
  // May wait, for up to kHoldMs, to go out in one write with the reply to the request the
  // client pipelined behind this one (the Runtime API's 202 to a runtime that sent its
  // next GET /next with its result: one wake-up of the runtime instead of two). Without a
  // pipelined request it goes at once.
  bool may_wait_for_next = false;
  static constexpr uint64_t kHoldMs = 20;

  HttpResponse() = default;
  HttpResponse(int s, std::string b, std::string content_type = "text/plain; charset=utf-8")
      : status(s), body(std::move(b)) {
    if (!content_type.empty()) headers.Set("Content-Type", std::move(content_type));
  }
};

// Standard reason phrase, e.g. 404 -> "Not Found".
const char* ReasonPhrase(int status);

// Percent-decodes `s` ("%24LATEST" -> "$LATEST"); '+' stays '+' (paths, not forms).
// Returns nullopt on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view s);

}  // namespace ephemera::http
