// bench/stats.h: the statistics the benchmark reports.
//
// Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7,
// the default of R, NumPy and most spreadsheets): p(q) of sorted x[0..n-1] is
// x[h] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)]) with h = q * (n - 1).
// Confidence intervals are percentile bootstraps with a fixed seed, so the same samples
// always give the same interval (reports are reproducible byte for byte).
// Thread: any; nothing here keeps state. Depends on: nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace ephemera::bench {

struct Summary {
  size_t n = 0;
  double min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
  double mean = 0, sd = 0;  // sd: sample standard deviation (n - 1); 0 when n < 2
};

struct Interval {
  double estimate = 0;  // the statistic on the original samples
  double low = 0, high = 0;
  bool valid = false;  // false when there were no samples
};

// q in [0, 1]. `sorted` must be ascending and non-empty.
double PercentileSorted(const std::vector<double>& sorted, double q);
// Sorts a copy. 0 for an empty vector.
double Percentile(std::vector<double> values, double q);
double Median(std::vector<double> values);

// All-zero Summary (n = 0) for an empty vector.
Summary Summarize(const std::vector<double>& values);

struct BootstrapOptions {
  int resamples = 2000;
  double confidence = 0.95;
  uint64_t seed = 0x5eed;
};

// Percentile-bootstrap interval for the median of `values`.
Interval BootstrapMedianCi(const std::vector<double>& values, BootstrapOptions options = {});

// Percentile-bootstrap interval for median(a) / median(b). The two series are resampled
// independently (their samples are interleaved in time, not paired one to one: a dropped
// sample in one series does not remove its neighbour from the other).
Interval BootstrapMedianRatioCi(const std::vector<double>& a, const std::vector<double>& b,
                                BootstrapOptions options = {});

// Rates from event gaps. `gaps_ms` are the times between consecutive completions of a
// closed-loop run (the first measured from the run's start), so sum(gaps) is the wall time
// and rate = gaps.size() * 1000 / sum(gaps) per second. The interval resamples batches of
// `batch` consecutive gaps with replacement (rate = answers / time over the drawn
// batches). With C workers in flight answers come in bunches (a near-zero gap, then a long
// one), so batches of C keep a bunch together; the batches are then treated as
// independent, which back-to-back starts on a busy engine only approximate: read the
// interval as the spread of the rate, not an exact bound.
double RatePerSecond(const std::vector<double>& gaps_ms);
Interval BootstrapRateCi(const std::vector<double>& gaps_ms, BootstrapOptions options = {},
                         int batch = 1);
// rate(a) / rate(b), the two resampled independently (batches of batch_a and batch_b).
Interval BootstrapRateRatioCi(const std::vector<double>& gaps_a, const std::vector<double>& gaps_b,
                              BootstrapOptions options = {}, int batch_a = 1, int batch_b = 1);

// The knee of a throughput curve: the smallest level whose rate is at least
// (1 - tolerance) x the highest rate of any level, i.e. where adding parallelism stops
// buying more than `tolerance`. `levels` are (level, rate) in any order; 0 when empty.
int KneeLevel(const std::vector<std::pair<int, double>>& levels, double tolerance = 0.05);

// Empirical CDF points (x ascending, y = rank / n) for charts.
std::vector<std::pair<double, double>> EmpiricalCdf(std::vector<double> values);

}  // namespace ephemera::bench
