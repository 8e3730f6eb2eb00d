// runtime/sandbox/invocation.h: what one invocation asks for and what it gives back.
//
// An invocation is one event handed to one execution environment (environment.h).
// These values cross the boundary between the HTTP-facing API (runtime/api) and the
// machinery below it (runtime/scheduler, runtime/sandbox), so neither needs the other.
// The outcome says what happened as a kind plus a Status; how a kind looks on the wire
// (HTTP status, x-amzn-ErrorType) is decided in one table in runtime/api/aws_errors.h.
// Thread: any. Depends on: core, registry.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "registry/registry.h"
#include "runtime/core/status.h"

namespace ephemera::sandbox {

// Where the environment of an invocation came from.
enum class StartKind {
  kCold,  // a container created and started for this invocation
  kWarm,  // an environment kept after an earlier invocation of the same function
  kPool,  // an environment started ahead, never used before, used once
};
const char* StartKindName(StartKind kind);  // "cold", "warm", "pool"

struct InvokeRequest {
  std::shared_ptr<const registry::FunctionSpec> function;
  std::string request_id;
  std::string payload;
  std::string content_type = "application/json";
  std::string client_context;  // JSON text, already base64-decoded; "" if none
  bool capture_logs = false;   // keep the function's output for X-Amz-Log-Result
  // An Event invocation: it was accepted already, so it waits for capacity as long as it
  // takes instead of being refused by the admission queue's bound or deadline.
  bool async = false;
  // The function that made this call through its environment's Invoke endpoint; "" for
  // calls from outside.
  std::string caller;
};

// Milliseconds spent in each phase; negative = did not happen (Server-Timing lists
// only the phases that happened).
struct PhaseTimes {
  double queue = -1;    // waiting in the admission queue (a start slot's wait is overhead)
  double image = -1;    // image inspection (cached while the engine's event stream is up)
  double create = -1;   // POST /containers/create
  double start = -1;    // wait registered + POST /containers/{id}/start
  double init = -1;     // start returned -> the runtime's first GET /next
  double handler = -1;  // event handed out -> response or error posted
  double total = -1;    // invocation accepted -> outcome known
  // total minus the phases above: what the daemon itself costs.
  double overhead() const;
  // "queue;dur=0.0, create;dur=8.4, start;dur=181.2, init;dur=1.3, handler;dur=0.4,
  // overhead;dur=0.2, total;dur=192.0"
  std::string ServerTiming() const;
};

enum class OutcomeKind {
  kSuccess,            // the runtime posted /response
  kFunctionError,      // the function or its runtime failed: body is the error JSON
  kThrottled,          // no capacity in time: the admission queue was full or its wait ran out
  kImageNotReady,      // the function's image does not exist on the engine
  kEngineUnavailable,  // the engine cannot be reached
  kEngineFailed,       // the engine answered with an error
  kInternal,           // ephemera itself failed (a listener could not open, ...)
  kCancelled,          // the caller went away, or the daemon is stopping
};
// True for the kinds where the function ran (or tried to) and the API answers 200.
inline bool IsFunctionOutcome(OutcomeKind k) {
  return k == OutcomeKind::kSuccess || k == OutcomeKind::kFunctionError;
}

struct InvokeOutcome {
  OutcomeKind kind = OutcomeKind::kInternal;
  Status status;     // for the service kinds: what went wrong, naming the thing
  std::string body;  // the response, or the function error JSON
  std::string content_type = "application/json";
  std::string error_type;       // function errors: errorType (Runtime.ExitError, ...)
  std::string throttle_reason;  // kThrottled: Lambda's Reason field
  StartKind start = StartKind::kCold;
  std::string environment_id;  // "" if no environment was involved
  PhaseTimes phases;
  std::string logs;  // the function's stdout/stderr during this invocation (capture_logs)
  int memory_mb = 0;
  int max_memory_used_mb = 0;    // peak of this invocation from the cgroup; 0 if unknown
  double init_duration_ms = -1;  // for the REPORT line; cold starts only
};

using InvokeDone = std::function<void(InvokeOutcome)>;

}  // namespace ephemera::sandbox
