// functions/orders/support/json.h: a small JSON value for the example functions.
//
// The functions are static binaries in FROM scratch images (functions/CMakeLists.txt);
// Debian has no static cJSON, so they carry this: parse a document into a Value, read
// members, build values, serialise. Numbers are doubles (the orders' quantities and
// prices fit); strings are UTF-8 as sent, \u escapes decoded (surrogate pairs included).
// Objects keep their members in order; a repeated member name keeps the last value.
// Thread: any (values). Depends on: nothing.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ephemera::fn {

class Value {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Value() = default;
  static Value Null() { return Value(); }
  static Value Bool(bool b);
  static Value Number(double d);
  static Value String(std::string s);
  static Value Array();
  static Value Object();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool boolean() const { return bool_; }
  double number() const { return number_; }
  const std::string& string() const { return string_; }
  const std::vector<Value>& items() const { return items_; }
  const std::vector<std::pair<std::string, Value>>& members() const { return members_; }

  // Object member, or null if absent (or not an object).
  const Value* Find(std::string_view name) const;
  // Convenience readers: nullopt when absent or of another type.
  std::optional<std::string> GetString(std::string_view name) const;
  std::optional<double> GetNumber(std::string_view name) const;

  // Builders (objects: replaces a member of the same name; arrays: appends).
  Value& Set(std::string name, Value v);
  Value& Set(std::string name, std::string s) { return Set(std::move(name), String(std::move(s))); }
  Value& Set(std::string name, const char* s) { return Set(std::move(name), String(s)); }
  Value& Set(std::string name, double d) { return Set(std::move(name), Number(d)); }
  Value& Set(std::string name, long long n) {
    return Set(std::move(name), Number(static_cast<double>(n)));
  }
  Value& Set(std::string name, int n) { return Set(std::move(name), Number(n)); }
  Value& Set(std::string name, bool b) { return Set(std::move(name), Bool(b)); }
  Value& Push(Value v);

  // Compact JSON text. Integral numbers print without a fraction.
  std::string Serialize() const;

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> members_;
};

// Parses one JSON document (whitespace around it allowed). On failure returns false and
// sets *error to "<what> at byte N".
bool Parse(std::string_view text, Value* out, std::string* error);

// `s` as a JSON string literal, quotes included.
std::string Quote(std::string_view s);

}  // namespace ephemera::fn
