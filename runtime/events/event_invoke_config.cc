#include "runtime/events/event_invoke_config.h"

#include <cmath>

#include "registry/registry.h"

namespace ephemera::events {
namespace {

Status ReadInt(const cJSON* item, const char* field, int min, int max, std::optional<int>* out) {
  if (cJSON_IsNull(item)) {
    out->reset();
    return Status::Ok();
  }
  if (!cJSON_IsNumber(item) || std::floor(item->valuedouble) != item->valuedouble ||
      item->valuedouble < min || item->valuedouble > max) {
    return InvalidArgument(std::string(field) + " must be an integer " + std::to_string(min) +
                           ".." + std::to_string(max) +
                           (cJSON_IsNumber(item) ? " (got " + json::Print(item) + ")" : ""));
  }
  *out = static_cast<int>(item->valuedouble);
  return Status::Ok();
}

// {"Destination": "arn..."} (or {} / null = none).
Status ReadDestination(const cJSON* item, const char* field, std::string* out) {
  if (item == nullptr || cJSON_IsNull(item)) {
    out->clear();
    return Status::Ok();
  }
  if (!cJSON_IsObject(item)) {
    return InvalidArgument(std::string("DestinationConfig.") + field + " must be an object");
  }
  const cJSON* child = nullptr;
  cJSON_ArrayForEach(child, item) {
    if (std::string_view(child->string) != "Destination") {
      return InvalidArgument(std::string("DestinationConfig.") + field + ": unknown member " +
                             child->string);
    }
  }
  const cJSON* dest = cJSON_GetObjectItemCaseSensitive(item, "Destination");
  if (dest == nullptr || cJSON_IsNull(dest)) {
    out->clear();
    return Status::Ok();
  }
  if (!cJSON_IsString(dest)) {
    return InvalidArgument(std::string("DestinationConfig.") + field +
                           ".Destination must be a string (an ARN)");
  }
  std::string arn = dest->valuestring;
  if (arn.size() > 350) {
    return InvalidArgument(std::string("DestinationConfig.") + field +
                           ".Destination is longer than 350 characters");
  }
  if (!arn.empty()) {
    std::string function;
    if (Status s = DestinationFunction(arn, &function); !s.ok()) {
      return InvalidArgument(std::string("DestinationConfig.") + field +
                             ".Destination: " + s.message());
    }
  }
  *out = std::move(arn);
  return Status::Ok();
}

}  // namespace

Status DestinationFunction(std::string_view arn, std::string* function) {
  if (arn.rfind("arn:", 0) == 0) {
    // arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE
    size_t p1 = arn.find(':', 4);
    size_t p2 = p1 == std::string_view::npos ? p1 : arn.find(':', p1 + 1);
    std::string_view service = p2 == std::string_view::npos ? "" : arn.substr(p1 + 1, p2 - p1 - 1);
    if (service != "lambda") {
      return InvalidArgument("ephemera sends destinations only to Lambda functions (got a " +
                             std::string(service.empty() ? "malformed" : service) +
                             " ARN: " + std::string(arn) + ")");
    }
  }
  std::string name, qualifier;
  if (Status s = registry::ParseFunctionRef(arn, &name, &qualifier); !s.ok()) {
    return InvalidArgument("not a Lambda function ARN: " + std::string(arn));
  }
  if (!qualifier.empty() && qualifier != "$LATEST") {
    return InvalidArgument("ephemera has only the $LATEST version (got qualifier " + qualifier +
                           " in " + std::string(arn) + ")");
  }
  *function = std::move(name);
  return Status::Ok();
}

Status ApplyEventInvokeConfig(const cJSON* body, bool replace, EventInvokeConfig* config) {
  if (!cJSON_IsObject(body)) return InvalidArgument("the request body must be a JSON object");
  EventInvokeConfig next = replace ? EventInvokeConfig{} : *config;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, body) {
    std::string_view key = item->string;
    if (key == "MaximumRetryAttempts") {
      if (Status s = ReadInt(item, "MaximumRetryAttempts", 0, 2, &next.maximum_retry_attempts);
          !s.ok())
        return s;
    } else if (key == "MaximumEventAgeInSeconds") {
      if (Status s =
              ReadInt(item, "MaximumEventAgeInSeconds", 60, 21600, &next.maximum_event_age_s);
          !s.ok())
        return s;
    } else if (key == "DestinationConfig") {
      if (cJSON_IsNull(item)) {
        next.on_success.clear();
        next.on_failure.clear();
        continue;
      }
      if (!cJSON_IsObject(item)) return InvalidArgument("DestinationConfig must be an object");
      const cJSON* d = nullptr;
      cJSON_ArrayForEach(d, item) {
        std::string_view dk = d->string;
        if (dk == "OnSuccess") {
          if (Status s = ReadDestination(d, "OnSuccess", &next.on_success); !s.ok()) return s;
        } else if (dk == "OnFailure") {
          if (Status s = ReadDestination(d, "OnFailure", &next.on_failure); !s.ok()) return s;
        } else {
          return InvalidArgument("DestinationConfig: unknown member " + std::string(dk));
        }
      }
    } else if (key == "FunctionName" || key == "Qualifier") {
      // Some SDKs repeat the URI members in the body; the URI decides.
    } else {
      return InvalidArgument("unknown member " + std::string(key) +
                             " (expected MaximumRetryAttempts, MaximumEventAgeInSeconds, "
                             "DestinationConfig)");
    }
  }
  *config = std::move(next);
  return Status::Ok();
}

json::Json ToApiJson(const EventInvokeConfig& config, const std::string& function) {
  json::Json j = json::NewObject();
  cJSON_AddNumberToObject(j.get(), "LastModified", config.last_modified_s);
  cJSON_AddStringToObject(j.get(), "FunctionArn",
                          (registry::FunctionArn(function) + ":$LATEST").c_str());
  if (config.maximum_retry_attempts)
    cJSON_AddNumberToObject(j.get(), "MaximumRetryAttempts", *config.maximum_retry_attempts);
  if (config.maximum_event_age_s)
    cJSON_AddNumberToObject(j.get(), "MaximumEventAgeInSeconds", *config.maximum_event_age_s);
  cJSON* dc = cJSON_AddObjectToObject(j.get(), "DestinationConfig");
  cJSON* ok = cJSON_AddObjectToObject(dc, "OnSuccess");
  if (!config.on_success.empty())
    cJSON_AddStringToObject(ok, "Destination", config.on_success.c_str());
  cJSON* fail = cJSON_AddObjectToObject(dc, "OnFailure");
  if (!config.on_failure.empty())
    cJSON_AddStringToObject(fail, "Destination", config.on_failure.c_str());
  return j;
}

std::string ToStored(const EventInvokeConfig& config) {
  json::Json j = json::NewObject();
  if (config.maximum_retry_attempts)
    cJSON_AddNumberToObject(j.get(), "max_retries", *config.maximum_retry_attempts);
  if (config.maximum_event_age_s)
    cJSON_AddNumberToObject(j.get(), "max_age_s", *config.maximum_event_age_s);
  if (!config.on_success.empty())
    cJSON_AddStringToObject(j.get(), "on_success", config.on_success.c_str());
  if (!config.on_failure.empty())
    cJSON_AddStringToObject(j.get(), "on_failure", config.on_failure.c_str());
  cJSON_AddNumberToObject(j.get(), "last_modified_s", config.last_modified_s);
  return json::Print(j.get());
}

Status FromStored(std::string_view text, EventInvokeConfig* config) {
  json::Json j = json::Parse(text);
  if (!j || !cJSON_IsObject(j.get())) return Internal("stored event invoke config is not JSON");
  EventInvokeConfig c;
  if (auto v = json::GetNumber(j.get(), "max_retries"))
    c.maximum_retry_attempts = static_cast<int>(*v);
  if (auto v = json::GetNumber(j.get(), "max_age_s")) c.maximum_event_age_s = static_cast<int>(*v);
  c.on_success = json::GetString(j.get(), "on_success").value_or("");
  c.on_failure = json::GetString(j.get(), "on_failure").value_or("");
  c.last_modified_s = json::GetNumber(j.get(), "last_modified_s").value_or(0);
  if (c.retries() < 0 || c.retries() > 2 || c.max_age_s() < 60 || c.max_age_s() > 21600) {
    return Internal("stored event invoke config is out of range: " + std::string(text));
  }
  *config = std::move(c);
  return Status::Ok();
}

}  // namespace ephemera::events
