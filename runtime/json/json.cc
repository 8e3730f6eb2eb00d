#include "runtime/json/json.h"

#include <cstdio>

namespace ephemera::json {

Json Parse(std::string_view text, size_t* error_at) {
  const char* end = nullptr;
  Json j(cJSON_ParseWithLengthOpts(text.data(), text.size(), &end, 0));
  if (!j && error_at != nullptr) {
    *error_at = end != nullptr && end >= text.data() ? static_cast<size_t>(end - text.data()) : 0;
  }
  if (j && end != nullptr) {
    // cJSON stops after the first value; anything but whitespace after it is an error.
    for (const char* p = end; p < text.data() + text.size(); ++p) {
      if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
        if (error_at != nullptr) *error_at = static_cast<size_t>(p - text.data());
        return nullptr;
      }
    }
  }
  return j;
}

std::string Print(const cJSON* j) {
  char* text = cJSON_PrintUnformatted(j);
  if (text == nullptr) return {};
  std::string out(text);
  cJSON_free(text);
  return out;
}

std::optional<std::string> GetString(const cJSON* obj, const char* key) {
  const cJSON* item = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!cJSON_IsString(item) || item->valuestring == nullptr) return std::nullopt;
  return std::string(item->valuestring);
}

std::optional<double> GetNumber(const cJSON* obj, const char* key) {
  const cJSON* item = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!cJSON_IsNumber(item)) return std::nullopt;
  return item->valuedouble;
}

std::optional<bool> GetBool(const cJSON* obj, const char* key) {
  const cJSON* item = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!cJSON_IsBool(item)) return std::nullopt;
  return cJSON_IsTrue(item) != 0;
}

std::optional<std::vector<std::string>> GetStringArray(const cJSON* obj, const char* key) {
  const cJSON* arr = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!cJSON_IsArray(arr)) return std::nullopt;
  std::vector<std::string> out;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, arr) {
    if (!cJSON_IsString(item)) return std::nullopt;
    out.emplace_back(item->valuestring);
  }
  return out;
}

Json NewObject() {
  return Json(cJSON_CreateObject());
}
Json NewArray() {
  return Json(cJSON_CreateArray());
}

void AddStringArray(cJSON* obj, const char* key, const std::vector<std::string>& items) {
  cJSON* arr = cJSON_AddArrayToObject(obj, key);
  for (const auto& s : items) cJSON_AddItemToArray(arr, cJSON_CreateString(s.c_str()));
}

std::string Quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace ephemera::json
