// bench/analysis.cc: from samples to the numbers and verdicts the reports print.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "bench/results.h"

namespace ephemera::bench {
namespace {

// printf into a string of whatever length the text needs (sentences here can be long).
std::string Format(const char* fmt, double a, double b = 0, double c = 0, double d = 0) {
  int n = std::snprintf(nullptr, 0, fmt, a, b, c, d);
  if (n <= 0) return "";
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), fmt, a, b, c, d);
  out.resize(static_cast<size_t>(n));
  return out;
}

// Verdict for "numerator p50 <= factor x denominator p50".
TargetVerdict RatioTarget(const std::string& name, const RatioStats* ratio, double factor,
                          const SeriesStats* den) {
  TargetVerdict v;
  v.name = name;
  if (ratio == nullptr || !ratio->ci.valid || den == nullptr || den->summary.n == 0) {
    v.measured = "not measured";
    return v;
  }
  v.evaluated = true;
  double r = ratio->ci.estimate;
  v.measured = Format("%.3f x (95%% CI %.3f-%.3f)", r, ratio->ci.low, ratio->ci.high);
  v.met = r <= factor;
  double allowed_ms = factor * den->summary.p50;
  double num_ms = r * den->summary.p50;
  double diff = num_ms - allowed_ms;
  if (v.met) {
    v.margin = Format("met: %.1f ms under the %.1f ms allowed (%.1f%%)", -diff, allowed_ms,
                      -diff / allowed_ms * 100);
  } else {
    v.margin = Format("missed by %.1f ms over the %.1f ms allowed (%.1f%%)", diff, allowed_ms,
                      diff / allowed_ms * 100);
  }
  if (v.met && ratio->ci.high > factor) v.margin += "; the CI's upper end is above the target";
  if (!v.met && ratio->ci.low <= factor) v.margin += "; the CI's lower end reaches the target";
  return v;
}

// "p50 of `phase` <= limit ms" for series `key` (q = 0.5 or 0.99).
TargetVerdict PhaseTarget(const std::string& name, const SeriesStats* s, const char* phase,
                          double q, double limit_ms) {
  TargetVerdict v;
  v.name = name;
  if (s == nullptr || s->phases.count(phase) == 0 || s->phases.at(phase).n == 0) {
    v.measured = "not measured";
    return v;
  }
  const Summary& m = s->phases.at(phase);
  double x = q >= 0.9 ? m.p99 : m.p50;
  v.evaluated = true;
  v.met = x <= limit_ms;
  v.measured =
      Format("p50 %.2f ms, p99 %.2f ms (n = %.0f)", m.p50, m.p99, static_cast<double>(m.n));
  v.margin = v.met ? Format("met: %.2f ms under %.1f ms", limit_ms - x, limit_ms)
                   : Format("missed by %.2f ms (%.0f%% over)", x - limit_ms,
                            (x - limit_ms) / limit_ms * 100);
  return v;
}

// "rate >= factor x reference" from a ratio interval.
TargetVerdict RateTarget(const std::string& name, const Interval& ratio, double rate,
                         double reference, double factor) {
  TargetVerdict v;
  v.name = name;
  if (!ratio.valid || reference <= 0) {
    v.measured = "not measured";
    return v;
  }
  v.evaluated = true;
  v.met = ratio.estimate >= factor;
  v.measured = Format("%.2f/s vs %.2f/s: ", rate, reference) +
               Format("%.3f x (95%% CI %.3f-%.3f)", ratio.estimate, ratio.low, ratio.high);
  double need = factor * reference;
  v.margin = v.met ? Format("met: %.2f/s above the %.2f/s needed", rate - need, need)
                   : Format("missed by %.2f/s (%.1f%%) under the %.2f/s needed", need - rate,
                            (need - rate) / need * 100, need);
  if (v.met && ratio.low < factor) v.margin += "; the CI's lower end is below the target";
  if (!v.met && ratio.high >= factor) v.margin += "; the CI's upper end reaches the target";
  return v;
}

const SweepLevel* FindLevel(const RunResult& run, const std::string& series, int c) {
  for (const SweepLevel& l : run.sweep) {
    if (l.series == series && l.concurrency == c) return &l;
  }
  return nullptr;
}

// "<what>: per container started, ..." comparing a series' CPU per container with the
// floor's and how busy the machine was (2 cores: below 2, cores sat idle between starts);
// empty if either was not measured.
std::string CpuAgainstFloor(const std::string& what, const BlockCpu& e, const BlockCpu& f) {
  if (e.containers == 0 || f.containers == 0 || e.machine_ms < 0 || f.machine_ms < 0 ||
      e.wall_ms <= 0 || f.wall_ms <= 0)
    return "";
  auto per = [](const BlockCpu& c, double ms) { return std::max(0.0, ms) / c.containers; };
  return what +
         Format(
             ": per container started, %.1f ms of wall time and %.1f ms of CPU (%.2f cores "
             "busy) ",
             per(e, e.wall_ms), per(e, e.machine_ms), e.machine_ms / e.wall_ms) +
         Format("against the floor's %.1f ms and %.1f ms (%.2f cores); ", per(f, f.wall_ms),
                per(f, f.machine_ms), f.machine_ms / f.wall_ms) +
         Format("the daemon %.1f ms and the benchmark %.1f ms ", per(e, e.daemon_ms),
                per(e, e.bench_ms)) +
         Format("(the floor's client %.1f ms), inside containers %.1f ms (floor %.1f), ",
                per(f, f.bench_ms), per(e, e.containers_ms), per(f, f.containers_ms)) +
         Format("the engine and the rest %.1f ms (floor %.1f), steal %.1f ms (floor %.1f)",
                per(e, e.rest_ms()), per(f, f.rest_ms()), per(e, e.steal_ms), per(f, f.steal_ms));
}

// Warm, pool, rates, the knee, throughput and queue memory.
void AnalyzeBeyondCold(const RunResult& run, BootstrapOptions bootstrap, Analysis* a) {
  a->targets.push_back(PhaseTarget("warm: p50 of latency - handler <= 0.5 ms", a->Find(kWarm),
                                   "beyond_handler", 0.5, 0.5));
  a->targets.push_back(PhaseTarget("pool: p50 of latency - handler <= 0.5 ms", a->Find(kPool),
                                   "beyond_handler", 0.5, 0.5));
  a->targets.push_back(PhaseTarget("pool: p99 of latency - handler <= 2 ms", a->Find(kPool),
                                   "beyond_handler", 0.99, 2.0));

  // Cold starts/s, ephemera against the floor at each level both ran.
  for (const SweepLevel& e : run.sweep) {
    if (e.series != kEphemera) continue;
    const SweepLevel* f = FindLevel(run, kRawFloor, e.concurrency);
    if (f == nullptr) continue;
    RateRatio rr;
    rr.concurrency = e.concurrency;
    rr.ci = BootstrapRateRatioCi(e.gaps(), f->gaps(), bootstrap, e.concurrency, f->concurrency);
    a->rate_ratios.push_back(rr);
    a->targets.push_back(
        RateTarget(Format("cold starts/s at concurrency %.0f >= 0.95 x raw floor's", e.concurrency),
                   rr.ci, e.per_second(), f->per_second(), 0.95));
    // Where a missed level's time went.
    if (a->targets.back().evaluated && !a->targets.back().met) {
      std::string line = CpuAgainstFloor(
          Format("cold starts at concurrency %.0f (missed)", e.concurrency), e.cpu, f->cpu);
      if (!line.empty()) a->time_budget.push_back(line);
    }
  }

  // The knee: the floor's starts/s per starts in flight.
  for (const SweepLevel& f : run.sweep) {
    if (f.series == kRawFloor && !f.samples.empty())
      a->knee_rates.emplace_back(f.concurrency, f.per_second());
  }
  std::sort(a->knee_rates.begin(), a->knee_rates.end());
  a->knee = KneeLevel(a->knee_rates);
  if (a->knee > 0) {
    std::string rates;
    for (const auto& [level, rate] : a->knee_rates)
      rates += (rates.empty() ? "" : ", ") + Format("%.2f at %.0f", rate, level);
    a->time_budget.push_back(
        Format("the raw floor's starts/s stop rising (within 5%% of the best) at %.0f starts in "
               "flight: ",
               a->knee) +
        rates +
        Format(" (starts/s at starts in flight); the daemon caps its starts at %.0f",
               run.pool_rate.max_starts > 0 ? run.pool_rate.max_starts : 2) +
        (run.config.max_starts > 0 ? " (--max-starts)." : " (its default, unless --max-starts)."));
  }

  // The pool's sustained fresh containers/s against the floor with as many starts in
  // flight as the pool can have: a pool of N replaces at most N environments at once, and
  // never more than the daemon's start cap.
  const PoolRate& pr = run.pool_rate;
  std::vector<double> pg = pr.gaps();
  {
    int in_flight = pr.in_flight();
    // A refill has up to in_flight starts at once: batches of that many answers.
    a->pool_rate = BootstrapRateCi(pg, bootstrap, in_flight);
    a->pool_floor_concurrency = in_flight;
    // The floor measured between the pool's blocks; else the sweep's level.
    a->pool_floor_interleaved = !pr.floor.samples.empty();
    const SweepLevel* f =
        a->pool_floor_interleaved ? &pr.floor : FindLevel(run, kRawFloor, in_flight);
    if (f != nullptr) a->pool_floor_rate = RatePerSecond(f->gaps());
    TargetVerdict v;
    if (f != nullptr && !pg.empty()) {
      a->pool_floor_ratio =
          BootstrapRateRatioCi(pg, f->gaps(), bootstrap, in_flight, f->concurrency);
      v = RateTarget(
          Format("pool: fresh containers/s >= 0.95 x raw floor starts/s at %.0f in "
                 "flight (",
                 in_flight) +
              (in_flight < pr.max_starts ? "the pool's size, under the daemon's start cap)"
                                         : "the daemon's start cap)") +
              (a->pool_floor_interleaved ? ", in alternating blocks" : ""),
          a->pool_floor_ratio, RatePerSecond(pg), a->pool_floor_rate, 0.95);
      if (pr.not_fresh > 0)
        v.margin += Format("; %.0f of %.0f pool invocations were not fresh", pr.not_fresh,
                           pr.fresh + pr.not_fresh);
    } else {
      v.name = "pool: fresh containers/s >= 0.95 x raw floor starts/s with as many in flight";
      v.measured = "not measured";
    }
    a->targets.push_back(v);
    // Where a refill's time goes: CPU per container against the floor's.
    std::string line = CpuAgainstFloor("pool refill", pr.pool_cpu, pr.floor.cpu);
    if (!line.empty()) a->time_budget.push_back(line);
  }

  // Warm throughput.
  double best = 0;
  int best_c = 0;
  for (const ThroughputLevel& l : run.throughput) {
    ThroughputStats t;
    t.concurrency = l.concurrency;
    t.per_second = l.per_second();
    t.latency = Summarize(l.latencies);
    if (l.completed > 0) {
      double n = static_cast<double>(l.completed + l.not_warm);
      auto per = [n](double ms) { return ms >= 0 ? ms * 1000.0 / n : -1; };
      t.daemon_us = per(l.daemon_cpu_ms);
      t.loadgen_us = per(l.loadgen_cpu_ms);
      t.containers_us = per(l.containers_cpu_ms);
      if (l.daemon_switches >= 0) t.daemon_switches = l.daemon_switches / n;
      t.redis_us = per(l.redis_cpu_ms);
      t.steal_us = per(l.steal_ms);
      if (l.machine_cpu_ms >= 0 && l.daemon_cpu_ms >= 0 && l.loadgen_cpu_ms >= 0 &&
          l.containers_cpu_ms >= 0) {
        t.other_us = per(std::max(0.0, l.machine_cpu_ms - l.daemon_cpu_ms - l.loadgen_cpu_ms -
                                           l.containers_cpu_ms - std::max(0.0, l.redis_cpu_ms) -
                                           std::max(0.0, l.steal_ms)));
      }
    }
    if (t.per_second > best) {
      best = t.per_second;
      best_c = t.concurrency;
    }
    a->throughput.push_back(t);
  }
  {
    TargetVerdict v;
    v.name = "warm throughput >= 10,000 invokes/s (best level)";
    if (best_c > 0) {
      v.evaluated = true;
      v.met = best >= kThroughputTarget;
      v.measured = Format("%.0f invokes/s with %.0f clients", best, best_c);
      v.margin = v.met ? Format("met: x%.2f", best / kThroughputTarget)
                       : Format("missed by %.0f/s (%.0f%% under)", kThroughputTarget - best,
                                (kThroughputTarget - best) / kThroughputTarget * 100);
    } else {
      v.measured = "not measured";
    }
    a->targets.push_back(v);
  }

  // Where a throughput level's time goes: CPU per invoke against what 2 cores can give.
  for (size_t i = 0; i < a->throughput.size(); ++i) {
    const ThroughputStats& t = a->throughput[i];
    if (t.concurrency != best_c || t.daemon_us < 0 || t.containers_us < 0 || t.loadgen_us < 0)
      continue;
    // Redis does the daemon's record keeping: it counts as the benchmark's own.
    double redis = std::max(0.0, t.redis_us);
    double ours = t.daemon_us + t.containers_us + t.loadgen_us + redis;
    double all = ours + std::max(0.0, t.other_us);
    a->time_budget.push_back(
        Format("warm throughput at %.0f clients: %.0f invokes/s; CPU per invoke %.0f µs in the "
               "daemon, %.0f µs in the containers (the runtimes), ",
               t.concurrency, t.per_second, t.daemon_us, t.containers_us) +
        Format("%.0f µs in the load generator, %.0f µs in Redis (the invocation records) "
               "and %.0f µs elsewhere on the machine (dockerd, softirq, other users' work; "
               "%.0f µs of steal by the hypervisor not counted); ",
               t.loadgen_us, redis, std::max(0.0, t.other_us), std::max(0.0, t.steal_us)) +
        Format("at %.0f µs per invoke for the benchmark's own processes, 2 cores give at most "
               "%.0f invokes/s, and %.0f with the rest of the machine's load",
               ours, 2e6 / ours, 2e6 / all) +
        (t.daemon_switches >= 0
             ? Format("; the daemon context-switches %.2f times per invoke.", t.daemon_switches)
             : std::string(".")));
  }
  {
    const SeriesStats* w = a->Find(kWarm);
    const SeriesStats* p = a->Find(kPool);
    if (w != nullptr && p != nullptr && w->phases.count("handler") != 0 &&
        p->phases.count("handler") != 0) {
      const Summary& hw = w->phases.at("handler");
      const Summary& hp = p->phases.at("handler");
      a->time_budget.push_back(
          Format("warm and pool latency p50 %.2f and %.2f ms; ", w->summary.p50, p->summary.p50) +
          Format("their handler phase (event handed out -> response posted: the runtime's "
                 "wake-up and work) p50 %.2f and %.2f ms, p99 %.2f and %.2f ms ",
                 hw.p50, hp.p50, hw.p99, hp.p99) +
          "(a pool environment handles its first event there; a warm one has handled many).");
    }
  }

  // Queue memory.
  for (const QueueMemory& q : run.queue_memory) {
    TargetVerdict v;
    v.name = "daemon RSS with " + std::to_string(q.wanted) + " " + q.kind +
             " invocations queued <= 64 MB";
    if (q.peak_kb > 0) {
      v.evaluated = true;
      double mb = q.peak_kb / 1024.0;
      v.met = mb <= 64.0;
      v.measured = Format("%.1f MB (%.1f MB before; +%.1f KB per queued invocation)", mb,
                          q.baseline_kb / 1024.0,
                          q.queued > 0 ? (q.peak_kb - q.baseline_kb) / q.queued : 0) +
                   ", " + std::to_string(q.queued) + " waiting";
      v.margin =
          v.met ? Format("met: %.1f MB under", 64.0 - mb) : Format("missed by %.1f MB", mb - 64.0);
      if (!q.note.empty()) v.margin += "; " + q.note;
    } else {
      v.measured = "not measured";
    }
    a->targets.push_back(v);
  }
}

}  // namespace

std::vector<double> Series::latencies() const {
  std::vector<double> v;
  v.reserve(samples.size());
  for (const Sample& s : samples) v.push_back(s.latency_ms);
  return v;
}

std::vector<double> Series::phase(const std::string& name) const {
  std::vector<double> v;
  for (const Sample& s : samples) {
    if (auto it = s.phases.find(name); it != s.phases.end()) v.push_back(it->second);
  }
  return v;
}

std::vector<double> SweepLevel::latencies() const {
  std::vector<double> v;
  for (const Sample& s : samples) v.push_back(s.latency_ms);
  return v;
}

std::vector<double> SweepLevel::gaps() const {
  std::map<int, std::vector<double>> ends;  // block -> answer times
  for (const Sample& s : samples) {
    if (s.block >= 0 && static_cast<size_t>(s.block) < block_starts.size())
      ends[s.block].push_back(s.start_ms + s.latency_ms);
  }
  std::vector<double> gaps;
  for (auto& [block, times] : ends) {
    std::sort(times.begin(), times.end());
    double prev = block_starts[static_cast<size_t>(block)];
    for (double t : times) {
      gaps.push_back(std::max(0.0, t - prev));
      prev = t;
    }
  }
  return gaps;
}

double BlockCpu::rest_ms() const {
  if (machine_ms < 0 || daemon_ms < 0 || bench_ms < 0 || containers_ms < 0) return -1;
  return std::max(0.0, machine_ms - std::max(0.0, steal_ms) - daemon_ms - bench_ms - containers_ms -
                           std::max(0.0, redis_ms));
}

std::vector<double> PoolRate::gaps() const {
  std::vector<double> g;
  const size_t skip = static_cast<size_t>(std::max(pool_size, 1));
  size_t in_block = 0;  // fresh answers so far in the current block
  for (size_t i = 0; i < fresh_answers.size(); ++i) {
    int block = i < fresh_blocks.size() ? fresh_blocks[i] : 0;
    int prev_block = i > 0 && i - 1 < fresh_blocks.size() ? fresh_blocks[i - 1] : 0;
    if (i > 0 && block != prev_block) in_block = 0;
    if (in_block >= skip) g.push_back(fresh_answers[i] - fresh_answers[i - 1]);
    ++in_block;
  }
  return g;
}

const Series* RunResult::Find(const std::string& key) const {
  for (const Series& s : series) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

const SeriesStats* Analysis::Find(const std::string& key) const {
  for (const SeriesStats& s : series) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

Analysis Analyze(const RunResult& run, BootstrapOptions bootstrap) {
  Analysis a;
  for (const Series& s : run.series) {
    SeriesStats st;
    st.key = s.key;
    std::vector<double> lat = s.latencies();
    st.summary = Summarize(lat);
    st.median_ci = BootstrapMedianCi(lat, bootstrap);
    std::set<std::string> names;
    for (const Sample& x : s.samples) {
      for (const auto& [name, ms] : x.phases) names.insert(name);
    }
    for (const std::string& name : names) st.phases[name] = Summarize(s.phase(name));
    std::map<int, std::vector<double>> by_position;
    for (const Sample& x : s.samples) {
      if (x.position >= 0) by_position[x.position].push_back(x.latency_ms);
    }
    for (const auto& [pos, v] : by_position) st.by_position[pos] = Summarize(v);
    a.series.push_back(std::move(st));
  }

  const Series* eph = run.Find(kEphemera);
  for (const char* den : {kRawFloor, kDockerRun}) {
    const Series* d = run.Find(den);
    if (eph == nullptr || d == nullptr || eph->samples.empty() || d->samples.empty()) continue;
    RatioStats r;
    r.name = std::string("ephemera / ") + (den == kRawFloor ? "raw floor" : "docker run");
    r.numerator = kEphemera;
    r.denominator = den;
    r.ci = BootstrapMedianRatioCi(eph->latencies(), d->latencies(), bootstrap);
    a.ratios.push_back(std::move(r));
  }
  auto ratio = [&](const char* den) -> const RatioStats* {
    for (const RatioStats& r : a.ratios) {
      if (r.denominator == den) return &r;
    }
    return nullptr;
  };

  if (eph != nullptr) {
    a.cold_samples = static_cast<int>(eph->samples.size());
    for (const Sample& x : eph->samples) a.cold_with_create += x.phases.count("create") != 0;
  }
  a.targets.push_back(RatioTarget("ephemera cold p50 <= 1.05 x raw Docker floor p50",
                                  ratio(kRawFloor), 1.05, a.Find(kRawFloor)));
  if (run.config.precreate) {
    // The same ratio of the same interleaved series, against the stricter bound the
    // created-ahead container is for (bench/README.md "--precreate").
    std::string created = Format("; %.0f of %.0f cold samples had a create phase",
                                 a.cold_with_create, a.cold_samples);
    if (a.targets.back().evaluated) a.targets.back().margin += "; the daemon ran with --precreate";
    TargetVerdict v =
        RatioTarget(kPrecreateTargetName, ratio(kRawFloor), kPrecreateTarget, a.Find(kRawFloor));
    if (v.evaluated) v.margin += created;
    a.targets.push_back(std::move(v));
  }
  a.targets.push_back(RatioTarget("ephemera cold p50 <= 0.5 x docker run --rm p50",
                                  ratio(kDockerRun), 0.5, a.Find(kDockerRun)));
  {
    TargetVerdict v;
    v.name = "daemon overhead (total - image - create - start - init - handler) p50 < 1 ms";
    const SeriesStats* e = a.Find(kEphemera);
    if (e != nullptr && e->phases.count("overhead") != 0 && e->phases.at("overhead").n > 0) {
      const Summary& o = e->phases.at("overhead");
      v.evaluated = true;
      v.measured = Format("p50 %.2f ms, p90 %.2f ms, max %.2f ms", o.p50, o.p90, o.max);
      v.met = o.p50 < 1.0;
      v.margin = v.met ? Format("met: %.2f ms under 1 ms", 1.0 - o.p50)
                       : Format("missed by %.2f ms", o.p50 - 1.0);
      v.margin += " (Server-Timing has 0.1 ms resolution)";
    } else {
      v.measured = "not measured";
    }
    a.targets.push_back(std::move(v));
  }
  {
    TargetVerdict v;
    v.name = "HTTP layer > 50k requests/s on one core (microbenchmark " +
             std::string(kHttpMicrobench) + ")";
    v.measured = "not measured (run with the microbenchmarks)";
    for (const MicrobenchResult& m : run.microbench) {
      if (m.name.rfind(kHttpMicrobench, 0) != 0) continue;
      v.evaluated = true;
      v.measured = Format("%.0f requests/s", m.items_per_second);
      v.met = m.items_per_second > kHttpTargetPerSecond;
      double d = m.items_per_second - kHttpTargetPerSecond;
      v.margin = v.met ? Format("met: %.0f requests/s above 50k (x%.2f)", d,
                                m.items_per_second / kHttpTargetPerSecond)
                       : Format("missed by %.0f requests/s", -d);
      break;
    }
    a.targets.push_back(std::move(v));
  }

  for (const SweepLevel& l : run.sweep) {
    SweepStats s;
    s.series = l.series;
    s.concurrency = l.concurrency;
    s.summary = Summarize(l.latencies());
    s.per_second = l.per_second();
    s.rate_ci = BootstrapRateCi(l.gaps(), bootstrap, l.concurrency);
    s.failed = l.rejects.failed;
    s.wrong_class_dropped = l.rejects.wrong_class_dropped;
    a.sweep.push_back(s);
  }

  AnalyzeBeyondCold(run, bootstrap, &a);

  // Where the time goes: ephemera's phases against the floor's, medians.
  const SeriesStats* e = a.Find(kEphemera);
  const SeriesStats* f = a.Find(kRawFloor);
  if (e != nullptr && f != nullptr && e->summary.n > 0 && f->summary.n > 0) {
    auto p50 = [](const SeriesStats* s, const char* phase) {
      auto it = s->phases.find(phase);
      return it == s->phases.end() || it->second.n == 0 ? std::nan("") : it->second.p50;
    };
    double diff = e->summary.p50 - f->summary.p50;
    a.time_budget.push_back(
        Format("ephemera's median cold start is %.1f ms against the raw floor's %.1f ms: %+.1f ms.",
               e->summary.p50, f->summary.p50, diff));
    if (run.config.precreate) {
      // Most cold samples have no create: its median over the few that do is no phase of
      // the typical cold start.
      double pe = p50(e, "create"), pf = p50(f, "create");
      a.time_budget.push_back(
          Format("create (--precreate): %.0f of %.0f cold samples had one", a.cold_with_create,
                 a.cold_samples) +
          (std::isnan(pe) ? std::string() : Format(" (median %.1f ms over those)", pe)) +
          "; the others started the container the daemon had created ahead" +
          (std::isnan(pf)
               ? std::string(".")
               : Format(", against the floor's create of %.1f ms on every sample.", pf)));
    }
    for (const char* phase : {"create", "start", "init"}) {
      if (run.config.precreate && phase == std::string("create")) continue;
      double pe = p50(e, phase), pf = p50(f, phase);
      if (std::isnan(pe) || std::isnan(pf)) continue;
      a.time_budget.push_back(
          std::string(phase) +
          Format(": %.1f ms in ephemera vs %.1f ms on the floor (%+.1f ms).", pe, pf, pe - pf));
    }
    for (const char* phase : {"image", "handler", "overhead", "client"}) {
      double pe = p50(e, phase);
      if (std::isnan(pe)) continue;
      const char* why =
          phase == std::string("image") ? "cached image inspection"
          : phase == std::string("handler")
              ? "the event handed out -> response posted; the floor stops at the first /next"
          : phase == std::string("overhead")
              ? "the daemon's time inside its total not attributed to a phase; the phases tile "
                "the total by construction (start ends at the first /next when that comes "
                "before the start call returns), so this is only the gaps between stages; the "
                "daemon's HTTP handling lies outside its total, in client"
              : "outside the daemon's total: the HTTP exchange with the daemon (loopback, "
                "parsing and routing in the daemon, reply, and the client's own curl time)";
      a.time_budget.push_back(std::string(phase) + Format(": %.2f ms (", pe) + why + ").");
    }
    // The docker run target, read against the floor: ephemera cannot beat the floor.
    const SeriesStats* d = a.Find(kDockerRun);
    if (d != nullptr && d->summary.n > 0) {
      double run_over_floor = d->summary.p50 / f->summary.p50;
      a.time_budget.push_back(
          Format(
              "docker run --rm costs %.2f x the raw floor at the median (%.1f ms against %.1f ms): "
              "the CLI process, its API calls, attaching stdio, and waiting for the removal. Since "
              "no emulator on this engine gets below the floor, ephemera <= 0.5 x docker run needs "
              "docker run >= 2 x floor on this machine",
              run_over_floor, d->summary.p50, f->summary.p50) +
          (run_over_floor >= 2.0 ? "."
           : e->summary.p50 < f->summary.p50
               ? "; here it is just under, and ephemera's median came out below the floor's "
                 "(within their intervals), which is what decides that target here."
               : "; here it is not, so that target is out of reach for any cold path that "
                 "creates a container per invocation."));
    }
  }
  // The sweep: how latency and throughput follow concurrency.
  for (const char* key : {kEphemera, kRawFloor}) {
    double best = 0;
    int best_c = 0;
    for (const SweepStats& s : a.sweep) {
      if (s.series == key && s.per_second > best) {
        best = s.per_second;
        best_c = s.concurrency;
      }
    }
    if (best_c == 0) continue;
    a.time_budget.push_back(
        std::string(key == kEphemera ? "ephemera" : "the raw floor") +
        Format(" peaks at %.2f cold starts/s (at concurrency %.0f)", best, best_c) +
        "; when the rate stays flat as concurrency grows, the engine "
        "serializes container starts and extra parallelism only queues.");
  }
  for (const SweepStats& s : a.sweep) {
    if (s.series != kEphemera) continue;
    for (const SweepStats& t : a.sweep) {
      if (t.series == kRawFloor && t.concurrency == s.concurrency && t.summary.p50 > 0) {
        a.time_budget.push_back(
            Format("sweep at concurrency %.0f: ephemera p50 %.0f ms vs raw "
                   "floor p50 %.0f ms (%.2f x).",
                   s.concurrency, s.summary.p50, t.summary.p50, s.summary.p50 / t.summary.p50));
      }
    }
  }
  return a;
}

}  // namespace ephemera::bench
