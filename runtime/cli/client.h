// runtime/cli/client.h: `ephemera invoke` and `ephemera functions`, thin clients
// of the daemon's HTTP API (blocking libcurl: a command-line tool has no loop).
// Thread: the main thread. Depends on: libcurl, json.
#pragma once

#include <string>

namespace ephemera::cli {

struct InvokeOptions {
  std::string endpoint = "http://127.0.0.1:9000";
  std::string function;
  std::string payload;
  bool has_payload = false;
  bool event = false;   // X-Amz-Invocation-Type: Event
  bool tail = false;    // X-Amz-Log-Type: Tail, decoded to stderr
  bool timing = false;  // print Server-Timing to stderr
  bool raw = false;     // the plain route: no JSON rules on the payload
};

// Returns the exit code: 0 success, 1 function error, 2 usage or service error.
int Invoke(const InvokeOptions& options);
int ListFunctions(const std::string& endpoint);

}  // namespace ephemera::cli
