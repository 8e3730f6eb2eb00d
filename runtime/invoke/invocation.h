// runtime/invoke/invocation.h: what one invocation asks for and what it gives back.
//
// These values cross the boundary between the HTTP-facing API (invoke_api) and
// the sandbox machinery (invoker, cold_invocation), so neither needs the other.
// Thread: any. Depends on: core, registry.
#pragma once

#include <memory>
#include <string>

#include "registry/registry.h"
#include "runtime/core/status.h"

namespace ephemera::invoke {

struct InvokeRequest {
  std::shared_ptr<const registry::FunctionSpec> function;
  std::string request_id;
  std::string payload;
  std::string content_type = "application/json";
  std::string client_context;  // JSON text, already base64-decoded; "" if none
  bool capture_logs = false;   // attach before start and keep the function's output
};

// Milliseconds spent in each phase of a cold start; negative = did not happen.
struct PhaseTimes {
  double image = -1;    // image inspection (cached after the first call)
  double create = -1;   // POST /containers/create
  double start = -1;    // wait registered + POST /containers/{id}/start
  double init = -1;     // start returned -> the runtime's first GET /next
  double handler = -1;  // event handed out -> response or error posted
  double total = -1;    // invocation accepted -> outcome known
  // total minus the phases above: what the daemon itself costs.
  double overhead() const;
  // "image;dur=0.1, create;dur=8.4, start;dur=181.2, init;dur=1.3, handler;dur=0.4,
  // total;dur=192.0"
  std::string ServerTiming() const;
};

struct InvokeOutcome {
  enum class Kind {
    kSuccess,        // the runtime posted /response
    kFunctionError,  // the function or runtime failed: body is the error JSON
    kServiceError,   // ephemera could not run it: see error_code / status
  };
  Kind kind = Kind::kServiceError;
  std::string body;
  std::string content_type = "application/json";
  // Service errors: HTTP status, AWS error code (x-amzn-ErrorType) and message.
  int http_status = 500;
  std::string error_code;
  Status status;
  PhaseTimes phases;
  std::string logs;  // the function's stdout/stderr when capture_logs was set
  int memory_mb = 0;
  int max_memory_used_mb = 0;    // peak from the container's cgroup; 0 if unknown
  double init_duration_ms = -1;  // for the REPORT line
};

}  // namespace ephemera::invoke
