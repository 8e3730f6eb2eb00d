// runtime/redis/reply.h: one Redis reply as a plain C++ value.
//
// hiredis frees its redisReply as soon as the reply callback returns, so the client
// (redis_client.cc) copies every reply into a Reply before handing it on
// (docs/style.md rule 7). A Reply owns all its bytes; strings are binary-safe.
// Thread: any (a value). Depends on: nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ephemera::redis {

struct Reply {
  enum class Type {
    kNil,      // a null bulk string or null array (e.g. XREADGROUP BLOCK that timed out)
    kString,   // a bulk string: `str`
    kStatus,   // a simple string such as OK or PONG: `str`
    kInteger,  // `integer`
    kArray,    // `elements`
    kError,    // an error reply such as "BUSYGROUP Consumer Group name already exists": `str`
  };

  Type type = Type::kNil;
  std::string str;
  long long integer = 0;
  std::vector<Reply> elements;

  bool is_nil() const { return type == Type::kNil; }
  bool is_array() const { return type == Type::kArray; }
  bool is_error() const { return type == Type::kError; }
  // True for an error reply whose first word is `code` ("BUSYGROUP", "NOGROUP", ...).
  bool ErrorIs(std::string_view code) const {
    return type == Type::kError && str.compare(0, code.size(), code) == 0 &&
           (str.size() == code.size() || str[code.size()] == ' ');
  }
  // The text of a string or status reply; nullopt for any other type.
  std::optional<std::string> Text() const {
    if (type == Type::kString || type == Type::kStatus) return str;
    return std::nullopt;
  }
  // An integer reply, or a string reply holding a decimal integer.
  std::optional<long long> Integer() const;
  // The reply as one line for logs and tests: strings quoted, arrays in brackets.
  std::string Describe() const;

  static Reply Nil() { return {}; }
  static Reply String(std::string s) {
    Reply r;
    r.type = Type::kString;
    r.str = std::move(s);
    return r;
  }
};

}  // namespace ephemera::redis
