// ephemera: a local serverless runtime emulator. This file only parses the
// command line and dispatches: `serve` runs the daemon (serve.cc); `invoke` and
// `functions` are thin clients of its HTTP API (client.cc); `bench` runs the
// benchmark tool built beside this binary.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/cli/client.h"
#include "runtime/cli/serve.h"
#include "runtime/core/log.h"

namespace {

constexpr char kUsage[] = R"(ephemera: a local serverless (AWS Lambda) runtime emulator.
Each invocation runs in a Docker container: a fresh one removed afterwards (policy cold,
the default), one kept for the next call (warm), or one started ahead and used once (pool).

Usage:
  ephemera serve [options]          run the daemon
  ephemera invoke NAME [options]    invoke a function through a running daemon
  ephemera functions [--endpoint URL]
                                    list the functions a running daemon knows
  ephemera bench [options]          cold-start benchmark (see `ephemera bench --help`)
  ephemera --help | --version

serve options:
  --listen HOST:PORT     address of the API (default 127.0.0.1:9000; env EPHEMERA_LISTEN)
  --registry PATH        function manifest (default registry/functions.json; env EPHEMERA_REGISTRY)
  --state PATH           file where functions created through the API persist
                         (default $XDG_STATE_HOME/ephemera/functions.json, i.e.
                         ~/.local/state/ephemera/functions.json; `none` keeps them in
                         memory only; env EPHEMERA_STATE)
  --shim PATH            the static shim to inject (default: ephemera-shim beside this binary)
  --docker ENDPOINT      Docker engine (default DOCKER_HOST or /var/run/docker.sock)
  --init-timeout MS      time a runtime has from start to its first /next (default 10000)
  --max-concurrency N    invocations running at once, daemon-wide (default 64); more wait
                         in each function's admission queue, then get 429
  --max-starts N         container starts in flight at once (default 2, the engine's knee
                         measured on a 2-core machine; see bench/README.md)
  --log-level LEVEL      debug, info, warn or error (default info; env EPHEMERA_LOG)

invoke options:
  --endpoint URL         daemon address (default http://127.0.0.1:9000; env EPHEMERA_ENDPOINT)
  --payload DATA         event payload (default: empty)
  --payload-file FILE    read the payload from FILE (- for stdin)
  --raw                  use the plain route POST /function/NAME (any bytes, no JSON check)
  --event                asynchronous invocation (X-Amz-Invocation-Type: Event)
  --tail                 print the function's log tail (X-Amz-Log-Type: Tail) to stderr
  --timing               print the cold-start phases (Server-Timing) to stderr
  The response body goes to stdout. Exit status: 0 ok, 1 function error, 2 other errors.

Lambda API: POST /2015-03-31/functions/NAME/invocations, so `aws lambda invoke
--endpoint-url http://127.0.0.1:9000 --function-name NAME out.json` works.
)";

int Usage(const char* problem) {
  std::fprintf(stderr, "ephemera: %s\nRun `ephemera --help` for usage.\n", problem);
  return 2;
}

const char* Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// Takes the value of option argv[*i] (which needs one), advancing *i.
bool TakeValue(int argc, char** argv, int* i, std::string* out) {
  if (*i + 1 >= argc) return false;
  *out = argv[++*i];
  return true;
}

bool ParsePositive(const std::string& s, long max, long* out) {
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v <= 0 || v > max) return false;
  *out = v;
  return true;
}

int RunServe(int argc, char** argv) {
  ephemera::cli::ServeOptions o;
  std::string listen = Env("EPHEMERA_LISTEN", "127.0.0.1:9000");
  o.registry_path = Env("EPHEMERA_REGISTRY", "registry/functions.json");
  o.state_path = Env("EPHEMERA_STATE", "");
  if (o.state_path.empty()) {
    const char* xdg = std::getenv("XDG_STATE_HOME");
    std::string base =
        xdg != nullptr && *xdg != '\0' ? xdg : std::string(Env("HOME", "/root")) + "/.local/state";
    o.state_path = base + "/ephemera/functions.json";
  }
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i], v;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    static const char* const kValueOptions[] = {
        "--listen",       "--registry",        "--state",      "--shim",     "--docker",
        "--init-timeout", "--max-concurrency", "--max-starts", "--log-level"};
    if (std::find(std::begin(kValueOptions), std::end(kValueOptions), arg) ==
        std::end(kValueOptions)) {
      return Usage(("unknown serve option " + arg).c_str());
    }
    if (!TakeValue(argc, argv, &i, &v)) return Usage((arg + " needs a value").c_str());
    long n = 0;
    if (arg == "--listen") {
      listen = v;
    } else if (arg == "--registry") {
      o.registry_path = v;
    } else if (arg == "--state") {
      o.state_path = v;
    } else if (arg == "--shim") {
      o.shim_path = v;
    } else if (arg == "--docker") {
      o.docker_endpoint = v;
    } else if (arg == "--init-timeout") {
      if (!ParsePositive(v, 900000, &n))
        return Usage("--init-timeout must be milliseconds, 1..900000");
      o.init_timeout_ms = static_cast<uint64_t>(n);
    } else if (arg == "--max-concurrency") {
      if (!ParsePositive(v, 100000, &n)) return Usage("--max-concurrency must be 1..100000");
      o.max_concurrency = static_cast<int>(n);
    } else if (arg == "--max-starts") {
      if (!ParsePositive(v, 1000, &n)) return Usage("--max-starts must be 1..1000");
      o.max_starts = static_cast<int>(n);
    } else if (arg == "--log-level") {
      using ephemera::LogLevel;
      if (v == "debug")
        ephemera::SetLogLevel(LogLevel::kDebug);
      else if (v == "info")
        ephemera::SetLogLevel(LogLevel::kInfo);
      else if (v == "warn")
        ephemera::SetLogLevel(LogLevel::kWarn);
      else if (v == "error")
        ephemera::SetLogLevel(LogLevel::kError);
      else
        return Usage("--log-level must be debug, info, warn or error");
    } else {
      return Usage(("unknown serve option " + arg).c_str());
    }
  }
  if (o.state_path == "none") o.state_path.clear();
  size_t colon = listen.rfind(':');
  long port = 0;
  if (colon == std::string::npos ||
      !(listen.substr(colon + 1) == "0" || ParsePositive(listen.substr(colon + 1), 65535, &port))) {
    return Usage(("--listen must be HOST:PORT (got " + listen + ")").c_str());
  }
  o.host = listen.substr(0, colon);
  o.port = static_cast<int>(port);
  return ephemera::cli::Serve(o);
}

int RunInvoke(int argc, char** argv) {
  ephemera::cli::InvokeOptions o;
  o.endpoint = Env("EPHEMERA_ENDPOINT", "http://127.0.0.1:9000");
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i], v;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--raw") {
      o.raw = true;
    } else if (arg == "--event") {
      o.event = true;
    } else if (arg == "--tail") {
      o.tail = true;
    } else if (arg == "--timing") {
      o.timing = true;
    } else if (arg == "--endpoint") {
      if (!TakeValue(argc, argv, &i, &o.endpoint)) return Usage("--endpoint needs a URL");
    } else if (arg == "--payload") {
      if (!TakeValue(argc, argv, &i, &o.payload)) return Usage("--payload needs a value");
    } else if (arg == "--payload-file") {
      if (!TakeValue(argc, argv, &i, &v)) return Usage("--payload-file needs a file name");
      if (v == "-") {
        o.payload.assign(std::istreambuf_iterator<char>(std::cin.rdbuf()), {});
      } else {
        std::ifstream in(v, std::ios::binary);
        if (!in)
          return Usage(("cannot read payload file " + v + ": " + std::strerror(errno)).c_str());
        o.payload.assign(std::istreambuf_iterator<char>(in), {});
      }
    } else if (!arg.empty() && arg[0] == '-') {
      return Usage(("unknown invoke option " + arg).c_str());
    } else if (o.function.empty()) {
      o.function = arg;
    } else {
      return Usage(("unexpected argument " + arg + " (one function name only)").c_str());
    }
  }
  if (o.function.empty()) return Usage("invoke needs a function name: ephemera invoke NAME");
  return ephemera::cli::Invoke(o);
}

int RunBench(int argc, char** argv) {
  // The benchmark is its own executable (bench/), installed beside this one.
  std::string self = argv[0];
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    self = exe;
  }
  std::string tool = self.substr(0, self.rfind('/') + 1) + "ephemera-bench";
  std::vector<char*> args;
  args.push_back(tool.data());
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(tool.c_str(), args.data());
  std::fprintf(stderr, "ephemera: cannot run %s: %s (build it: cmake --build build)\n",
               tool.c_str(), std::strerror(errno));
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage("a command is needed: serve, invoke, functions or bench");
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::puts("ephemera 0.1.0");
    return 0;
  }
  if (cmd == "serve") return RunServe(argc, argv);
  if (cmd == "invoke") return RunInvoke(argc, argv);
  if (cmd == "bench") return RunBench(argc, argv);
  if (cmd == "functions") {
    std::string endpoint = Env("EPHEMERA_ENDPOINT", "http://127.0.0.1:9000");
    for (int i = 2; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--endpoint" && TakeValue(argc, argv, &i, &endpoint)) continue;
      if (arg == "--help" || arg == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
      }
      return Usage(("unknown functions option " + arg).c_str());
    }
    return ephemera::cli::ListFunctions(endpoint);
  }
  return Usage(("unknown command " + cmd).c_str());
}
