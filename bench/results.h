// bench/results.h: what one benchmark run measured, as plain values.
//
// The runner (runner.h) fills a RunResult; Analyze() turns it into the statistics and
// target verdicts that both report writers (report.h) print, so the JSON file, the
// Markdown report and the terminal table can never disagree.
// Thread: any. Depends on: stats.h.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/stats.h"

namespace ephemera::bench {

// Series keys, in the order they are run and reported.
inline constexpr char kEphemera[] = "ephemera";
inline constexpr char kRawFloor[] = "raw_floor";
inline constexpr char kDockerRun[] = "docker_run";
// Warm and pool invocations of functions the benchmark creates through CreateFunction
// (same image and mode as the cold function, policy warm / pool).
inline constexpr char kWarm[] = "ephemera_warm";
inline constexpr char kPool[] = "ephemera_pool";

struct Sample {
  int index = 0;          // position in its series (the round, for the interleaved series)
  int concurrency = 1;    // parallelism it ran at
  int position = -1;      // interleaved series: its place in its round (0 = first), else -1
  double start_ms = 0;    // when it began, ms since the run started (monotonic clock)
  double latency_ms = 0;  // client-observed: request sent -> answer (see Series::what)
  // Phases in ms. ephemera: every Server-Timing entry of the reply (image, create, start,
  // init, handler, overhead, total) plus "client" = latency - total. raw floor: create,
  // start (wait registered + start call), init (start returned -> first /next). docker run:
  // none.
  std::map<std::string, double> phases;
  std::string request_id;  // ephemera: x-amzn-RequestId
  // ephemera: X-Ephemera-Start (cold, warm, pool) and X-Ephemera-Environment.
  std::string start_kind;
  std::string environment_id;
  int block = -1;  // sweep: which block of its level it ran in
};

// What happened to the samples that are not in Series::samples.
struct Rejects {
  int warmups_discarded = 0;
  int wrong_class_dropped = 0;        // answered, but not a cold start (e.g. no create phase)
  int failed = 0;                     // errors, timeouts, wrong output
  std::vector<std::string> messages;  // the first few reasons, for the report
  void Note(std::string message) {
    if (messages.size() < 5) messages.push_back(std::move(message));
  }
};

struct Series {
  std::string key;              // kEphemera, kRawFloor, kDockerRun
  std::string label;            // for humans: "ephemera cold"
  std::string what;             // exactly what one sample measures and runs
  std::vector<Sample> samples;  // kept samples only
  Rejects rejects;
  std::vector<double> latencies() const;
  std::vector<double> phase(const std::string& name) const;  // samples that have it
};

// CPU over a series' blocks, each from the block's start until the engine and daemon are
// quiet again (every container the block started is removed; a pool full again), with the
// containers the blocks started: where a series' time went, against the other's. ms; -1:
// not measured (its source could not be read).
struct BlockCpu {
  int blocks = 0, containers = 0;
  double wall_ms = 0, machine_ms = -1, daemon_ms = -1, bench_ms = -1, containers_ms = -1,
         redis_ms = -1, steal_ms = -1;
  // The machine's busy time less steal and every part above: the engine (dockerd,
  // containerd, its shims, runc) and anything else running; -1 if a part is unknown.
  double rest_ms() const;
};

// One level of the concurrency sweep for one series: `concurrency` workers issue cold
// starts back to back until `samples` have been started.
struct SweepLevel {
  std::string series;  // kEphemera or kRawFloor
  int concurrency = 1;
  double wall_ms = 0;  // summed over its blocks: first start -> last answer of each
  std::vector<Sample> samples;
  Rejects rejects;
  BlockCpu cpu;
  int next_index = 0;  // the runner's counter of samples started
  // Each block's first start, ms since the run started (Sample::block indexes it).
  std::vector<double> block_starts;
  // Successful cold starts per second over the level's wall time.
  double per_second() const {
    return wall_ms > 0 ? static_cast<double>(samples.size()) * 1000.0 / wall_ms : 0;
  }
  std::vector<double> latencies() const;
  // Per block: the times between consecutive successful answers, the first from the
  // block's first start (their sum is about the wall time; stats.h RatePerSecond).
  std::vector<double> gaps() const;
};

// Pool refill rate: invocations of the pool function, each sent as soon as the daemon
// reports an idle environment, so each should get a never-used container. It runs in
// blocks that alternate with blocks of the raw floor at as many starts in flight (`floor`),
// so a burst of other work on the machine lands on both, as in the sweep.
struct PoolRate {
  int pool_size = 0;
  int max_starts = 0;  // the daemon's cap on container starts in flight
  // Starts a refill can have at once: one per environment of the pool, under the cap.
  int in_flight() const {
    int cap = max_starts > 0 ? max_starts : 2;
    return pool_size > 0 ? std::min(pool_size, cap) : cap;
  }
  std::vector<Sample> samples;  // every answered invocation, in order
  int fresh = 0;                // answered from the pool, environment never seen before
  int not_fresh = 0;            // answered cold (pool empty) or by a reused environment
  int failed = 0;
  Rejects rejects;
  // Answer times (ms since the run started) of the fresh ones, in order, and the block
  // each came in (empty: all in one block).
  std::vector<double> fresh_answers;
  std::vector<int> fresh_blocks;
  int blocks = 0;  // pool blocks run
  // The raw floor at in_flight() starts in flight, measured in the blocks between the
  // pool's (no samples: the comparison falls back to the sweep's level).
  SweepLevel floor;
  // Per block, the gaps between consecutive fresh answers after the block's first
  // pool_size (each block starts on a full pool, so those came without a refill).
  std::vector<double> gaps() const;
  // The pool's blocks' CPU (the floor's is floor.cpu); one container per invocation (its
  // replacement).
  BlockCpu pool_cpu;
  // How the pool blocks looked for idle environments (runner.h PoolPollPlan): the GET
  // /healthz asked, the take-to-idle times counted, and what the last sleep aimed at.
  int polls = 0;
  std::vector<double> refill_ms;
  double poll_basis_ms = 0;
};

// Warm throughput at one level of concurrent keep-alive clients (bench/loadgen.h).
struct ThroughputLevel {
  int concurrency = 0;
  double duration_ms = 0;         // the measured window (after the warm-up)
  uint64_t completed = 0;         // 200 replies with X-Ephemera-Start: warm, in the window
  uint64_t not_warm = 0;          // 200 replies that were cold or pool
  uint64_t errors = 0;            // other replies, connection failures
  std::vector<double> latencies;  // ms, every completed request (not in results.json)
  // CPU used during the window, ms (all cores): the daemon process, the load generator
  // (this process), every container (the docker cgroup), and the whole machine.
  double daemon_cpu_ms = -1, loadgen_cpu_ms = -1, containers_cpu_ms = -1, machine_cpu_ms = -1;
  // Every redis-server process (the daemon keeps a record of each invocation there), and
  // the time the hypervisor gave our vCPUs to others (steal: in machine_cpu_ms, not work
  // done here).
  double redis_cpu_ms = -1, steal_ms = -1;
  double daemon_switches = -1;  // the daemon's context switches in the window
  int environments = -1;        // the daemon's environments after the level
  double per_second() const {
    return duration_ms > 0 ? static_cast<double>(completed) * 1000.0 / duration_ms : 0;
  }
};

// The daemon's memory with many invocations waiting in an admission queue.
struct QueueMemory {
  std::string kind;        // "sync" (each holds a client connection) or "event"
  int wanted = 0;          // invocations meant to wait (one more runs)
  int submitted = 0;       // invocations sent
  int queued = 0;          // the daemon's `waiting` count when measured
  double baseline_kb = 0;  // VmRSS before the first was sent
  double peak_kb = 0;      // VmRSS with them queued (largest seen)
  double hwm_kb = 0;       // VmHWM (peak RSS of the daemon's life) at the same time
  std::string note;
};

// How the raw floor's containers reached the benchmark's listener: the benchmarked
// function's own network arrangement (bench/README.md "What is measured"), and for an
// isolated function the namespace holders it made ahead, off the timed path, and reused.
struct FloorArrangement {
  std::string network;  // the function's network as the floor used it: "host", "isolated", ...
  bool isolated = false;
  std::string listener;       // where each sample's first /next arrived
  int holders_prepared = 0;   // made before the first sample (as many as may be lent at once)
  int holders_made = 0;       // all holders made and started, those prepared included
  int holders_on_demand = 0;  // made when a sample found none ready (before its clock started)
  int holders_failed = 0;     // could not be created or started
  uint64_t holder_uses = 0;   // floor samples (warm-ups and sweep included) that joined one
  std::vector<double> holder_start_ms;  // create + start of each holder made, in order
  std::string holder_error;             // the last holder failure, if any
  std::string docker_run_network;       // what the docker run series ran on
};

struct MicrobenchResult {
  std::string name;
  double items_per_second = 0;
  double ns_per_item = 0;  // real time per iteration
  std::string label;       // what one item is
};

struct RunConfig {
  std::string function = "echo";
  std::string mode;  // the function's shim mode
  std::string image;
  std::string endpoint;  // daemon base URL
  bool own_daemon = true;
  int samples = 100;       // kept cold samples wanted per interleaved series
  int warmups = 3;         // rounds discarded first
  int sweep_samples = 40;  // per level and series
  std::vector<int> sweep_levels = {1, 2, 4, 8};
  std::vector<int> knee_levels = {1, 2, 3, 4, 6, 8};  // raw floor only
  std::vector<int> throughput_levels = {1, 4, 16, 64};
  double throughput_seconds = 0;
  int max_starts = 0;  // the daemon's --max-starts (0: its default)
  // The daemon ran with --precreate: after each cold start it creates the function's next
  // container ahead (created, never started), so most cold samples have no create phase.
  bool precreate = false;
  int pool_size = 0;
  bool quick = false;
  std::string payload;
  std::string started_at;  // ISO 8601 UTC
  double duration_s = 0;
  std::string command_line;
};

struct RunResult {
  RunConfig config;
  // Ordered name/value pairs: cpu_model, cores, kernel, cgroup, docker, runc, ...
  std::vector<std::pair<std::string, std::string>> environment;
  std::vector<Series> series;
  // ephemera at sweep_levels; the raw floor at those and knee_levels (the knee).
  std::vector<SweepLevel> sweep;
  PoolRate pool_rate;
  std::vector<ThroughputLevel> throughput;
  std::vector<std::string> throughput_profile;  // perf report lines of the daemon, if any
  std::vector<QueueMemory> queue_memory;
  FloorArrangement floor;
  std::vector<MicrobenchResult> microbench;
  std::vector<std::string> notes;  // things not measured and why, anomalies

  const Series* Find(const std::string& key) const;
};

// ---- Analysis: what the reports print ----

struct SeriesStats {
  std::string key;
  Summary summary;
  Interval median_ci;
  std::map<std::string, Summary> phases;  // per phase name
  std::map<int, Summary> by_position;     // latency by place in the round (order effects)
};

struct RatioStats {
  std::string name;                    // "ephemera / raw floor"
  std::string numerator, denominator;  // series keys
  Interval ci;
};

struct TargetVerdict {
  std::string name;        // "ephemera p50 <= 1.05 x raw floor p50"
  std::string measured;    // "1.12 x (95% CI 1.08-1.16)"
  bool evaluated = false;  // false: not enough data (then `met` means nothing)
  bool met = false;
  std::string margin;  // "missed by 14.1 ms (7%)" / "met with 3.0 ms to spare"
};

struct SweepStats {
  std::string series;
  int concurrency = 0;
  Summary summary;
  double per_second = 0;
  Interval rate_ci;  // from the gaps (stats.h BootstrapRateCi)
  int failed = 0, wrong_class_dropped = 0;
};

// ephemera's cold starts/s over the raw floor's at one concurrency.
struct RateRatio {
  int concurrency = 0;
  Interval ci;
};

struct ThroughputStats {
  int concurrency = 0;
  double per_second = 0;
  Summary latency;
  // CPU per invocation, microseconds (negative: not measured).
  double daemon_us = -1, loadgen_us = -1, containers_us = -1, other_us = -1;
  double redis_us = -1, steal_us = -1;  // other_us excludes both
  double daemon_switches = -1;          // context switches of the daemon per invocation
};

struct Analysis {
  std::vector<SeriesStats> series;
  std::vector<RatioStats> ratios;
  std::vector<TargetVerdict> targets;
  std::vector<SweepStats> sweep;
  std::vector<RateRatio> rate_ratios;
  // The knee: floor starts/s per starts in flight, and where it stops rising.
  std::vector<std::pair<int, double>> knee_rates;
  int knee = 0;
  Interval pool_rate;         // fresh containers/s from the pool
  Interval pool_floor_ratio;  // ... over the floor's starts/s at the daemon's start cap
  int pool_floor_concurrency = 0;
  double pool_floor_rate = 0;           // the floor's starts/s it is compared with
  bool pool_floor_interleaved = false;  // measured between the pool's blocks (else the sweep's)
  std::vector<ThroughputStats> throughput;
  // The kept ephemera cold samples, and how many of them had a create phase (with
  // --precreate, the ones that did not find a container created ahead).
  int cold_samples = 0;
  int cold_with_create = 0;
  // Sentences on where the time goes (ephemera versus the raw floor, phase by phase).
  std::vector<std::string> time_budget;
  const SeriesStats* Find(const std::string& key) const;
};

Analysis Analyze(const RunResult& run, BootstrapOptions bootstrap = {});

// The HTTP-layer target of the issue, checked against the microbenchmark named here.
inline constexpr char kHttpMicrobench[] = "BM_HttpServerOneCore";
inline constexpr double kHttpTargetPerSecond = 50000;
inline constexpr double kThroughputTarget = 10000;  // warm invokes/s, native echo
// Cold p50 over the raw floor's p50 with the daemon's --precreate (the create is off the
// cold path, so ephemera can go below the floor, which creates every time).
inline constexpr double kPrecreateTarget = 0.95;
inline constexpr char kPrecreateTargetName[] = "cold with --precreate: p50 / raw floor p50 <= 0.95";

}  // namespace ephemera::bench
