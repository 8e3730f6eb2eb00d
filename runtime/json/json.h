// runtime/json/json.h: cJSON held by unique_ptr, and the few accessors we need.
//
// Every cJSON tree we create or parse lives in a Json (freed with cJSON_Delete);
// borrowed children are plain const cJSON* that never outlive their root.
// Thread: any. Depends on: cJSON.
#pragma once

#include <cjson/cJSON.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ephemera::json {

struct Deleter {
  void operator()(cJSON* j) const noexcept { cJSON_Delete(j); }
};
using Json = std::unique_ptr<cJSON, Deleter>;

// Parses exactly `text` (no NUL terminator needed). Returns null on malformed input
// and, if `error_at` is given, the byte offset where parsing stopped.
Json Parse(std::string_view text, size_t* error_at = nullptr);

// Compact text of `j`.
std::string Print(const cJSON* j);

// Accessors return nullopt when the member is missing or has another type.
std::optional<std::string> GetString(const cJSON* obj, const char* key);
std::optional<double> GetNumber(const cJSON* obj, const char* key);
std::optional<bool> GetBool(const cJSON* obj, const char* key);
// Strings of a JSON array; nullopt if `key` is missing or not an array of strings.
std::optional<std::vector<std::string>> GetStringArray(const cJSON* obj, const char* key);

Json NewObject();
Json NewArray();
// Adds an array of strings under `key`.
void AddStringArray(cJSON* obj, const char* key, const std::vector<std::string>& items);

// Escapes `s` as a JSON string literal, quotes included.
std::string Quote(std::string_view s);

}  // namespace ephemera::json
