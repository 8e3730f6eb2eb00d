#include "functions/orders/support/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "shim/json.h"

namespace ephemera::fn {

Value Value::Bool(bool b) {
  Value v;
  v.type_ = Type::kBool;
  v.bool_ = b;
  return v;
}
Value Value::Number(double d) {
  Value v;
  v.type_ = Type::kNumber;
  v.number_ = d;
  return v;
}
Value Value::String(std::string s) {
  Value v;
  v.type_ = Type::kString;
  v.string_ = std::move(s);
  return v;
}
Value Value::Array() {
  Value v;
  v.type_ = Type::kArray;
  return v;
}
Value Value::Object() {
  Value v;
  v.type_ = Type::kObject;
  return v;
}

const Value* Value::Find(std::string_view name) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& [k, v] : members_) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::optional<std::string> Value::GetString(std::string_view name) const {
  const Value* v = Find(name);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return v->string();
}

std::optional<double> Value::GetNumber(std::string_view name) const {
  const Value* v = Find(name);
  if (v == nullptr || !v->is_number()) return std::nullopt;
  return v->number();
}

Value& Value::Set(std::string name, Value v) {
  type_ = Type::kObject;
  for (auto& [k, existing] : members_) {
    if (k == name) {
      existing = std::move(v);
      return *this;
    }
  }
  members_.emplace_back(std::move(name), std::move(v));
  return *this;
}

Value& Value::Push(Value v) {
  type_ = Type::kArray;
  items_.push_back(std::move(v));
  return *this;
}

std::string Quote(std::string_view s) {
  return shim::JsonQuote(s);
}

namespace {

void SerializeTo(const Value& v, std::string* out) {
  switch (v.type()) {
    case Value::Type::kNull: *out += "null"; break;
    case Value::Type::kBool: *out += v.boolean() ? "true" : "false"; break;
    case Value::Type::kNumber: {
      double d = v.number();
      char buf[32];
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(d));
      } else if (std::isfinite(d)) {
        std::snprintf(buf, sizeof buf, "%.15g", d);
      } else {
        std::snprintf(buf, sizeof buf, "null");
      }
      *out += buf;
      break;
    }
    case Value::Type::kString: *out += Quote(v.string()); break;
    case Value::Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Value& item : v.items()) {
        if (!first) out->push_back(',');
        first = false;
        SerializeTo(item, out);
      }
      out->push_back(']');
      break;
    }
    case Value::Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& [k, item] : v.members()) {
        if (!first) out->push_back(',');
        first = false;
        *out += Quote(k);
        out->push_back(':');
        SerializeTo(item, out);
      }
      out->push_back('}');
      break;
    }
  }
}

// The shim's parser reads the text; this turns its tree into builder values.
Value FromShim(const shim::JsonValue& v) {
  switch (v.type()) {
    case shim::JsonValue::Type::kNull: return Value::Null();
    case shim::JsonValue::Type::kBool: return Value::Bool(v.bool_value());
    case shim::JsonValue::Type::kNumber:
      return Value::Number(std::strtod(v.text().c_str(), nullptr));
    case shim::JsonValue::Type::kString: return Value::String(v.text());
    case shim::JsonValue::Type::kArray: {
      Value a = Value::Array();
      for (const auto& item : v.items()) a.Push(FromShim(item));
      return a;
    }
    case shim::JsonValue::Type::kObject: {
      // Members in source order; for a repeated name the first one wins, as Find does.
      Value o = Value::Object();
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (o.Find(v.keys()[i]) == nullptr) o.Set(v.keys()[i], FromShim(v.items()[i]));
      }
      return o;
    }
  }
  return Value::Null();
}

}  // namespace

std::string Value::Serialize() const {
  std::string out;
  SerializeTo(*this, &out);
  return out;
}

bool Parse(std::string_view text, Value* out, std::string* error) {
  shim::JsonValue parsed;
  if (!shim::JsonValue::Parse(text, &parsed, error)) return false;
  *out = FromShim(parsed);
  return true;
}

}  // namespace ephemera::fn
