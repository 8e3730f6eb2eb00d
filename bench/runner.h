// bench/runner.h: one benchmark run, end to end, on its own libuv loop.
//
// The stages, in order (runner.cc reads top to bottom):
//   StartDaemon (unless --endpoint) -> WaitHealthy -> ResolveFunction (registry + image)
//   -> CreateFunctions: <fn>-warm (policy warm) and <fn>-pool (policy pool) through the
//      daemon's CreateFunction, same image and mode
//   -> Rounds: warm-up rounds (discarded), then rounds of ephemera cold, raw floor, docker
//      run, warm, pool, each sample followed by settling (its container is gone, the pool
//      is full again and the daemon is idle before the next starts)
//   -> PoolRate: pool invocations, each sent as soon as the daemon has an idle one, in
//      blocks alternating with raw floor blocks at as many starts in flight
//   -> Sweep: for each concurrency level, ephemera and raw floor in alternating blocks,
//      closed loop; the floor also at the knee's levels
//   -> Throughput: warm invocations from C keep-alive connections (loadgen.h) per level
//   -> QueueMemory: the daemon's RSS with N invocations queued (sync, then Event)
//   -> Cleanup: our leftover containers removed, the functions we created deleted, the
//      daemon stopped (SIGTERM), its leftovers removed -> the loop closes.
// Microbenchmarks, if wanted, run after the loop (a child process), so they never overlap
// the cold starts.
// The raw floor runs in the function's own network arrangement (probes.h RawFloor): for an
// isolated function its holders are made before the rounds (as many as the floor will
// have samples in flight), reused from sample to sample and removed in Cleanup.
// Thread: the calling thread runs the loop. Depends on: probes, environment, registry,
//   sandbox (container_spec, holders), docker, core.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "bench/probes.h"
#include "bench/results.h"
#include "registry/registry.h"
#include "runtime/core/status.h"
#include "runtime/docker/docker_client.h"

namespace ephemera::bench {

struct BenchOptions {
  std::string function = "echo";
  std::string endpoint;       // "" = start our own daemon
  std::string ephemera_bin;   // the daemon binary
  std::string shim_path;      // the shim the daemon injects (and the floor binds)
  std::string registry_path;  // the daemon's manifest: the floor builds the same spec from it
  std::string docker_endpoint;
  std::string docker_cli = "/usr/bin/docker";
  std::string out_dir;
  int samples = 100;
  int warmups = 3;
  int sweep_samples = 40;
  std::vector<int> sweep_levels = {1, 2, 4, 8};
  std::vector<int> knee_levels = {1, 2, 3, 4, 6, 8};  // raw floor starts in flight
  bool warm_pool = true;                              // the warm and pool series
  int pool_size = 2;
  int pool_rate_samples = 120;  // 0 = no pool refill-rate stage
  std::vector<int> throughput_levels = {1, 4, 16, 64};
  double throughput_seconds = 5;  // measured window per level (after a warm-up)
  double throughput_warmup_seconds = 2;
  bool perf = true;              // perf record the daemon at the top throughput level
  int queue_invocations = 1000;  // 0 = no queue memory stage
  int max_starts = 0;            // --max-starts for our daemon; 0 = its default
  bool precreate = false;        // --precreate for our daemon (not with an endpoint)
  bool quick = false;
  bool docker_run = true;
  bool docker_run_args_set = false;
  std::vector<std::string> docker_run_args;  // after the image
  std::string payload = "{\"bench\":\"ephemera\"}";
  uint64_t sample_timeout_ms = 10000;
  uint64_t settle_timeout_ms = 5000;
  std::string microbench_bin;  // "" = none
  std::string source_dir;      // for the git commit in the environment
  std::string command_line;
};

// The create request of one raw-floor sample: exactly what the daemon sends for `fn`
// (sandbox::BuildContainerSpec, the function the cold path calls), in the function's own
// network arrangement: on the host network AWS_LAMBDA_RUNTIME_API points at
// `endpoint.runtime_api_address`; for an isolated function the container joins
// `endpoint.holder_id`'s namespace (NetworkMode container:<holder>) and gets
// `endpoint.runtime_dir` bind-mounted read-only at /run/ephemera with the environment the
// daemon gives (EPHEMERA_RUNTIME_SOCKET, AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001 relayed by
// the shim, EPHEMERA_INVOKE_ENDPOINT, ...). A fresh request id, and, for http-mode
// functions with http_port 0, a freshly picked port, as the daemon does. Only the name and
// the labels differ: ephemera.bench=<run_label> instead of ephemera.managed, so a daemon's
// reaper never touches the floor's containers and the floor never touches the daemon's.
// What the daemon adds for its data store (EPHEMERA_STORE_URL, a Redis user per function)
// is not given: the floor makes no Redis user.
Status FloorSpec(const registry::FunctionSpec& fn, const docker::ImageConfig& image,
                 const std::string& shim_path, const std::string& run_label,
                 const FloorEndpoint& endpoint, docker::ContainerSpec* out);
// The same on the host network: the listener at `runtime_api_address`.
Status FloorSpec(const registry::FunctionSpec& fn, const docker::ImageConfig& image,
                 const std::string& shim_path, const std::string& run_label,
                 const std::string& runtime_api_address, docker::ContainerSpec* out);

// True when the floor of `fn` runs isolated: its network is "isolated", which is also
// what a function that names no network gets once registry::kDefaultNetwork says so
// (the registry fills the field in with it).
bool FloorIsolated(const registry::FunctionSpec& fn);

// The network namespace holder of an isolated floor: the daemon's holder
// (runtime/sandbox/holders.cc: image sandbox::HolderOptions().image, NetworkMode none,
// `ephemera-shim --hold` bind-mounted read-only, capabilities dropped, no-new-privileges,
// read-only root, pids limit 8, 16 MB, the default user), labelled
// ephemera.bench.holder=<run_label> instead of ephemera.managed / ephemera.holder: no
// daemon's reaper touches it, the floor's settling (which waits for ephemera.bench=...
// containers to be gone) does not wait for it, and the benchmark's cleanup removes it.
docker::ContainerSpec FloorHolderSpec(const std::string& shim_path, const std::string& run_label);
inline constexpr char kHolderLabel[] = "ephemera.bench.holder";

// The docker CLI command line of the docker-run series, or empty (with `why`) when this
// function has no way to run once and exit (see bench/README.md). Its network is the
// function's (`--network host`, ...), except for an isolated function: a holder and a
// socket mean nothing to a one-shot `docker run`, so it gets no --network and runs on
// the engine's default network (bridge).
std::vector<std::string> DockerRunArgv(const BenchOptions& options,
                                       const registry::FunctionSpec& fn,
                                       const std::string& run_label, std::string* why);

// With --precreate, a cold start that skipped the create: X-Ephemera-Start: cold and a
// Server-Timing with start and total but no create (the daemon started the container it
// had created ahead; docs/architecture.md "Timed phases"). The probe (probes.h) counts a
// cold reply without create as the wrong class; the runner keeps these when --precreate.
bool ColdStartFromAhead(const Sample& sample);

// Settling between samples, for the cold function's containers as the engine lists them
// (label ephemera.function=<fn>), counting only those of our daemon when `daemon` is not
// empty (their ephemera.daemon label). Without --precreate, settled means none is left.
// With it, the daemon keeps the function's next container created ahead, with the same
// labels as any other (runtime/sandbox/container_spec.cc) but never started: exactly one
// container in state "created" may stay, and nothing else (a started container is
// "running", "exited", "removing" or "dead" until it is gone). Once a cold start has
// been answered (`ahead_expected`), that one must be there: the daemon creates it while
// the cold sample runs, and the next sample must not overlap that create.
bool ColdContainersSettled(const std::vector<docker::ContainerSummary>& rows,
                           const std::string& daemon, bool precreate, bool ahead_expected);

// When the pool refill stage asks /healthz again while no pool environment is idle.
// Every poll costs the benchmark and the daemon CPU that the floor's blocks do not spend
// (at one poll per 2 ms: 0.11 of the 2 cores in pool blocks against 0.01 in floor blocks,
// both blocks keeping the machine 1.75 cores busy). So once a replacement's time from its
// take to idle is known, the poll sleeps until 0.85 of it after the oldest take still
// waiting for its replacement, and only then asks every 2 ms.
class PoolPollPlan {
 public:
  static constexpr double kPollMs = 2, kLead = 0.85;
  // A block starts on a full pool of `originals` environments, none replaced yet.
  void StartBlock(int originals);
  // A poll at `now` saw none idle and waits `delay` ms before the next.
  void SawNoneIdle(double now, double delay);
  // An idle environment is taken at `now`: one of the block's originals, else the
  // replacement of the oldest take (refills run in about the order they were asked for).
  // Its time from that take counts only if the poll before saw none idle at most 10 ms
  // earlier after a short wait, so a replacement that sat unseen through a sleep does not.
  void Take(double now);
  double DelayMs(double now) const;
  double refill_min_ms() const { return refill_min_ms_; }
  // What the sleep aims at: the 20th percentile of the take-to-idle times counted, once
  // there are kBasisSamples of them, else the shortest (0: none yet). A single short
  // outlier (a replacement matched to the wrong take) then no longer makes every later
  // wait a poll every 2 ms.
  static constexpr size_t kBasisSamples = 5;
  static constexpr double kBasisQuantile = 0.2;
  double basis_ms() const { return basis_ms_; }
  const std::vector<double>& refills() const { return refills_; }  // counted, in order

 private:
  int originals_ = 0;
  std::deque<double> takes_;  // takes whose replacement has not been taken yet
  double refill_min_ms_ = 0;  // shortest take-to-idle seen (0: none yet)
  double basis_ms_ = 0;
  std::vector<double> refills_;
  double last_empty_ms_ = 0;  // the last poll that saw none idle after a short wait
};

// The Redis key prefix of the daemon the benchmark starts (`ephemera serve --redis-prefix`).
std::string RedisPrefix(const std::string& run_label);

// Runs everything and fills `result` (config, environment, series, sweep, notes).
// Errors are setup failures (no daemon, unknown function, missing image); a run that
// started always returns ok with whatever it measured and notes on what went wrong.
Status RunBenchmark(const BenchOptions& options, RunResult* result);

// Runs the microbenchmark binary, keeps its JSON in `json_out` (if not empty) and
// returns its results. Empty on failure (with `error` set).
std::vector<MicrobenchResult> RunMicrobench(const std::string& binary, const std::string& json_out,
                                            std::string* error);

}  // namespace ephemera::bench
