#include "runtime/redis/redis_url.h"

#include <cctype>
#include <cstdlib>

namespace ephemera::redis {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool ParseInt(std::string_view s, long min, long max, int* out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  long v = std::strtol(std::string(s).c_str(), nullptr, 10);
  if (v < min || v > max) return false;
  *out = static_cast<int>(v);
  return true;
}

// "user:password" (either part may be empty) into url->user / url->password.
Status ParseUserInfo(std::string_view info, std::string_view text, RedisUrl* url) {
  size_t colon = info.find(':');
  std::string_view user = colon == std::string_view::npos ? info : info.substr(0, colon);
  std::string_view pass = colon == std::string_view::npos ? "" : info.substr(colon + 1);
  // "redis://password@host" (no colon) is read as a password, as redis-cli and most
  // clients do: a user without a password cannot authenticate anyway.
  if (colon == std::string_view::npos) std::swap(user, pass);
  if (!PercentDecode(user, &url->user) || !PercentDecode(pass, &url->password)) {
    return InvalidArgument("Redis URL " + std::string(text) +
                           ": malformed percent escape in the user or password");
  }
  return Status::Ok();
}

}  // namespace

std::string RedisUrl::Redacted() const {
  std::string auth;
  if (!user.empty() || !password.empty()) {
    auth = user + (password.empty() ? "" : ":***") + "@";
  }
  if (!unix_path.empty()) {
    return "unix://" + auth + unix_path + (db != 0 ? "?db=" + std::to_string(db) : "");
  }
  // Appended piece by piece: GCC 12 -O3 warns (-Wrestrict, a false positive) on
  // "literal" + std::string chains here.
  std::string out = "redis://";
  out += auth;
  if (host.find(':') != std::string::npos) {
    out += '[';
    out += host;
    out += ']';
  } else {
    out += host;
  }
  out += ':';
  out += std::to_string(port);
  if (db != 0) {
    out += '/';
    out += std::to_string(db);
  }
  return out;
}

Status ParseRedisUrl(std::string_view text, RedisUrl* out) {
  RedisUrl url;
  auto bad = [&](const std::string& why) {
    return InvalidArgument("Redis URL " + std::string(text) + ": " + why +
                           " (expected redis://[[user]:password@]host[:port][/db] or "
                           "unix://[[user]:password@]/path[?db=N])");
  };
  std::string_view rest;
  bool unix_socket = false;
  if (text.rfind("redis://", 0) == 0) {
    rest = text.substr(8);
  } else if (text.rfind("unix://", 0) == 0) {
    rest = text.substr(7);
    unix_socket = true;
  } else if (text.rfind("rediss://", 0) == 0) {
    return bad("TLS (rediss://) is not supported by this build's hiredis 0.14");
  } else {
    return bad("unknown scheme");
  }
  // The user info ends at the last '@' before the path (TCP form) or is everything before
  // the '@' that precedes the absolute socket path (unix form).
  size_t at = std::string_view::npos;
  if (unix_socket) {
    size_t first_slash = rest.find('/');
    size_t a = rest.find('@');
    if (a != std::string_view::npos && a < first_slash) at = a;
  } else {
    size_t path_at = rest.find('/');
    at = rest.rfind('@', path_at == std::string_view::npos ? rest.size() : path_at);
  }
  if (at != std::string_view::npos) {
    if (Status s = ParseUserInfo(rest.substr(0, at), text, &url); !s.ok()) return s;
    rest = rest.substr(at + 1);
  }
  if (unix_socket) {
    size_t q = rest.find('?');
    std::string_view path = rest.substr(0, q);
    if (path.empty() || path[0] != '/') return bad("the socket path must be absolute");
    url.unix_path = std::string(path);
    url.host.clear();
    url.port = 0;
    if (q != std::string_view::npos) {
      std::string_view query = rest.substr(q + 1);
      if (query.rfind("db=", 0) != 0 || !ParseInt(query.substr(3), 0, 100000, &url.db)) {
        return bad("the only query parameter is db=N");
      }
    }
    *out = std::move(url);
    return Status::Ok();
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && !ParseInt(db, 0, 100000, &url.db)) return bad("the db must be a number");
  }
  std::string_view host = hostport, port;
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6 address]");
    host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("expected :port after ]");
      port = after.substr(1);
    }
  } else if (size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (host.empty()) return bad("the host is missing");
  url.host = std::string(host);
  if (!port.empty() && !ParseInt(port, 1, 65535, &url.port)) {
    return bad("port must be 1..65535");
  }
  *out = std::move(url);
  return Status::Ok();
}

}  // namespace ephemera::redis
