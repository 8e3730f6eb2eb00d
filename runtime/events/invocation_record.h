// runtime/events/invocation_record.h: what is kept about one invocation, and Lambda's
// destination record.
//
// Every invocation the daemon runs, synchronous or not, becomes an InvocationRecord
// (record_store.h keeps them in Redis): its id, function, type, where its environment
// came from, how it ended, the time of each phase, sizes, and for Event invocations the
// attempt. Every attempt of an Event invocation is a record of its own (same request id,
// as in Lambda, whose retries keep the request id).
// Thread: any (values, pure functions). Depends on: core, json, sandbox (outcome types).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/json/json.h"
#include "runtime/sandbox/invocation.h"

namespace ephemera::events {

// "Success", "FunctionError", "Throttled", "ImageNotReady", "EngineUnavailable",
// "EngineFailed", "Internal", "Cancelled".
const char* OutcomeKindName(sandbox::OutcomeKind kind);

struct InvocationRecord {
  std::string request_id;
  std::string function;
  std::string type;        // "RequestResponse", "Event" or "plain" (POST /function/{name})
  int attempt = 1;         // Event invocations: 1, 2, 3 (retries); others 1
  std::string start;       // "cold", "warm", "pool"; "" if no environment was involved
  std::string status;      // OutcomeKindName
  std::string error_type;  // function errors: errorType; service errors: the message
  size_t payload_bytes = 0;
  size_t result_bytes = 0;
  int64_t accepted_ms = 0;  // Event invocations: when the 202 was given (epoch ms)
  int64_t started_ms = 0;   // the invocation was handed to the scheduler
  int64_t ended_ms = 0;     // its outcome was known
  sandbox::PhaseTimes phases;
  std::string environment_id;
  std::string daemon;  // the daemon id that ran it
  // Event invocations only: the start of the answer (up to kResponsePreviewBytes), since
  // nothing else shows an Event invocation's answer unless a destination is configured.
  std::string response_preview;

  // The record as stored and listed: one JSON object.
  std::string ToJsonText() const;
};

inline constexpr size_t kResponsePreviewBytes = 4096;

// The fields of a record that come from the outcome (start, status, error type, result
// size, phases, environment); the caller sets the rest.
InvocationRecord MakeRecord(const sandbox::InvokeOutcome& outcome);

// Lambda's destination record (docs/protocols.md section 2): version "1.0", timestamp
// (ISO-8601, ms, Z), requestContext {requestId, functionArn "...:$LATEST", condition
// (Success | RetriesExhausted | EventAgeExceeded), approximateInvokeCount},
// requestPayload, responseContext {statusCode, executedVersion, functionError (failures
// only)}, responsePayload. Payloads that are JSON are embedded as JSON, others as a JSON
// string; an empty one as null.
struct DestinationInput {
  std::string request_id;
  std::string function;
  std::string condition;
  int approximate_invoke_count = 1;
  std::string request_payload;
  int status_code = 200;
  bool function_error = false;  // adds responseContext.functionError "Unhandled"
  std::string response_payload;
  int64_t timestamp_ms = 0;
};
std::string DestinationRecord(const DestinationInput& in);

// "2026-11-23T05:40:01.123Z".
std::string IsoTimestamp(int64_t epoch_ms);

}  // namespace ephemera::events
