// runtime/cli/events_client.h: `ephemera invocations` and `ephemera dlq`, thin clients of
// the daemon's /ephemera/invocations and /ephemera/dlq routes (runtime/api/events_api.h).
// Blocking libcurl: a command-line tool has no loop.
// Thread: the main thread. Depends on: libcurl, json.
#pragma once

#include <string>

namespace ephemera::cli {

struct InvocationsOptions {
  std::string endpoint = "http://127.0.0.1:9000";
  std::string function;  // "" = all
  int limit = 20;
  bool follow = false;  // keep printing new records (polls every 500 ms) until interrupted
};

// Exit codes: 0 ok, 2 the daemon could not be reached or answered with an error.
int Invocations(const InvocationsOptions& options);
int DlqList(const std::string& endpoint, int limit, bool as_json);
int DlqReplay(const std::string& endpoint, const std::string& id);

}  // namespace ephemera::cli
