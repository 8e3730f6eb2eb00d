// functions/orders/support/invoke.h: invoking another function by name, through the daemon.
//
// Functions find each other only by name (the seed's service locator is the daemon): the
// daemon passes EPHEMERA_INVOKE_ENDPOINT, the address where this environment's Invoke
// route is served ("127.0.0.1:<port>" on the host network, "127.0.0.1:9001" or
// "unix:/run/ephemera/runtime.sock" in an isolated namespace; see
// runtime/sandbox/container_spec.cc). Invoke sends the Lambda Invoke request
// (POST /2015-03-31/functions/{name}/invocations, docs/protocols.md section 2) over one
// blocking HTTP/1.1 connection and reads the whole answer.
//
// PEER_PREFIX (the function's own environment, default "") is put in front of every name
// the example functions invoke, so a test can run its own copies side by side.
// Thread: any (one connection per call). Depends on: POSIX sockets.
#pragma once

#include <string>

namespace ephemera::fn {

struct InvokeResult {
  int status = 0;              // HTTP status: 200 (RequestResponse), 202 (Event), 4xx/5xx
  std::string body;            // the function's answer, or the AWS error
  std::string function_error;  // X-Amz-Function-Error ("Unhandled") or ""
  std::string error;           // transport failure ("" if an answer came)
  bool ok() const { return error.empty() && (status == 200 || status == 202); }
};

// `async`: X-Amz-Invocation-Type Event (202 once accepted), else RequestResponse.
InvokeResult Invoke(const std::string& function, const std::string& payload, bool async,
                    int timeout_ms = 60000);

// PEER_PREFIX + name.
std::string PeerName(const std::string& name);

// Milliseconds since the epoch (CLOCK_REALTIME; containers share the host's clock).
long long NowMs();

}  // namespace ephemera::fn
