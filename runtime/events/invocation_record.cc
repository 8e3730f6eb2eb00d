#include "runtime/events/invocation_record.h"

#include <cstdio>
#include <ctime>

#include "registry/registry.h"
#include "runtime/core/base64.h"
#include "runtime/core/clock.h"

namespace ephemera::events {
namespace {

// Valid UTF-8 without NUL: such text can go into JSON as a string as it is.
bool IsPlainText(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    if (c == 0) return false;
    if (c < 0x80) {
      extra = 0;
    } else if ((c >> 5) == 0x6) {
      extra = 1;
    } else if ((c >> 4) == 0xe) {
      extra = 2;
    } else if ((c >> 3) == 0x1e) {
      extra = 3;
    } else {
      return false;
    }
    for (size_t k = 1; k <= extra; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += 1 + extra;
  }
  return true;
}

// A payload inside a record: JSON as JSON, other text as a string, empty as null.
std::string PayloadJson(const std::string& payload) {
  if (payload.empty()) return "null";
  if (json::Parse(payload)) return payload;
  return json::Quote(payload);
}

void AddPhase(cJSON* obj, const char* name, double ms) {
  if (ms >= 0)
    cJSON_AddNumberToObject(obj, name, static_cast<double>(static_cast<int64_t>(ms * 10)) / 10);
}

}  // namespace

const char* OutcomeKindName(sandbox::OutcomeKind kind) {
  using K = sandbox::OutcomeKind;
  switch (kind) {
    case K::kSuccess: return "Success";
    case K::kFunctionError: return "FunctionError";
    case K::kThrottled: return "Throttled";
    case K::kImageNotReady: return "ImageNotReady";
    case K::kEngineUnavailable: return "EngineUnavailable";
    case K::kEngineFailed: return "EngineFailed";
    case K::kInternal: return "Internal";
    case K::kCancelled: return "Cancelled";
  }
  return "Internal";
}

InvocationRecord MakeRecord(const sandbox::InvokeOutcome& outcome) {
  InvocationRecord r;
  r.status = OutcomeKindName(outcome.kind);
  bool ran = sandbox::IsFunctionOutcome(outcome.kind);
  r.start = ran || !outcome.environment_id.empty() ? sandbox::StartKindName(outcome.start) : "";
  if (outcome.kind == sandbox::OutcomeKind::kFunctionError) {
    r.error_type = outcome.error_type.empty() ? "Unhandled" : outcome.error_type;
  } else if (!ran) {
    r.error_type = outcome.status.message();
  }
  r.result_bytes = ran ? outcome.body.size() : 0;
  r.phases = outcome.phases;
  r.environment_id = outcome.environment_id;
  return r;
}

json::Json InvocationRecord::ToJson() const {
  json::Json j = json::NewObject();
  cJSON* o = j.get();
  cJSON_AddStringToObject(o, "id", request_id.c_str());
  cJSON_AddStringToObject(o, "function", function.c_str());
  cJSON_AddStringToObject(o, "type", type.c_str());
  cJSON_AddNumberToObject(o, "attempt", attempt);
  if (!start.empty()) cJSON_AddStringToObject(o, "start", start.c_str());
  cJSON_AddStringToObject(o, "status", status.c_str());
  if (!error_type.empty()) cJSON_AddStringToObject(o, "error_type", error_type.c_str());
  cJSON_AddNumberToObject(o, "payload_bytes", static_cast<double>(payload_bytes));
  cJSON_AddNumberToObject(o, "result_bytes", static_cast<double>(result_bytes));
  if (accepted_ms > 0) cJSON_AddNumberToObject(o, "accepted_ms", static_cast<double>(accepted_ms));
  cJSON_AddNumberToObject(o, "started_ms", static_cast<double>(started_ms));
  cJSON_AddNumberToObject(o, "ended_ms", static_cast<double>(ended_ms));
  cJSON* ph = cJSON_AddObjectToObject(o, "phases_ms");
  AddPhase(ph, "queue", phases.queue);
  AddPhase(ph, "image", phases.image);
  AddPhase(ph, "create", phases.create);
  AddPhase(ph, "start", phases.start);
  AddPhase(ph, "init", phases.init);
  AddPhase(ph, "handler", phases.handler);
  AddPhase(ph, "total", phases.total);
  if (!environment_id.empty()) cJSON_AddStringToObject(o, "environment", environment_id.c_str());
  if (!daemon.empty()) cJSON_AddStringToObject(o, "daemon", daemon.c_str());
  if (type == "Event" && result_bytes > 0) {
    if (IsPlainText(response_preview)) {
      cJSON_AddStringToObject(o, "response_preview", response_preview.c_str());
    } else {
      cJSON_AddStringToObject(o, "response_preview_base64", Base64Encode(response_preview).c_str());
    }
  }
  return j;
}

std::string IsoTimestamp(int64_t epoch_ms) {
  return ephemera::IsoTimestamp(epoch_ms);
}

std::string DestinationRecord(const DestinationInput& in) {
  std::string out =
      "{\"version\":\"1.0\",\"timestamp\":" + json::Quote(IsoTimestamp(in.timestamp_ms));
  out += ",\"requestContext\":{\"requestId\":" + json::Quote(in.request_id);
  out += ",\"functionArn\":" + json::Quote(registry::FunctionArn(in.function) + ":$LATEST");
  out += ",\"condition\":" + json::Quote(in.condition);
  out += ",\"approximateInvokeCount\":" + std::to_string(in.approximate_invoke_count) + "}";
  out += ",\"requestPayload\":" + PayloadJson(in.request_payload);
  out += ",\"responseContext\":{\"statusCode\":" + std::to_string(in.status_code);
  out += ",\"executedVersion\":\"$LATEST\"";
  if (in.function_error) out += ",\"functionError\":\"Unhandled\"";
  out += "},\"responsePayload\":" + PayloadJson(in.response_payload) + "}";
  return out;
}

}  // namespace ephemera::events
