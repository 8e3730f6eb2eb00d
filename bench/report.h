// bench/report.h: the benchmark's outputs, written from one RunResult + Analysis.
//
//   results.json  every sample, the environment, the statistics and the verdicts
//                 (schema "ephemera-bench/1", documented in bench/README.md)
//   report.md     the human report: headline table, ratios, targets, where the time
//                 goes, the sweep, what exactly ran, environment
//   cdf.svg       latency CDF per series;  phases.svg  stacked medians of the phases;
//   sweep.svg     p50 latency and cold starts/s against concurrency
// The SVGs are drawn here, without any plotting dependency.
// Thread: any. Depends on: results.h, runtime/json (cJSON), core (Status).
#pragma once

#include <string>

#include "bench/results.h"
#include "runtime/core/status.h"

namespace ephemera::bench {

inline constexpr char kJsonSchema[] = "ephemera-bench/1";

std::string JsonReport(const RunResult& run, const Analysis& analysis);
std::string MarkdownReport(const RunResult& run, const Analysis& analysis);
// A compact table for the terminal (plain text, fixed width).
std::string TerminalTable(const RunResult& run, const Analysis& analysis);

std::string CdfSvg(const RunResult& run);
std::string PhasesSvg(const RunResult& run, const Analysis& analysis);
std::string SweepSvg(const Analysis& analysis);

// Writes every file above into `dir` (created if missing, parents included).
Status WriteReports(const RunResult& run, const Analysis& analysis, const std::string& dir);

// Series label for a key ("raw_floor" -> "raw Docker floor").
std::string SeriesLabel(const RunResult& run, const std::string& key);

}  // namespace ephemera::bench
