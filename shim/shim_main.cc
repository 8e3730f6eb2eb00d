// shim/shim_main.cc: the ephemera-shim executable.
//
// Injected as the container's entrypoint (bind-mounted at /opt/ephemera/shim); argv[1..]
// is the image's own command. `ephemera-shim --hold` instead just sleeps until SIGTERM or
// SIGINT and exits 0, needing no environment (the sleeping process of network-namespace
// holder containers). Otherwise it reads (see shim/README.md for the full contract):
//   EPHEMERA_MODE              exec (default), http, passthrough or auto
//   EPHEMERA_RUNTIME_SOCKET    upstream Runtime API on a unix socket (preferred), else
//   EPHEMERA_RUNTIME_API       upstream host:port, else
//   AWS_LAMBDA_RUNTIME_API     upstream host:port
//   EPHEMERA_PROXY_LISTEN      host:port of the local proxy (passthrough and auto start one
//                              on a free 127.0.0.1 port without it)
//   EPHEMERA_FORWARD           port=/unix/path[,...] host services to forward
//   EPHEMERA_HTTP_PORT, EPHEMERA_HTTP_PATH, EPHEMERA_INIT_TIMEOUT_MS   http mode
//   EPHEMERA_CGROUP_MEMORY_DIR where to read the OOM-kill counter (oom.h)
// Exit codes: 0 after SIGTERM, 1 function/service failure, 2 bad configuration,
// 3 Runtime API unreachable or gone, 4 deadline exceeded; passthrough (and auto once the
// command is a Runtime API client): the command's own status.
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "shim/forward.h"
#include "shim/modes.h"
#include "shim/proxy.h"
#include "shim/signals.h"
#include "shim/supervisor.h"

namespace {

namespace shim = ephemera::shim;
using shim::ShimLog;

// What the shim's threads share until the process exits. Held here rather than in
// RunShim's locals so they stay reachable after it returns to ExitShim (the leak checker
// of sanitizer builds reports objects only a finished frame pointed at).
struct Kept {
  shim::RuntimeApiClient* api = nullptr;
  shim::ShimSetup* setup = nullptr;
  std::vector<shim::PortForwarder*> forwarders;
};
Kept kept;

// Reads a positive integer variable; `fallback` if unset; -1 if malformed.
long EnvNumber(const char* name, long fallback) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long n = strtol(v, &end, 10);
  if (*end != '\0' || n <= 0) return -1;
  return n;
}

const char* EnvOrNull(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

void IgnoreSignal(int) {}

// --hold: nothing to do but wait. The signals are blocked first and then taken with
// sigwait(); handlers are installed too (after the block, so none can swallow a signal
// meant for sigwait), in case a kernel would drop an unhandled signal sent to PID 1.
int Hold() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  struct sigaction sa = {};
  sa.sa_handler = IgnoreSignal;
  sigemptyset(&sa.sa_mask);
  for (int signo : {SIGTERM, SIGINT, SIGCHLD}) sigaction(signo, &sa, nullptr);
  while (true) {
    int signo = 0;
    if (sigwait(&set, &signo) != 0) continue;
    if (signo != SIGCHLD) return 0;
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
      // Processes `docker exec`ed into the holder and orphaned there end up as our zombies.
    }
  }
}

bool SameTcpAddress(const shim::Endpoint& a, const shim::Endpoint& b) {
  auto ip = [](const std::string& host) { return host == "localhost" ? "127.0.0.1" : host; };
  return !a.is_unix() && !b.is_unix() && a.port == b.port && ip(a.host) == ip(b.host);
}

int ConfigError(shim::RuntimeApiClient* api, const std::string& mode, const std::string& problem) {
  shim::ReportInitError(api, mode, "Runtime.ConfigInvalid", mode + " mode: " + problem);
  return 2;
}

int RunShim(int argc, char** argv) {
  shim::InstallSignalHandlers(true);

  const char* mode_env = EnvOrNull("EPHEMERA_MODE");
  std::string mode = mode_env != nullptr ? mode_env : "exec";
  if (mode != "exec" && mode != "http" && mode != "passthrough" && mode != "auto") {
    ShimLog("EPHEMERA_MODE must be exec, http, passthrough or auto, got '" + mode + "'");
    return 2;
  }
  shim::SetSupervisorMode(mode);

  shim::Endpoint upstream;
  if (shim::Status st = shim::UpstreamFromEnvironment(&upstream); !st.ok()) {
    ShimLog(mode + " mode: " + st.message());
    return 2;
  }
  // The proxy: wherever EPHEMERA_PROXY_LISTEN says, or a free loopback port for the modes
  // that need one to see the command's Runtime API traffic.
  bool want_proxy = mode == "passthrough" || mode == "auto";
  shim::Endpoint proxy_address;
  proxy_address.host = "127.0.0.1";
  if (const char* listen = EnvOrNull("EPHEMERA_PROXY_LISTEN")) {
    if (!shim::Endpoint::ParseHostPort(listen, &proxy_address)) {
      ShimLog(mode + " mode: EPHEMERA_PROXY_LISTEN must be host:port, got '" + listen + "'");
      return 2;
    }
    if (SameTcpAddress(proxy_address, upstream)) {
      ShimLog(mode + " mode: the Runtime API upstream " + upstream.Describe() +
              " is the proxy's own address (EPHEMERA_PROXY_LISTEN); set EPHEMERA_RUNTIME_SOCKET "
              "or EPHEMERA_RUNTIME_API to the daemon's");
      return 2;
    }
    want_proxy = true;
  }

  // Never destroyed: the proxy's and the forwards' threads use these until the exit.
  auto* api = kept.api = new shim::RuntimeApiClient(upstream);
  if (shim::Status st = api->Connect(1000); !st.ok()) {
    ShimLog(mode + " mode: Runtime API unreachable: " + st.message());
    return 3;
  }

  auto* setup = kept.setup = new shim::ShimSetup;
  setup->api = api;
  setup->argv.assign(argv + 1, argv + argc);
  if (setup->argv.empty() || setup->argv[0].empty()) {
    shim::ReportInitError(api, mode, "Runtime.InvalidEntrypoint",
                          mode +
                              " mode: no command to run (the image has no ENTRYPOINT/CMD and the "
                              "function spec gives none)");
    return 1;
  }

  if (const char* spec = EnvOrNull("EPHEMERA_FORWARD")) {
    std::vector<shim::ForwardRule> rules;
    if (shim::Status st = shim::ParseForwardSpec(spec, &rules); !st.ok()) {
      return ConfigError(api, mode, st.message());
    }
    for (auto& rule : rules) {
      auto* forwarder = new shim::PortForwarder(rule);
      kept.forwarders.push_back(forwarder);
      if (shim::Status st = forwarder->Start(); !st.ok())
        return ConfigError(api, mode, st.message());
    }
  }

  if (mode == "auto") setup->decision = new shim::AutoDecision;
  if (want_proxy) {
    auto* proxy =
        new shim::RuntimeApiProxy(upstream, shim::ShimProxyHooks(upstream, setup->decision));
    if (shim::Status st = proxy->Start(proxy_address); !st.ok()) {
      return ConfigError(api, mode, "proxy: " + st.message());
    }
    setup->proxy = proxy;
    // The command reaches the daemon through the proxy only: auto mode must see its
    // requests, and a native function would otherwise prefer the socket.
    setup->child_env = {"AWS_LAMBDA_RUNTIME_API=" + proxy->address(), "EPHEMERA_RUNTIME_SOCKET",
                        "EPHEMERA_RUNTIME_API", "EPHEMERA_PROXY_LISTEN", "EPHEMERA_FORWARD"};
  }

  if (mode == "exec") return shim::RunExecMode(*setup);
  if (mode == "auto") return shim::RunAutoMode(*setup);
  if (mode == "passthrough") return shim::RunPassthroughMode(*setup);

  shim::HttpModeConfig config;
  long http_port = EnvNumber("EPHEMERA_HTTP_PORT", 8080);
  long timeout = EnvNumber("EPHEMERA_INIT_TIMEOUT_MS", 10000);
  const char* path = EnvOrNull("EPHEMERA_HTTP_PATH");
  std::string problem;
  if (http_port < 0 || http_port > 65535) problem = "EPHEMERA_HTTP_PORT must be a port number";
  if (timeout < 0) problem = "EPHEMERA_INIT_TIMEOUT_MS must be a positive number";
  if (path != nullptr && *path != '/') problem = "EPHEMERA_HTTP_PATH must start with /";
  if (!problem.empty()) return ConfigError(api, mode, problem);
  config.port = static_cast<uint16_t>(http_port);
  config.init_timeout_ms = static_cast<int>(timeout);
  if (path != nullptr) config.path = path;
  return shim::RunHttpMode(*setup, config);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--hold") == 0) return Hold();
  ephemera::shim::ExitShim(RunShim(argc, argv));
}
