// shim/shim_main.cc: the ephemera-shim executable.
//
// Injected as the container's entrypoint (bind-mounted at /opt/ephemera/shim); argv[1..]
// is the image's own command. Reads:
//   AWS_LAMBDA_RUNTIME_API    host:port of the daemon's Runtime API for this environment
//   EPHEMERA_MODE             exec (default) or http
//   EPHEMERA_HTTP_PORT        http mode: the service's port (default 8080)
//   EPHEMERA_HTTP_PATH        http mode: where non-API-Gateway events are POSTed (default /)
//   EPHEMERA_INIT_TIMEOUT_MS  http mode: how long the service may take to listen (10000)
// Exit codes: 0 after SIGTERM, 1 function/service failure, 2 bad configuration,
// 3 Runtime API unreachable.
#include <stdlib.h>

#include <string>
#include <vector>

#include "shim/modes.h"
#include "shim/signals.h"

namespace {

using ephemera::shim::ShimLog;

// Reads a positive integer variable; `fallback` if unset; -1 if malformed.
long EnvNumber(const char* name, long fallback) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long n = strtol(v, &end, 10);
  if (*end != '\0' || n <= 0) return -1;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  namespace shim = ephemera::shim;
  shim::InstallSignalHandlers(true);

  const char* mode_env = getenv("EPHEMERA_MODE");
  std::string mode = mode_env != nullptr && *mode_env != '\0' ? mode_env : "exec";
  if (mode != "exec" && mode != "http") {
    ShimLog("EPHEMERA_MODE must be exec or http, got '" + mode + "'");
    return 2;
  }
  const char* endpoint = getenv("AWS_LAMBDA_RUNTIME_API");
  std::string host;
  uint16_t port = 0;
  if (endpoint == nullptr || !shim::RuntimeApiClient::ParseEndpoint(endpoint, &host, &port)) {
    ShimLog(mode + " mode: AWS_LAMBDA_RUNTIME_API must be host:port, got '" +
            (endpoint != nullptr ? endpoint : "") + "'");
    return 2;
  }
  shim::RuntimeApiClient api(host, port);
  if (shim::Status st = api.Connect(1000); !st.ok()) {
    ShimLog(mode + " mode: Runtime API unreachable: " + st.message());
    return 3;
  }

  std::vector<std::string> command(argv + 1, argv + argc);
  if (command.empty() || command[0].empty()) {
    std::string message = mode +
                          " mode: no command to run (the image has no ENTRYPOINT/CMD and the "
                          "function spec gives none)";
    ShimLog(message);
    if (shim::Status st = api.PostInitError("Runtime.InvalidEntrypoint", message); !st.ok()) {
      ShimLog(mode + " mode: cannot post the init error: " + st.message());
    }
    return 1;
  }

  if (mode == "exec") return shim::RunExecMode(&api, command);

  shim::HttpModeConfig config;
  long http_port = EnvNumber("EPHEMERA_HTTP_PORT", 8080);
  long timeout = EnvNumber("EPHEMERA_INIT_TIMEOUT_MS", 10000);
  const char* path = getenv("EPHEMERA_HTTP_PATH");
  std::string problem;
  if (http_port < 0 || http_port > 65535) problem = "EPHEMERA_HTTP_PORT must be a port number";
  if (timeout < 0) problem = "EPHEMERA_INIT_TIMEOUT_MS must be a positive number";
  if (path != nullptr && *path != '\0' && *path != '/')
    problem = "EPHEMERA_HTTP_PATH must start with /";
  if (!problem.empty()) {
    ShimLog("http mode: " + problem);
    if (shim::Status st = api.PostInitError("Runtime.ConfigInvalid", "http mode: " + problem);
        !st.ok()) {
      ShimLog("http mode: cannot post the init error: " + st.message());
    }
    return 2;
  }
  config.port = static_cast<uint16_t>(http_port);
  config.init_timeout_ms = static_cast<int>(timeout);
  if (path != nullptr && *path != '\0') config.path = path;
  return shim::RunHttpMode(&api, command, config);
}
