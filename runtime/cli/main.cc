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
#include "runtime/cli/events_client.h"
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
  ephemera invocations [NAME] [--limit N] [--follow] [--endpoint URL]
                                    invocation records kept in Redis (all functions, or NAME),
                                    oldest first; --follow keeps printing new ones
  ephemera dlq list [--limit N] [--json] [--endpoint URL]
                                    Event invocations that ran out of retries (dead letters)
  ephemera dlq replay ID [--endpoint URL]
                                    run dead letter ID again as a new Event invocation
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
  --engine-timeout MS    how long one engine call (create, start, remove, inspect...) may
                         take before it fails with ServiceException (default 60000)
  --precreate            cold functions: after a cold start, create the function's next
                         container ahead (created, never started), so the next cold start
                         skips the create; one created container per used function stays
  --max-starts N         container starts in flight at once (default 4, the engine's knee
                         measured on a 2-core machine; see bench/README.md)
  --log-level LEVEL      debug, info, warn or error (default info; env EPHEMERA_LOG)

serve options for Redis (durable Event invocations, retries, destinations, dead letters,
invocation records; the daemon starts and serves synchronous invocations without it):
  --redis URL            redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]
                         (default redis://127.0.0.1:6379; env REDIS_URL). An Event invocation
                         gets its 202 only once it is in Redis, 503 while Redis is down
  --redis-prefix P       prefix of every key (default ephemera:); daemons sharing a Redis and
                         a prefix share one queue
  --redis-timeout MS     how long a Redis command may take (default 2000); an Event invocation
                         Redis does not confirm in time gets 503 and never runs
  --daemon-id ID         this daemon's consumer name in the shared queue (default
                         HOSTNAME:PORT, or HOSTNAME-PID with port 0); a restart under the same
                         id resumes its unfinished events at once
  --event-concurrency N  Event invocations this daemon runs at once (default 32; 0 = accept
                         them, run none here)
  --event-retry-delays MS,MS
                         delay before retry 1 and 2 of a function error or timeout (default
                         60000,120000, Lambda's); MaximumRetryAttempts and
                         MaximumEventAgeInSeconds come from each function's event invoke config
  --event-service-retry MS
                         first delay when an event could not run at all (engine down, image
                         missing), doubling up to 5 minutes, within the event's age (default 1000)
  --event-claim-idle MS  events held that long by a daemon that stopped answering are taken
                         over by another (default 30000)
  --event-max-queued N   Event invocations waiting in Redis before more get 429 (default 100000)
  --records-max N        invocation records kept (default 10000)
  --records-max-age S    and for at most S seconds (default 86400)

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

// The serve options that take a whole number in 1..max; `unit` goes into the message.
struct NumberOption {
  const char* name;
  long max;
  const char* unit;  // "milliseconds, ", "seconds, " or ""
  void (*set)(ephemera::cli::ServeOptions& o, long n);
};
using ServeOptions = ephemera::cli::ServeOptions;
constexpr NumberOption kNumberOptions[] = {
    {"--init-timeout", 900000, "milliseconds, ",
     [](ServeOptions& o, long n) { o.init_timeout_ms = static_cast<uint64_t>(n); }},
    {"--max-concurrency", 100000, "",
     [](ServeOptions& o, long n) { o.max_concurrency = static_cast<int>(n); }},
    {"--engine-timeout", 3600000, "milliseconds, ",
     [](ServeOptions& o, long n) { o.engine_timeout_ms = n; }},
    {"--max-starts", 1000, "", [](ServeOptions& o, long n) { o.max_starts = static_cast<int>(n); }},
    {"--redis-timeout", 600000, "milliseconds, ",
     [](ServeOptions& o, long n) { o.redis_timeout_ms = static_cast<uint64_t>(n); }},
    {"--event-service-retry", 3600000, "milliseconds, ",
     [](ServeOptions& o, long n) { o.event_service_retry_ms = static_cast<uint64_t>(n); }},
    {"--event-claim-idle", 86400000, "milliseconds, ",
     [](ServeOptions& o, long n) { o.event_claim_idle_ms = static_cast<uint64_t>(n); }},
    {"--event-max-queued", 100000000, "",
     [](ServeOptions& o, long n) { o.event_max_queued = static_cast<size_t>(n); }},
    {"--records-max", 10000000, "",
     [](ServeOptions& o, long n) { o.records_max = static_cast<size_t>(n); }},
    {"--records-max-age", 31536000, "seconds, ",
     [](ServeOptions& o, long n) { o.records_max_age_s = static_cast<uint64_t>(n); }},
};

int RunServe(int argc, char** argv) {
  ServeOptions o;
  std::string listen = Env("EPHEMERA_LISTEN", "127.0.0.1:9000");
  o.registry_path = Env("EPHEMERA_REGISTRY", "registry/functions.json");
  o.redis_url = Env("REDIS_URL", "");
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
    if (arg == "--precreate") {
      o.precreate = true;
      continue;
    }
    static const char* const kValueOptions[] = {"--listen",
                                                "--registry",
                                                "--state",
                                                "--shim",
                                                "--docker",
                                                "--log-level",
                                                "--redis",
                                                "--redis-prefix",
                                                "--daemon-id",
                                                "--event-concurrency",
                                                "--event-retry-delays"};
    const NumberOption* number = nullptr;
    for (const NumberOption& no : kNumberOptions) {
      if (arg == no.name) number = &no;
    }
    if (number == nullptr && std::find(std::begin(kValueOptions), std::end(kValueOptions), arg) ==
                                 std::end(kValueOptions)) {
      return Usage(("unknown serve option " + arg).c_str());
    }
    if (!TakeValue(argc, argv, &i, &v)) return Usage((arg + " needs a value").c_str());
    long n = 0;
    if (number != nullptr) {
      if (!ParsePositive(v, number->max, &n)) {
        return Usage(
            (arg + " must be " + number->unit + "1.." + std::to_string(number->max)).c_str());
      }
      number->set(o, n);
      continue;
    }
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
    } else if (arg == "--redis") {
      o.redis_url = v;
    } else if (arg == "--redis-prefix") {
      if (v.empty() || v.size() > 100) return Usage("--redis-prefix must be 1..100 characters");
      o.redis_prefix = v;
    } else if (arg == "--daemon-id") {
      if (v.empty() || v.size() > 200 || v.find_first_of(" \t\r\n") != std::string::npos)
        return Usage("--daemon-id must be 1..200 characters without spaces");
      o.daemon_id = v;
    } else if (arg == "--event-concurrency") {
      if (v != "0" && !ParsePositive(v, 10000, &n))
        return Usage("--event-concurrency must be 0..10000");
      o.event_concurrency = static_cast<int>(n);
    } else if (arg == "--event-retry-delays") {
      o.event_retry_delays_ms.clear();
      size_t start = 0;
      while (start <= v.size()) {
        size_t comma = v.find(',', start);
        std::string part =
            v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!ParsePositive(part, 86400000, &n) || o.event_retry_delays_ms.size() == 2)
          return Usage("--event-retry-delays must be one or two delays in ms, e.g. 60000,120000");
        o.event_retry_delays_ms.push_back(static_cast<uint64_t>(n));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
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

// `ephemera invocations [NAME] [--limit N] [--follow] [--endpoint URL]`.
int RunInvocations(int argc, char** argv) {
  ephemera::cli::InvocationsOptions o;
  o.endpoint = Env("EPHEMERA_ENDPOINT", "http://127.0.0.1:9000");
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i], v;
    long n = 0;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--follow" || arg == "-f") {
      o.follow = true;
    } else if (arg == "--endpoint") {
      if (!TakeValue(argc, argv, &i, &o.endpoint)) return Usage("--endpoint needs a URL");
    } else if (arg == "--limit") {
      if (!TakeValue(argc, argv, &i, &v) || !ParsePositive(v, 1000, &n))
        return Usage("--limit must be 1..1000");
      o.limit = static_cast<int>(n);
    } else if (!arg.empty() && arg[0] == '-') {
      return Usage(("unknown invocations option " + arg).c_str());
    } else if (o.function.empty()) {
      o.function = arg;
    } else {
      return Usage(("unexpected argument " + arg + " (one function name only)").c_str());
    }
  }
  return ephemera::cli::Invocations(o);
}

// `ephemera dlq list [--limit N] [--json]` and `ephemera dlq replay ID`.
int RunDlq(int argc, char** argv) {
  std::string endpoint = Env("EPHEMERA_ENDPOINT", "http://127.0.0.1:9000");
  std::string action, id;
  int limit = 50;
  bool as_json = false;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i], v;
    long n = 0;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--endpoint") {
      if (!TakeValue(argc, argv, &i, &endpoint)) return Usage("--endpoint needs a URL");
    } else if (arg == "--limit") {
      if (!TakeValue(argc, argv, &i, &v) || !ParsePositive(v, 1000, &n))
        return Usage("--limit must be 1..1000");
      limit = static_cast<int>(n);
    } else if (arg == "--json") {
      as_json = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return Usage(("unknown dlq option " + arg).c_str());
    } else if (action.empty()) {
      action = arg;
    } else if (action == "replay" && id.empty()) {
      id = arg;
    } else {
      return Usage(("unexpected argument " + arg).c_str());
    }
  }
  if (action == "list") return ephemera::cli::DlqList(endpoint, limit, as_json);
  if (action == "replay") {
    if (id.empty()) return Usage("dlq replay needs the dead letter's ID (see `ephemera dlq list`)");
    return ephemera::cli::DlqReplay(endpoint, id);
  }
  return Usage("dlq needs an action: ephemera dlq list | ephemera dlq replay ID");
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
  if (argc < 2)
    return Usage("a command is needed: serve, invoke, functions, invocations, dlq or bench");
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
  if (cmd == "invocations") return RunInvocations(argc, argv);
  if (cmd == "dlq") return RunDlq(argc, argv);
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
