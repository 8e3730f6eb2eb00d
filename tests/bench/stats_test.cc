// Tests of bench/stats.h on data whose answers are known.
#include "bench/stats.h"

#include <gtest/gtest.h>

#include <random>

#include "bench/probes.h"

namespace ephemera::bench {
namespace {

TEST(BenchStats, PercentilesInterpolateLikeNumpy) {
  // numpy.percentile([1, 2, 3, 4, 5], q) with the default (linear) method.
  std::vector<double> v = {5, 3, 1, 4, 2};
  EXPECT_DOUBLE_EQ(Percentile(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(Percentile(v, 0.5), 3.0);
  EXPECT_DOUBLE_EQ(Percentile(v, 0.9), 4.6);
  EXPECT_DOUBLE_EQ(Percentile(v, 0.99), 4.96);
  EXPECT_DOUBLE_EQ(Percentile(v, 1.0), 5.0);
  EXPECT_DOUBLE_EQ(Percentile({10, 20}, 0.25), 12.5);
  EXPECT_DOUBLE_EQ(Median({7}), 7.0);
  EXPECT_DOUBLE_EQ(Median({1, 2, 3, 4}), 2.5);
  EXPECT_DOUBLE_EQ(Percentile({}, 0.5), 0.0);
}

TEST(BenchStats, SummaryHasMeanAndSampleStandardDeviation) {
  Summary s = Summarize({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(s.n, 8u);
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  EXPECT_NEAR(s.sd, std::sqrt(32.0 / 7.0), 1e-12);
  EXPECT_DOUBLE_EQ(s.min, 2);
  EXPECT_DOUBLE_EQ(s.max, 9);
  EXPECT_DOUBLE_EQ(s.p50, 4.5);
  EXPECT_EQ(Summarize({}).n, 0u);
  EXPECT_DOUBLE_EQ(Summarize({3}).sd, 0.0);
}

TEST(BenchStats, BootstrapOfConstantDataIsThatConstant) {
  Interval ci = BootstrapMedianCi(std::vector<double>(50, 42.0));
  ASSERT_TRUE(ci.valid);
  EXPECT_DOUBLE_EQ(ci.estimate, 42.0);
  EXPECT_DOUBLE_EQ(ci.low, 42.0);
  EXPECT_DOUBLE_EQ(ci.high, 42.0);
  Interval r = BootstrapMedianRatioCi(std::vector<double>(30, 10.0), std::vector<double>(40, 4.0));
  ASSERT_TRUE(r.valid);
  EXPECT_DOUBLE_EQ(r.estimate, 2.5);
  EXPECT_DOUBLE_EQ(r.low, 2.5);
  EXPECT_DOUBLE_EQ(r.high, 2.5);
}

TEST(BenchStats, BootstrapIsReproducibleAndBracketsTheEstimate) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> d(100, 10);
  std::vector<double> v;
  for (int i = 0; i < 1000; ++i) v.push_back(d(rng));
  Interval a = BootstrapMedianCi(v), b = BootstrapMedianCi(v);
  EXPECT_EQ(a.low, b.low);
  EXPECT_EQ(a.high, b.high);
  EXPECT_LE(a.low, a.estimate);
  EXPECT_GE(a.high, a.estimate);
  // The median of N(100, 10) with n = 1000 has a standard error of about 0.4.
  EXPECT_LT(a.low, 100.0 + 0.2);
  EXPECT_GT(a.high, 100.0 - 0.2);
  EXPECT_LT(a.high - a.low, 3.0);
  EXPECT_GT(a.high - a.low, 0.5);
}

TEST(BenchStats, MedianIntervalCoversTheTrueMedianAboutNinetyFivePercentOfTheTime) {
  // Uniform(0, 1) has median 0.5; 200 independent samples of 101 values each.
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(0, 1);
  int covered = 0;
  BootstrapOptions o;
  o.resamples = 400;
  for (int rep = 0; rep < 200; ++rep) {
    std::vector<double> v;
    for (int i = 0; i < 101; ++i) v.push_back(u(rng));
    o.seed = static_cast<uint64_t>(rep) + 1;
    Interval ci = BootstrapMedianCi(v, o);
    if (ci.low <= 0.5 && 0.5 <= ci.high) ++covered;
  }
  EXPECT_GE(covered, 176);  // 88%: the percentile bootstrap of a median runs a little wide/narrow
  EXPECT_LE(covered, 200);
}

TEST(BenchStats, RatioIntervalContainsTheTrueRatio) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> a(300, 20), b(200, 15);
  std::vector<double> x, y;
  for (int i = 0; i < 400; ++i) {
    x.push_back(a(rng));
    y.push_back(b(rng));
  }
  Interval r = BootstrapMedianRatioCi(x, y);
  ASSERT_TRUE(r.valid);
  EXPECT_LT(r.low, 1.5);
  EXPECT_GT(r.high, 1.5);
  EXPECT_FALSE(BootstrapMedianRatioCi({}, y).valid);
  EXPECT_FALSE(BootstrapMedianRatioCi(x, {0, 0, 0}).valid);
}

TEST(BenchStats, EmpiricalCdfIsSortedAndEndsAtOne) {
  auto cdf = EmpiricalCdf({3, 1, 2, 2});
  ASSERT_EQ(cdf.size(), 4u);
  EXPECT_DOUBLE_EQ(cdf[0].first, 1);
  EXPECT_DOUBLE_EQ(cdf[0].second, 0.25);
  EXPECT_DOUBLE_EQ(cdf[3].first, 3);
  EXPECT_DOUBLE_EQ(cdf[3].second, 1.0);
}

TEST(BenchProbes, ServerTimingIsParsedAndMalformedEntriesSkipped) {
  auto p = ParseServerTiming(
      "image;dur=0.1, create;dur=8.4, start;dur=181.2, init;dur=1.3, handler;dur=0.4, "
      "overhead;dur=0.0, total;dur=192.0, cache;desc=\"hit\", broken;dur=x, ;dur=3");
  EXPECT_EQ(p.size(), 7u);
  EXPECT_DOUBLE_EQ(p["create"], 8.4);
  EXPECT_DOUBLE_EQ(p["start"], 181.2);
  EXPECT_DOUBLE_EQ(p["total"], 192.0);
  EXPECT_EQ(p.count("cache"), 0u);
  EXPECT_EQ(p.count("broken"), 0u);
  EXPECT_TRUE(ParseServerTiming("").empty());
}

TEST(BenchStats, RateFromGapsIsCountOverTheirSum) {
  // 4 answers in 2 s: 2 per second, whatever the spacing.
  EXPECT_DOUBLE_EQ(RatePerSecond({500, 500, 500, 500}), 2.0);
  EXPECT_DOUBLE_EQ(RatePerSecond({1700, 100, 100, 100}), 2.0);
  EXPECT_DOUBLE_EQ(RatePerSecond({}), 0.0);
  EXPECT_DOUBLE_EQ(RatePerSecond({0, 0}), 0.0);
  // Constant gaps: the interval is the rate itself.
  Interval ci = BootstrapRateCi(std::vector<double>(40, 250.0));
  ASSERT_TRUE(ci.valid);
  EXPECT_DOUBLE_EQ(ci.estimate, 4.0);
  EXPECT_DOUBLE_EQ(ci.low, 4.0);
  EXPECT_DOUBLE_EQ(ci.high, 4.0);
  Interval r = BootstrapRateRatioCi(std::vector<double>(20, 100.0), std::vector<double>(30, 250.0));
  ASSERT_TRUE(r.valid);
  EXPECT_DOUBLE_EQ(r.estimate, 2.5);  // 10/s over 4/s
  EXPECT_DOUBLE_EQ(r.low, 2.5);
  EXPECT_DOUBLE_EQ(r.high, 2.5);
  EXPECT_FALSE(BootstrapRateCi({}).valid);
  EXPECT_FALSE(BootstrapRateRatioCi({100}, {}).valid);
}

TEST(BenchStats, RateIntervalBracketsTheEstimateAndIsReproducible) {
  std::mt19937_64 rng(11);
  std::exponential_distribution<double> gap(1.0 / 250.0);  // 4 per second on average
  std::vector<double> g;
  for (int i = 0; i < 400; ++i) g.push_back(gap(rng));
  Interval a = BootstrapRateCi(g), b = BootstrapRateCi(g);
  ASSERT_TRUE(a.valid);
  EXPECT_EQ(a.low, b.low);
  EXPECT_EQ(a.high, b.high);
  EXPECT_LT(a.low, a.estimate);
  EXPECT_GT(a.high, a.estimate);
  EXPECT_NEAR(a.estimate, 4.0, 0.5);
  // Poisson-like gaps: the rate's relative spread is about 1/sqrt(n) = 5% per side.
  EXPECT_NEAR((a.high - a.low) / a.estimate, 2 * 1.96 / std::sqrt(400.0), 0.04);
}

TEST(BenchStats, RateBatchesKeepBunchedAnswersTogether) {
  // Two workers answering together every 500 ms: gaps 0, 500, 0, 500, ... (4 per second).
  std::vector<double> g;
  for (int i = 0; i < 40; ++i) g.push_back(i % 2 == 0 ? 500 : 0);
  Interval single = BootstrapRateCi(g, {}, 1), paired = BootstrapRateCi(g, {}, 2);
  ASSERT_TRUE(single.valid && paired.valid);
  EXPECT_DOUBLE_EQ(paired.estimate, 4.0);
  EXPECT_DOUBLE_EQ(paired.low, 4.0);  // every batch is one answer pair per 500 ms
  EXPECT_DOUBLE_EQ(paired.high, 4.0);
  EXPECT_GT(single.high - single.low, 1.0);  // gap by gap, the bunching looks like noise
  Interval r = BootstrapRateRatioCi(g, std::vector<double>(20, 500.0), {}, 2, 1);
  ASSERT_TRUE(r.valid);
  EXPECT_DOUBLE_EQ(r.estimate, 2.0);
  EXPECT_DOUBLE_EQ(r.low, 2.0);
  EXPECT_DOUBLE_EQ(r.high, 2.0);
}

TEST(BenchStats, KneeIsTheFewestLevelsWithin5PercentOfTheBest) {
  // Rises to 2, flat after: the knee is 2.
  EXPECT_EQ(KneeLevel({{1, 3.8}, {2, 4.2}, {3, 4.25}, {4, 4.3}, {6, 4.1}, {8, 4.0}}), 2);
  // Keeps rising: the knee is the top level.
  EXPECT_EQ(KneeLevel({{1, 5.0}, {2, 6.4}, {4, 8.5}, {8, 9.9}}), 8);
  // Order does not matter; a dip after the peak does not move it.
  EXPECT_EQ(KneeLevel({{8, 9.2}, {6, 9.7}, {1, 5.1}, {4, 8.6}}), 6);
  // Within the tolerance of the best counts: 9.3 >= 0.95 x 9.7.
  EXPECT_EQ(KneeLevel({{4, 9.3}, {6, 9.7}}), 4);
  EXPECT_EQ(KneeLevel({{4, 9.3}, {6, 9.7}}, 0.01), 6);
  EXPECT_EQ(KneeLevel({}), 0);
}

}  // namespace
}  // namespace ephemera::bench
