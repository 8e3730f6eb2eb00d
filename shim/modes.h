// shim/modes.h: the shim's exec and http modes, as loops over the Runtime API.
//
// Both take a connected RuntimeApiClient and the command to wrap (argv[1..] of the shim),
// run until SIGTERM (exit code 0) or an unrecoverable error (non-zero), and report what
// went wrong to the Runtime API and as one "ephemera-shim: <mode> mode: ..." line on
// stderr. Error types they post:
//   Runtime.InvalidEntrypoint  the command is missing / not executable (init error, or an
//                              invocation error if exec fails later), or no command at all
//   Function.ExitStatus        exec mode: the command exited non-zero
//   Function.Signal            exec mode: the command was killed by a signal
//   Function.ResponseTooLarge  exec mode: stdout exceeded 64 MiB
//   Runtime.ServiceNotReady    http mode: the service did not accept connections in time
//   Runtime.ServiceExited      http mode: the service process exited
//   Runtime.ServiceUnreachable http mode: the request to the service failed
//   Function.HttpStatus        http mode, raw events: the service answered >= 400
//   Runtime.InvalidEvent       http mode: an API Gateway event could not be mapped
// Thread: the main thread. Depends on: the rest of shim/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shim/runtime_api.h"

namespace ephemera::shim {

// Writes "ephemera-shim: <line>\n" to stderr in one write; newlines inside `line` are
// written as "\n" so every message stays one line.
void ShimLog(std::string_view line);

// Joins argv for messages: "/bin/sh -c 'tr a-z A-Z'" style, shortened if long.
std::string DescribeCommand(const std::vector<std::string>& argv);

// Extra environment for one invocation: _X_AMZN_TRACE_ID, AWS_LAMBDA_REQUEST_ID,
// AWS_LAMBDA_DEADLINE_MS, AWS_LAMBDA_INVOKED_FUNCTION_ARN (set only when known).
std::vector<std::string> InvocationEnvironment(const Invocation& invocation);

// exec mode: per event, run argv with the event on stdin; stdout is the response.
int RunExecMode(RuntimeApiClient* api, const std::vector<std::string>& argv);

struct HttpModeConfig {
  uint16_t port = 8080;         // EPHEMERA_HTTP_PORT
  std::string path = "/";       // EPHEMERA_HTTP_PATH: where non-API-Gateway events go
  int init_timeout_ms = 10000;  // EPHEMERA_INIT_TIMEOUT_MS
};

// http mode: start argv once, wait for it to listen on 127.0.0.1:port, then forward
// each event to it as an HTTP request (see apigw.h for API Gateway events).
int RunHttpMode(RuntimeApiClient* api, const std::vector<std::string>& argv,
                const HttpModeConfig& config);

}  // namespace ephemera::shim
