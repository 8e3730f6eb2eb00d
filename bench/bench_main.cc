// ephemera-bench: the cold-start benchmark (bench/README.md). This file parses the
// command line, runs the benchmark (runner.h), the microbenchmarks if present, and
// writes the reports (report.h). `ephemera bench ...` runs this binary.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "bench/probes.h"
#include "bench/report.h"
#include "bench/runner.h"

namespace {

using ephemera::bench::ParseNumber;
using ephemera::bench::SelfDir;
using ephemera::bench::Timestamp;
using ephemera::bench::UsageError;

constexpr char kUsage[] =
    R"(ephemera-bench: benchmark of ephemera's cold, warm and pool invocations with the raw
Docker floor and `docker run --rm` measured side by side, interleaved, in one run; then the
pool's refill rate, a concurrency sweep with the engine's knee, warm throughput, and the
daemon's memory with invocations queued.

Usage: ephemera-bench [options]     (also: ephemera bench [options])

What it does:
  1. starts its own daemon (`ephemera serve` on a free 127.0.0.1 port, log in OUT/daemon.log),
     unless --endpoint points at a running one;
  2. creates FN-warm (policy warm) and FN-pool (policy pool, --pool-size) through the
     daemon's CreateFunction, with FN's image and mode;
  3. runs W discarded warm-up rounds, then rounds of: one ephemera cold invocation (HTTP,
     Lambda Invoke API), one raw Docker floor sample (create -> wait registered -> start ->
     the container's first GET /runtime/invocation/next on the tool's own listener), one
     `docker run --rm -i` of the same image, one warm and one pool invocation, the order
     rotating every round (A B C D E, B C D E A, ...); each sample starts once the previous
     sample's container is gone, the pool is full and the daemon is idle;
     rounds go on until every series has N kept samples (at most N + max(5, N/5) rounds);
  4. the pool's refill rate: pool invocations, each sent once the daemon has an idle one,
     in blocks alternating with blocks of the raw floor at as many starts in flight;
  5. the concurrency sweep: at each level C, C workers issue cold starts back to back, for
     ephemera and for the raw floor, in alternating blocks of at least 4 x C samples
     (latency percentiles and cold starts per second); the floor alone also at the knee's
     levels (starts in flight), to find where its rate stops rising;
  6. warm throughput: C keep-alive clients (bench/loadgen.h) per level, invokes/s, latency,
     CPU of the daemon, the load generator and the containers; a perf profile of the daemon;
  7. the daemon's RSS with N synchronous, then N Event invocations queued behind a
     function with concurrency 1 (ephemera/busybox sleeping);
  8. stops the daemon and removes any container it labelled (ephemera.bench=<pid>);
  9. runs ephemera-microbench (beside this binary) unless --no-microbench;
 10. writes OUT/results.json, report.md, cdf.svg, phases.svg, sweep.svg and prints a table.

Options:
  --function NAME        function to benchmark (default echo), read from the registry
  --samples N            kept cold samples per interleaved series (default 100)
  --quick                20 samples, 2 warm-up rounds, 10 per sweep level, 10 pool-rate
                         samples, 2 s per throughput level (explicit options win)
  --warmups N            discarded warm-up rounds (default 3)
  --sweep-samples N      cold starts per sweep level and series (default 40; 0 = no sweep)
  --sweep-levels LIST    comma-separated concurrency levels (default 1,2,4,8)
  --knee-levels LIST     raw-floor starts in flight for the knee (default 1,2,3,4,6,8)
  --no-warm-pool         skip the warm and pool series (and what needs them)
  --pool-size N          size of the pool function's pool (default 2)
  --pool-rate-samples N  pool invocations for the refill rate, and as many raw floor starts
                         in the blocks between (default 120; 0 = none)
  --throughput-levels L  concurrent keep-alive clients (default 1,4,16,64; 0 = none)
  --throughput-seconds S measured seconds per level, after 2 s of warm-up (default 5)
  --no-perf              no perf profile of the daemon under throughput
  --queue-invocations N  queued invocations for the memory stage (default 1000; 0 = none)
  --max-starts N         --max-starts of the daemon the benchmark starts (default: its own)
  --precreate            start the daemon with --precreate: after each cold start it creates
                         the function's next container ahead (created, never started), so
                         cold samples skip the create; adds the target cold p50 <= 0.95 x
                         raw floor p50, counts the cold samples that still had a create, and
                         settling leaves that one created container (not with --endpoint)
  --no-docker-run        skip the docker run series
  --docker-run-args ARGS arguments after the image for docker run (split on spaces); default:
                         exec functions run their command, the echo image gets --stdio
  --payload JSON         event for every invocation (default {"bench":"ephemera"})
  --endpoint URL         benchmark a running daemon instead of starting one; --registry must
                         then be the manifest it serves (the floor copies the function's spec)
  --registry PATH        function manifest (default $EPHEMERA_REGISTRY or registry/functions.json)
  --ephemera PATH        daemon binary (default: ephemera beside this binary)
  --shim PATH            shim the daemon injects and the floor binds (default: ephemera-shim
                         beside this binary)
  --docker ENDPOINT      Docker engine (default DOCKER_HOST or /var/run/docker.sock)
  --docker-cli PATH      docker CLI for the docker run series (default /usr/bin/docker)
  --timeout MS           raw floor: give up on a sample after MS (default 10000)
  --out DIR              output directory (default bench/results/<UTC timestamp>)
  --no-microbench        do not run ephemera-microbench
  --help

Ctrl-C (SIGINT) or SIGTERM: the samples in flight finish, containers are removed, the
daemon is stopped and the reports are written with what was measured; a second signal stops
at once.

Exit status: 0 when the run completed (targets missed or not), 1 when it could not run
(daemon, registry or image problems) or was interrupted, 2 for usage errors.
)";

int Usage(const std::string& problem) {
  return UsageError("ephemera-bench", problem);
}

bool ParseInt(const std::string& s, int min, int max, int* out) {
  long v = 0;
  if (!ParseNumber(s, min, max, &v)) return false;
  *out = static_cast<int>(v);
  return true;
}

// "1,2,4,8" -> {1, 2, 4, 8}, each 1..max.
bool ParseLevels(const std::string& v, int max, std::vector<int>* out) {
  out->clear();
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t comma = v.find(',', pos);
    std::string part = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    int level = 0;
    if (!ParseInt(part, 1, max, &level)) return false;
    out->push_back(level);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return !out->empty();
}

bool MakeDirs(const std::string& dir) {
  return std::system(("mkdir -p '" + dir + "'").c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  using ephemera::bench::BenchOptions;
  std::signal(SIGPIPE, SIG_IGN);  // a docker CLI that exits early must not kill us
  BenchOptions o;
  const char* reg = std::getenv("EPHEMERA_REGISTRY");
  o.registry_path = reg != nullptr && *reg != '\0' ? reg : "registry/functions.json";
  std::string dir = SelfDir();
  o.ephemera_bin = dir + "/ephemera";
  o.shim_path = dir + "/ephemera-shim";
  std::string microbench = dir + "/ephemera-microbench";
  bool want_microbench = true;
#ifdef EPHEMERA_SOURCE_DIR
  o.source_dir = EPHEMERA_SOURCE_DIR;
#endif
  bool samples_set = false, warmups_set = false, sweep_set = false;
  bool throughput_set = false, pool_rate_set = false;
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false positive) on
  // "literal" + std::string temporaries, which -Werror turns into a build failure.
  for (int i = 0; i < argc; ++i) {
    if (i != 0) o.command_line += ' ';
    o.command_line += i != 0 ? argv[i] : "ephemera-bench";
  }

  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--no-docker-run") {
      o.docker_run = false;
    } else if (a == "--no-microbench") {
      want_microbench = false;
    } else if (a == "--no-warm-pool") {
      o.warm_pool = false;
    } else if (a == "--no-perf") {
      o.perf = false;
    } else if (a == "--precreate") {
      o.precreate = true;
    } else if (!value(&v)) {
      return Usage("unknown option " + a + " (or it needs a value)");
    } else if (a == "--function") {
      o.function = v;
    } else if (a == "--samples") {
      if (!ParseInt(v, 1, 100000, &o.samples)) return Usage("--samples must be 1..100000");
      samples_set = true;
    } else if (a == "--warmups") {
      if (!ParseInt(v, 0, 1000, &o.warmups)) return Usage("--warmups must be 0..1000");
      warmups_set = true;
    } else if (a == "--sweep-samples") {
      if (!ParseInt(v, 0, 100000, &o.sweep_samples))
        return Usage("--sweep-samples must be 0..100000");
      sweep_set = true;
    } else if (a == "--sweep-levels") {
      if (!ParseLevels(v, 256, &o.sweep_levels))
        return Usage("--sweep-levels must be like 1,2,4,8 (each 1..256)");
    } else if (a == "--knee-levels") {
      if (!ParseLevels(v, 256, &o.knee_levels))
        return Usage("--knee-levels must be like 1,2,3,4,6,8 (each 1..256)");
    } else if (a == "--throughput-levels") {
      if (v == "0") {
        o.throughput_levels.clear();
      } else if (!ParseLevels(v, 1000, &o.throughput_levels)) {
        return Usage("--throughput-levels must be like 1,4,16,64 (each 1..1000) or 0");
      }
    } else if (a == "--throughput-seconds") {
      int sec = 0;
      if (!ParseInt(v, 1, 600, &sec)) return Usage("--throughput-seconds must be 1..600");
      o.throughput_seconds = sec;
      throughput_set = true;
    } else if (a == "--pool-size") {
      if (!ParseInt(v, 1, 100, &o.pool_size)) return Usage("--pool-size must be 1..100");
    } else if (a == "--pool-rate-samples") {
      if (!ParseInt(v, 0, 100000, &o.pool_rate_samples))
        return Usage("--pool-rate-samples must be 0..100000");
      pool_rate_set = true;
    } else if (a == "--queue-invocations") {
      if (!ParseInt(v, 0, 10000, &o.queue_invocations))
        return Usage("--queue-invocations must be 0..10000");
    } else if (a == "--max-starts") {
      if (!ParseInt(v, 1, 1000, &o.max_starts)) return Usage("--max-starts must be 1..1000");
    } else if (a == "--docker-run-args") {
      o.docker_run_args_set = true;
      size_t pos = 0;
      while (pos < v.size()) {
        size_t sp = v.find(' ', pos);
        std::string part = v.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
        if (!part.empty()) o.docker_run_args.push_back(part);
        if (sp == std::string::npos) break;
        pos = sp + 1;
      }
    } else if (a == "--payload") {
      o.payload = v;
    } else if (a == "--endpoint") {
      o.endpoint = v;
    } else if (a == "--registry") {
      o.registry_path = v;
    } else if (a == "--ephemera") {
      o.ephemera_bin = v;
    } else if (a == "--shim") {
      o.shim_path = v;
    } else if (a == "--docker") {
      o.docker_endpoint = v;
    } else if (a == "--docker-cli") {
      o.docker_cli = v;
    } else if (a == "--timeout") {
      int ms = 0;
      if (!ParseInt(v, 100, 600000, &ms)) return Usage("--timeout must be 100..600000 ms");
      o.sample_timeout_ms = static_cast<uint64_t>(ms);
    } else if (a == "--out") {
      o.out_dir = v;
    } else {
      return Usage("unknown option " + a);
    }
  }
  if (o.precreate && !o.endpoint.empty()) {
    return Usage(
        "--precreate starts the benchmark's own daemon with --precreate; it cannot "
        "be given with --endpoint");
  }
  if (o.quick) {
    if (!samples_set) o.samples = 20;
    if (!warmups_set) o.warmups = 2;
    if (!sweep_set) o.sweep_samples = 10;
    if (!throughput_set) o.throughput_seconds = 2;
    if (!pool_rate_set) o.pool_rate_samples = 10;
    o.throughput_warmup_seconds = 1;
  }
  if (o.shim_path.empty() || o.shim_path[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) != nullptr) o.shim_path = std::string(cwd) + "/" + o.shim_path;
  }
  if (o.out_dir.empty()) o.out_dir = "bench/results/" + Timestamp();
  if (!MakeDirs(o.out_dir)) {
    std::fprintf(stderr, "ephemera-bench: cannot create %s\n", o.out_dir.c_str());
    return 1;
  }
  if (want_microbench && ::access(microbench.c_str(), X_OK) == 0) o.microbench_bin = microbench;

  ephemera::bench::RunResult run;
  ephemera::Status s = ephemera::bench::RunBenchmark(o, &run);
  if (!s.ok()) {
    std::fprintf(stderr, "ephemera-bench: %s\n", s.message().c_str());
    if (run.series.empty()) return 1;
  }
  if (!o.microbench_bin.empty()) {
    std::fprintf(stderr, "ephemera-bench: microbenchmarks (%s)...\n", o.microbench_bin.c_str());
    std::string error;
    run.microbench =
        ephemera::bench::RunMicrobench(o.microbench_bin, o.out_dir + "/microbench.json", &error);
    if (!error.empty()) run.notes.push_back("microbenchmarks: " + error);
  } else {
    run.notes.push_back(want_microbench ? "microbenchmarks not run: " + microbench + " is missing"
                                        : "microbenchmarks not run (--no-microbench)");
  }
  ephemera::bench::Analysis analysis = ephemera::bench::Analyze(run);
  if (ephemera::Status w = ephemera::bench::WriteReports(run, analysis, o.out_dir); !w.ok()) {
    std::fprintf(stderr, "ephemera-bench: %s\n", w.message().c_str());
    return 1;
  }
  std::fputs(ephemera::bench::TerminalTable(run, analysis).c_str(), stdout);
  std::printf("report: %s/report.md\n", o.out_dir.c_str());
  return s.ok() ? 0 : 1;
}
