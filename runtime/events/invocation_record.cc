#include "runtime/events/invocation_record.h"

#include <charconv>
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

// The record's JSON is written by hand rather than through cJSON: under load one is
// made per invocation, and cJSON prints every number with sprintf and checks it with
// sscanf (a tenth of the daemon's time per warm invoke in a profile).
void AddNumber(std::string* out, const char* name, double value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc()) return;
  *out += '"';
  *out += name;
  *out += "\":";
  out->append(buf, end);
  *out += ',';
}

void AddInteger(std::string* out, const char* name, long long value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  *out += '"';
  *out += name;
  *out += "\":";
  out->append(buf, end);
  *out += ',';
}

void AddString(std::string* out, const char* name, const std::string& value) {
  *out += '"';
  *out += name;
  *out += "\":";
  *out += json::Quote(value);
  *out += ',';
}

// Phases are kept to 0.1 ms, truncated; a negative one did not happen.
void AddPhase(std::string* out, const char* name, double ms) {
  if (ms >= 0) AddNumber(out, name, static_cast<double>(static_cast<int64_t>(ms * 10)) / 10);
}

// Ends an object whose members each end with a comma.
void Close(std::string* out) {
  if (out->back() == ',') {
    out->back() = '}';
  } else {
    *out += '}';
  }
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

std::string InvocationRecord::ToJsonText() const {
  std::string out;
  out.reserve(384);
  out += '{';
  AddString(&out, "id", request_id);
  AddString(&out, "function", function);
  AddString(&out, "type", type);
  AddInteger(&out, "attempt", attempt);
  if (!start.empty()) AddString(&out, "start", start);
  AddString(&out, "status", status);
  if (!error_type.empty()) AddString(&out, "error_type", error_type);
  AddInteger(&out, "payload_bytes", static_cast<long long>(payload_bytes));
  AddInteger(&out, "result_bytes", static_cast<long long>(result_bytes));
  if (accepted_ms > 0) AddInteger(&out, "accepted_ms", accepted_ms);
  AddInteger(&out, "started_ms", started_ms);
  AddInteger(&out, "ended_ms", ended_ms);
  out += "\"phases_ms\":{";
  AddPhase(&out, "queue", phases.queue);
  AddPhase(&out, "image", phases.image);
  AddPhase(&out, "create", phases.create);
  AddPhase(&out, "start", phases.start);
  AddPhase(&out, "init", phases.init);
  AddPhase(&out, "handler", phases.handler);
  AddPhase(&out, "total", phases.total);
  Close(&out);
  out += ',';
  if (!environment_id.empty()) AddString(&out, "environment", environment_id);
  if (!daemon.empty()) AddString(&out, "daemon", daemon);
  if (type == "Event" && result_bytes > 0) {
    if (IsPlainText(response_preview)) {
      AddString(&out, "response_preview", response_preview);
    } else {
      AddString(&out, "response_preview_base64", Base64Encode(response_preview));
    }
  }
  Close(&out);
  return out;
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
