#include "bench/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace ephemera::bench {

double PercentileSorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  q = std::clamp(q, 0.0, 1.0);
  double h = q * static_cast<double>(sorted.size() - 1);
  auto lo = static_cast<size_t>(std::floor(h));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

double Percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return PercentileSorted(values, q);
}

double Median(std::vector<double> values) {
  return Percentile(std::move(values), 0.5);
}

Summary Summarize(const std::vector<double>& values) {
  Summary s;
  if (values.empty()) return s;
  std::vector<double> v = values;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.p50 = PercentileSorted(v, 0.50);
  s.p90 = PercentileSorted(v, 0.90);
  s.p99 = PercentileSorted(v, 0.99);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(s.n);
  if (s.n > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(ss / static_cast<double>(s.n - 1));
  }
  return s;
}

namespace {

// Median of `n` draws with replacement from `values`, using `scratch` as storage.
double ResampledMedian(const std::vector<double>& values, std::mt19937_64& rng,
                       std::vector<double>& scratch) {
  std::uniform_int_distribution<size_t> pick(0, values.size() - 1);
  scratch.resize(values.size());
  for (double& x : scratch) x = values[pick(rng)];
  std::sort(scratch.begin(), scratch.end());
  return PercentileSorted(scratch, 0.5);
}

Interval FromDraws(double estimate, std::vector<double> draws, double confidence) {
  Interval ci;
  ci.estimate = estimate;
  std::sort(draws.begin(), draws.end());
  double tail = (1.0 - confidence) / 2.0;
  ci.low = PercentileSorted(draws, tail);
  ci.high = PercentileSorted(draws, 1.0 - tail);
  ci.valid = true;
  return ci;
}

}  // namespace

Interval BootstrapMedianCi(const std::vector<double>& values, BootstrapOptions options) {
  if (values.empty() || options.resamples < 1) return {};
  std::mt19937_64 rng(options.seed);
  std::vector<double> draws, scratch;
  draws.reserve(static_cast<size_t>(options.resamples));
  for (int i = 0; i < options.resamples; ++i)
    draws.push_back(ResampledMedian(values, rng, scratch));
  return FromDraws(Median(values), std::move(draws), options.confidence);
}

Interval BootstrapMedianRatioCi(const std::vector<double>& a, const std::vector<double>& b,
                                BootstrapOptions options) {
  if (a.empty() || b.empty() || options.resamples < 1) return {};
  double mb = Median(b);
  if (mb == 0) return {};
  std::mt19937_64 rng(options.seed);
  std::vector<double> draws, scratch;
  draws.reserve(static_cast<size_t>(options.resamples));
  for (int i = 0; i < options.resamples; ++i) {
    double num = ResampledMedian(a, rng, scratch);
    double den = ResampledMedian(b, rng, scratch);
    if (den > 0) draws.push_back(num / den);
  }
  if (draws.empty()) return {};
  return FromDraws(Median(a) / mb, std::move(draws), options.confidence);
}

double RatePerSecond(const std::vector<double>& gaps_ms) {
  double sum = std::accumulate(gaps_ms.begin(), gaps_ms.end(), 0.0);
  return sum > 0 ? static_cast<double>(gaps_ms.size()) * 1000.0 / sum : 0;
}

namespace {

struct Batch {
  double count = 0, ms = 0;
};

std::vector<Batch> Batches(const std::vector<double>& gaps, int batch) {
  std::vector<Batch> out;
  size_t size = static_cast<size_t>(std::max(batch, 1));
  for (size_t i = 0; i < gaps.size(); i += size) {
    Batch b;
    for (size_t j = i; j < std::min(gaps.size(), i + size); ++j) {
      b.count += 1;
      b.ms += gaps[j];
    }
    out.push_back(b);
  }
  return out;
}

double ResampledRate(const std::vector<Batch>& batches, std::mt19937_64& rng) {
  std::uniform_int_distribution<size_t> pick(0, batches.size() - 1);
  double count = 0, ms = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    const Batch& b = batches[pick(rng)];
    count += b.count;
    ms += b.ms;
  }
  return ms > 0 ? count * 1000.0 / ms : 0;
}

}  // namespace

Interval BootstrapRateCi(const std::vector<double>& gaps_ms, BootstrapOptions options, int batch) {
  double rate = RatePerSecond(gaps_ms);
  if (gaps_ms.empty() || rate <= 0 || options.resamples < 1) return {};
  std::vector<Batch> batches = Batches(gaps_ms, batch);
  std::mt19937_64 rng(options.seed);
  std::vector<double> draws;
  draws.reserve(static_cast<size_t>(options.resamples));
  for (int i = 0; i < options.resamples; ++i) draws.push_back(ResampledRate(batches, rng));
  return FromDraws(rate, std::move(draws), options.confidence);
}

Interval BootstrapRateRatioCi(const std::vector<double>& gaps_a, const std::vector<double>& gaps_b,
                              BootstrapOptions options, int batch_a, int batch_b) {
  double ra = RatePerSecond(gaps_a), rb = RatePerSecond(gaps_b);
  if (gaps_a.empty() || gaps_b.empty() || rb <= 0 || options.resamples < 1) return {};
  std::vector<Batch> ba = Batches(gaps_a, batch_a), bb = Batches(gaps_b, batch_b);
  std::mt19937_64 rng(options.seed);
  std::vector<double> draws;
  draws.reserve(static_cast<size_t>(options.resamples));
  for (int i = 0; i < options.resamples; ++i) {
    double a = ResampledRate(ba, rng);
    double b = ResampledRate(bb, rng);
    if (b > 0) draws.push_back(a / b);
  }
  if (draws.empty()) return {};
  return FromDraws(ra / rb, std::move(draws), options.confidence);
}

int KneeLevel(const std::vector<std::pair<int, double>>& levels, double tolerance) {
  double best = 0;
  for (const auto& [level, rate] : levels) best = std::max(best, rate);
  int knee = 0;
  for (const auto& [level, rate] : levels) {
    if (rate >= (1.0 - tolerance) * best && (knee == 0 || level < knee)) knee = level;
  }
  return knee;
}

std::vector<std::pair<double, double>> EmpiricalCdf(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  std::vector<std::pair<double, double>> points;
  points.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    points.emplace_back(values[i], static_cast<double>(i + 1) / static_cast<double>(values.size()));
  }
  return points;
}

}  // namespace ephemera::bench
