// bench/results.h: what one benchmark run measured, as plain values.
//
// The runner (runner.h) fills a RunResult; Analyze() turns it into the statistics and
// target verdicts that both report writers (report.h) print, so the JSON file, the
// Markdown report and the terminal table can never disagree.
// Thread: any. Depends on: stats.h.
#pragma once

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

// One level of the concurrency sweep for one series: `concurrency` workers issue cold
// starts back to back until `samples` have been started.
struct SweepLevel {
  std::string series;  // kEphemera or kRawFloor
  int concurrency = 1;
  double wall_ms = 0;  // summed over its blocks: first start -> last answer of each
  std::vector<Sample> samples;
  Rejects rejects;
  int next_index = 0;  // the runner's counter of samples started
  // Successful cold starts per second over the level's wall time.
  double per_second() const {
    return wall_ms > 0 ? static_cast<double>(samples.size()) * 1000.0 / wall_ms : 0;
  }
  std::vector<double> latencies() const;
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
  std::vector<SweepLevel> sweep;
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
  int failed = 0, wrong_class_dropped = 0;
};

struct Analysis {
  std::vector<SeriesStats> series;
  std::vector<RatioStats> ratios;
  std::vector<TargetVerdict> targets;
  std::vector<SweepStats> sweep;
  // Sentences on where the time goes (ephemera versus the raw floor, phase by phase).
  std::vector<std::string> time_budget;
  const SeriesStats* Find(const std::string& key) const;
};

Analysis Analyze(const RunResult& run, BootstrapOptions bootstrap = {});

// The HTTP-layer target of the issue, checked against the microbenchmark named here.
inline constexpr char kHttpMicrobench[] = "BM_HttpServerOneCore";
inline constexpr double kHttpTargetPerSecond = 50000;

}  // namespace ephemera::bench
