// shim/json.h: a deliberately small JSON reader and writer for the shim.
//
// The shim must stay static and small, so it cannot link the daemon's cJSON (Debian ships
// no static libcjson). It only needs to read API Gateway proxy events and write Lambda
// proxy results and error bodies, so this is a plain recursive-descent parser into a
// value tree plus string-escaping helpers for writing.
//
// Strings are UTF-8; \uXXXX escapes (with surrogate pairs) are decoded. Numbers are kept
// as their source text. Nesting deeper than kMaxDepth is rejected.
// Thread: any; no shared state. Depends on: nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ephemera::shim {

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  static constexpr int kMaxDepth = 64;

  Type type() const noexcept { return type_; }
  bool is_null() const noexcept { return type_ == Type::kNull; }
  bool is_string() const noexcept { return type_ == Type::kString; }
  bool is_object() const noexcept { return type_ == Type::kObject; }
  bool is_array() const noexcept { return type_ == Type::kArray; }
  bool is_bool() const noexcept { return type_ == Type::kBool; }

  // The string's text, or a number's source text; empty for other types.
  const std::string& text() const noexcept { return text_; }
  bool bool_value() const noexcept { return bool_; }
  // Array elements, or object member values (in source order).
  const std::vector<JsonValue>& items() const noexcept { return items_; }
  // Object member names, parallel to items().
  const std::vector<std::string>& keys() const noexcept { return keys_; }

  // The first member named `key` of an object, or nullptr (also for non-objects).
  const JsonValue* Find(std::string_view key) const noexcept;
  // Find(key) if it is a string, else nullptr.
  const std::string* FindString(std::string_view key) const noexcept;

  // Parses a whole document (surrounding whitespace allowed). On failure returns false
  // and sets *error to a short description with the byte offset.
  static bool Parse(std::string_view input, JsonValue* out, std::string* error);

 private:
  friend class JsonParser;
  Type type_ = Type::kNull;
  bool bool_ = false;
  std::string text_;
  std::vector<std::string> keys_;
  std::vector<JsonValue> items_;
};

// Appends `s` as a quoted JSON string. Bytes that are not valid UTF-8 are written as
// \u00XX (read as Latin-1) so the output is always valid JSON.
void AppendJsonString(std::string* out, std::string_view s);
// Returns AppendJsonString of `s` as a new string.
std::string JsonQuote(std::string_view s);

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, max U+10FFFF).
bool IsValidUtf8(std::string_view s) noexcept;

// Standard base64 (RFC 4648, with padding).
std::string Base64Encode(std::string_view data);
// Accepts padded or unpadded input and ignores whitespace; false on any other byte.
bool Base64Decode(std::string_view text, std::string* out);

}  // namespace ephemera::shim
