// bench/runner.h: one benchmark run, end to end, on its own libuv loop.
//
// The stages, in order (runner.cc reads top to bottom):
//   StartDaemon (unless --endpoint) -> WaitHealthy -> ResolveFunction (registry + image)
//   -> CreateFunctions: <fn>-warm (policy warm) and <fn>-pool (policy pool) through the
//      daemon's CreateFunction, same image and mode
//   -> Rounds: warm-up rounds (discarded), then rounds of ephemera cold, raw floor, docker
//      run, warm, pool, each sample followed by settling (its container is gone, the pool
//      is full again and the daemon is idle before the next starts)
//   -> PoolRate: pool invocations, each sent as soon as the daemon has an idle one
//   -> Sweep: for each concurrency level, ephemera and raw floor in alternating blocks,
//      closed loop; the floor also at the knee's levels
//   -> Throughput: warm invocations from C keep-alive connections (loadgen.h) per level
//   -> QueueMemory: the daemon's RSS with N invocations queued (sync, then Event)
//   -> Cleanup: our leftover containers removed, the functions we created deleted, the
//      daemon stopped (SIGTERM), its leftovers removed -> the loop closes.
// Microbenchmarks, if wanted, run after the loop (a child process), so they never overlap
// the cold starts.
// Thread: the calling thread runs the loop. Depends on: probes, environment, registry,
//   docker, core.
#pragma once

#include <string>
#include <vector>

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
  int pool_rate_samples = 40;  // 0 = no pool refill-rate stage
  std::vector<int> throughput_levels = {1, 4, 16, 64};
  double throughput_seconds = 5;  // measured window per level (after a warm-up)
  double throughput_warmup_seconds = 2;
  bool perf = true;              // perf record the daemon at the top throughput level
  int queue_invocations = 1000;  // 0 = no queue memory stage
  int max_starts = 0;            // --max-starts for our daemon; 0 = its default
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
// (sandbox::BuildContainerSpec, the function the cold path calls), with
// AWS_LAMBDA_RUNTIME_API pointing at `runtime_api_address`, a fresh request id, and, for
// http-mode functions with http_port 0, a freshly picked port, as the daemon does. Only the
// name and the labels differ: ephemera.bench=<run_label> instead of ephemera.managed, so a
// daemon's reaper never touches the floor's containers and the floor never touches the
// daemon's.
Status FloorSpec(const registry::FunctionSpec& fn, const docker::ImageConfig& image,
                 const std::string& shim_path, const std::string& run_label,
                 const std::string& runtime_api_address, docker::ContainerSpec* out);

// The docker CLI command line of the docker-run series, or empty (with `why`) when this
// function has no way to run once and exit (see bench/README.md).
std::vector<std::string> DockerRunArgv(const BenchOptions& options,
                                       const registry::FunctionSpec& fn,
                                       const std::string& run_label, std::string* why);

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
