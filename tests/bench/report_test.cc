// Tests of bench/report.h and the analysis on a synthetic run: the JSON's structure, the
// verdicts, the Markdown sections, and SVGs that are well-formed XML.
#include "bench/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "runtime/json/json.h"
#include "tests/bench/xml_check.h"

namespace ephemera::bench {
namespace {

using testing::CheckXml;

// 4 cold-start targets, 3 warm/pool latency targets, 2 cold-rate targets (levels 1 and 2),
// the pool rate, throughput, one queue-memory target.
constexpr size_t kTargets = 12;

Series MakeSeries(const std::string& key, const std::string& label, double base, bool phases) {
  Series s;
  s.key = key;
  s.label = label;
  s.what = "what " + key;
  for (int i = 0; i < 21; ++i) {
    Sample x;
    x.index = i;
    x.start_ms = i * 1000.0;
    x.latency_ms = base + (i - 10);  // median exactly `base`
    if (phases) {
      x.phases = {{"create", 10},   {"start", base - 20}, {"init", 1},
                  {"handler", 0.5}, {"overhead", 0.2},    {"total", base - 8}};
    } else if (key == kRawFloor) {
      x.phases = {{"create", 10}, {"start", base - 12}, {"init", 2}};
    }
    s.samples.push_back(x);
  }
  return s;
}

RunResult MakeRun() {
  RunResult r;
  r.config.function = "echo";
  r.config.mode = "native";
  r.config.image = "ephemera/echo:latest";
  r.config.samples = 21;
  r.config.started_at = "2026-11-23T06:00:00Z";
  r.config.command_line = "ephemera-bench --samples 21";
  r.environment = {{"cpu_model", "Test CPU <fast> & cheap"}, {"cores", "2"}};
  r.series.push_back(MakeSeries(kEphemera, "ephemera cold", 100, true));
  r.series.push_back(MakeSeries(kRawFloor, "raw Docker floor", 100, false));
  r.series.push_back(MakeSeries(kDockerRun, "docker run --rm", 150, false));
  r.series[0].rejects.wrong_class_dropped = 1;
  r.series[0].rejects.Note("not a cold start");
  for (int c : {1, 2}) {
    for (const char* key : {kEphemera, kRawFloor}) {
      SweepLevel l;
      l.series = key;
      l.concurrency = c;
      l.wall_ms = 2000;
      for (int i = 0; i < 4; ++i) {
        Sample x;
        x.index = i;
        x.concurrency = c;
        x.latency_ms = 100.0 * c + i;
        l.samples.push_back(x);
      }
      r.sweep.push_back(l);
    }
  }
  // Sweep samples: block 0 starts at 0 ms, one answer every 500 ms.
  for (SweepLevel& l : r.sweep) {
    l.block_starts = {0};
    for (size_t i = 0; i < l.samples.size(); ++i) {
      l.samples[i].block = 0;
      l.samples[i].start_ms = 0;
      l.samples[i].latency_ms = 500.0 * static_cast<double>(i + 1);
    }
  }
  // The CPU of ephemera's blocks at 2: 4 containers, 2 s, 3.2 s of CPU.
  r.sweep[2].cpu = {1, 4, 2000, 3200, 20, 8, 200, 4, 0};
  // The floor alone at 3 in flight, a little faster: the knee.
  SweepLevel k;
  k.series = kRawFloor;
  k.concurrency = 3;
  k.wall_ms = 1900;
  k.block_starts = {0};
  for (int i = 0; i < 4; ++i) {
    Sample x;
    x.block = 0;
    x.concurrency = 3;
    x.latency_ms = 475.0 * (i + 1);
    k.samples.push_back(x);
  }
  r.sweep.push_back(k);
  // Warm and pool: 0.4 ms each, 0.1 ms of it the handler.
  for (const char* key : {kWarm, kPool}) {
    Series s;
    s.key = key;
    s.label = key == std::string(kWarm) ? "ephemera warm" : "ephemera pool";
    for (int i = 0; i < 21; ++i) {
      Sample x;
      x.index = i;
      x.latency_ms = 0.4;
      x.start_kind = key == std::string(kWarm) ? "warm" : "pool";
      x.phases = {{"handler", 0.1}, {"total", 0.2}, {"beyond_handler", 0.3}};
      s.samples.push_back(x);
    }
    r.series.push_back(s);
  }
  // Pool refill rate: a pool of 2, then a fresh container every 125 ms (8/s).
  r.pool_rate.pool_size = 2;
  r.pool_rate.max_starts = 2;
  for (int i = 0; i < 12; ++i) {
    r.pool_rate.fresh_answers.push_back(i < 2 ? 0 : 125.0 * (i - 1));
    ++r.pool_rate.fresh;
  }
  r.pool_rate.not_fresh = 1;
  // Its blocks' CPU against the floor's: 10 containers each, 2 s of wall time.
  r.pool_rate.pool_cpu = {2, 10, 2000, 3000, 40, 20, 400, 10, 30};
  r.pool_rate.floor.cpu = {2, 10, 2000, 3600, 0, 10, 420, 0, 30};
  // It asked /healthz 26 times (2 per invocation) and counted ten replacements' times.
  r.pool_rate.polls = 26;
  r.pool_rate.refill_ms = {100, 110, 120, 130, 140, 150, 160, 170, 180, 190};
  r.pool_rate.poll_basis_ms = 118;
  // Throughput: 12,000 invokes in 1 s at 16 clients, 6,000 in 1 s at 1.
  for (int c : {1, 16}) {
    ThroughputLevel t;
    t.concurrency = c;
    t.duration_ms = 1000;
    t.completed = c == 1 ? 6000 : 12000;
    t.latencies = {0.1, 0.2, 0.3};
    t.daemon_cpu_ms = 600;  // 50 us per invoke at 16
    t.loadgen_cpu_ms = 120;
    t.containers_cpu_ms = 480;
    t.machine_cpu_ms = 1800;
    t.daemon_switches = 24000;
    t.environments = c;
    r.throughput.push_back(t);
  }
  r.throughput_profile = {"  21.4%  [kernel.kallsyms]  [k] _raw_spin_unlock_irqrestore"};
  QueueMemory q;
  q.kind = "sync";
  q.wanted = 1000;
  q.submitted = 1001;
  q.queued = 1000;
  q.baseline_kb = 16 * 1024;
  q.peak_kb = 18 * 1024;
  q.hwm_kb = 18 * 1024;
  q.note = "1000 Event invocations still queued";
  r.queue_memory.push_back(q);
  r.microbench.push_back({"BM_HttpServerOneCore/manual_time", 71000, 14084, "requests"});
  r.notes.push_back("warm and pool are not measured");
  return r;
}

const cJSON* Get(const cJSON* o, const char* key) {
  return cJSON_GetObjectItemCaseSensitive(o, key);
}

TEST(BenchReport, AnalysisGivesRatiosAndVerdicts) {
  RunResult run = MakeRun();
  Analysis a = Analyze(run);
  ASSERT_EQ(a.series.size(), 5u);
  EXPECT_DOUBLE_EQ(a.Find(kEphemera)->summary.p50, 100);
  ASSERT_EQ(a.ratios.size(), 2u);
  EXPECT_DOUBLE_EQ(a.ratios[0].ci.estimate, 1.0);
  EXPECT_NEAR(a.ratios[1].ci.estimate, 100.0 / 150.0, 1e-12);
  ASSERT_EQ(a.targets.size(), kTargets);
  EXPECT_TRUE(a.targets[0].evaluated);
  EXPECT_TRUE(a.targets[0].met);  // 1.0 <= 1.05
  EXPECT_TRUE(a.targets[1].evaluated);
  EXPECT_FALSE(a.targets[1].met);  // 0.667 > 0.5: 100 ms against 75 allowed
  EXPECT_NE(a.targets[1].margin.find("missed by 25.0 ms"), std::string::npos)
      << a.targets[1].margin;
  EXPECT_TRUE(a.targets[2].met);  // overhead 0.2 ms
  EXPECT_TRUE(a.targets[3].met);  // 71k > 50k
  EXPECT_EQ(a.sweep.size(), 5u);
  EXPECT_DOUBLE_EQ(a.sweep[0].per_second, 2.0);        // 4 samples in 2 s
  EXPECT_DOUBLE_EQ(a.sweep[0].rate_ci.estimate, 2.0);  // the gaps say the same
  EXPECT_FALSE(a.time_budget.empty());
  // Long sentences are whole (an earlier fixed buffer cut them short).
  bool docker_run_sentence = false;
  for (const std::string& line : a.time_budget) {
    if (line.rfind("docker run --rm costs", 0) != 0) continue;
    docker_run_sentence = true;
    EXPECT_NE(line.find("needs docker run >= 2 x floor"), std::string::npos) << line;
    EXPECT_EQ(line.back(), '.') << line;
  }
  EXPECT_TRUE(docker_run_sentence);
}

const TargetVerdict* Target(const Analysis& a, const std::string& prefix) {
  for (const TargetVerdict& t : a.targets) {
    if (t.name.rfind(prefix, 0) == 0) return &t;
  }
  return nullptr;
}

// The "Where the time goes" line that starts with `prefix`, or "" if there is none.
std::string BudgetLine(const Analysis& a, const std::string& prefix) {
  for (const std::string& line : a.time_budget) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

TEST(BenchReport, WarmPoolRatesKneeThroughputAndMemoryVerdicts) {
  RunResult run = MakeRun();
  Analysis a = Analyze(run);
  const TargetVerdict* t = Target(a, "warm: p50 of latency - handler");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->evaluated);
  EXPECT_TRUE(t->met);  // 0.3 <= 0.5
  t = Target(a, "pool: p99 of latency - handler <= 2 ms");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->met);
  // Cold starts/s: ephemera and the floor answer at the same pace at 1 and 2.
  ASSERT_EQ(a.rate_ratios.size(), 2u);
  EXPECT_DOUBLE_EQ(a.rate_ratios[0].ci.estimate, 1.0);
  t = Target(a, "cold starts/s at concurrency 2");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->met);
  // The floor: 2/s at 1 and 2 in flight, 2.1/s at 3: the knee is 1 (2 >= 0.95 x 2.1).
  ASSERT_EQ(a.knee_rates.size(), 3u);
  EXPECT_EQ(a.knee_rates[2].first, 3);
  EXPECT_NEAR(a.knee_rates[2].second, 4000.0 / 1900.0, 1e-9);
  EXPECT_EQ(a.knee, 1);
  // Pool: 8 fresh per second after the first two, the floor 2/s at 2 in flight.
  EXPECT_NEAR(a.pool_rate.estimate, 8.0, 1e-9);
  EXPECT_EQ(a.pool_floor_concurrency, 2);
  EXPECT_NEAR(a.pool_floor_ratio.estimate, 4.0, 1e-9);
  t = Target(a, "pool: fresh containers/s");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->met);
  EXPECT_NE(t->margin.find("1 of 13 pool invocations were not fresh"), std::string::npos)
      << t->margin;
  // Where a refill's time goes, against the floor's.
  std::string line = BudgetLine(a, "pool refill:");
  EXPECT_NE(line.find("200.0 ms of wall time and 300.0 ms of CPU (1.50 cores busy) against "
                      "the floor's 200.0 ms and 360.0 ms (1.80 cores)"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("the daemon 4.0 ms and the benchmark 2.0 ms (the floor's client 1.0 ms), "
                      "inside containers 40.0 ms (floor 42.0)"),
            std::string::npos)
      << line;
  // Throughput: the best level is 12,000/s, above 10,000.
  ASSERT_EQ(a.throughput.size(), 2u);
  EXPECT_DOUBLE_EQ(a.throughput[1].per_second, 12000);
  EXPECT_DOUBLE_EQ(a.throughput[1].daemon_us, 50);
  EXPECT_DOUBLE_EQ(a.throughput[1].loadgen_us, 10);
  EXPECT_DOUBLE_EQ(a.throughput[1].containers_us, 40);
  EXPECT_DOUBLE_EQ(a.throughput[1].other_us, 50);  // 1800 - 600 - 120 - 480 ms
  EXPECT_DOUBLE_EQ(a.throughput[1].daemon_switches, 2);
  t = Target(a, "warm throughput");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->met);
  // Where the time goes: CPU per invoke against 2 cores.
  line = BudgetLine(a, "warm throughput at 16 clients");
  EXPECT_NE(line.find("at 100 µs per invoke for the benchmark's own processes, 2 cores give at "
                      "most 20000 invokes/s, and 13333 with the rest"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("context-switches 2.00 times per invoke"), std::string::npos) << line;
  EXPECT_NE(t->measured.find("12000 invokes/s with 16 clients"), std::string::npos);
  // Memory: 18 MB with 1000 queued, 2 KB each.
  t = Target(a, "daemon RSS with 1000 sync");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->met);
  EXPECT_NE(t->measured.find("18.0 MB (16.0 MB before; +2.0 KB per queued"), std::string::npos)
      << t->measured;
  // A missed throughput target says by how much.
  run.throughput[1].completed = 7000;
  a = Analyze(run);
  t = Target(a, "warm throughput");
  ASSERT_NE(t, nullptr);
  EXPECT_FALSE(t->met);
  EXPECT_NE(t->margin.find("missed by 3000/s (30% under)"), std::string::npos) << t->margin;
}

TEST(BenchReport, APoolSmallerThanTheStartCapIsComparedWithTheFloorAtItsSize) {
  // A pool of 2 replaces at most 2 environments at once, whatever the daemon's cap of 3:
  // its rate is set against the floor's at 2 in flight (2/s), not at 3 (2.1/s).
  RunResult run = MakeRun();
  run.pool_rate.max_starts = 3;
  Analysis a = Analyze(run);
  EXPECT_EQ(run.pool_rate.in_flight(), 2);
  EXPECT_EQ(a.pool_floor_concurrency, 2);
  EXPECT_NEAR(a.pool_floor_ratio.estimate, 4.0, 1e-9);
  const TargetVerdict* t = Target(a, "pool: fresh containers/s");
  ASSERT_NE(t, nullptr);
  EXPECT_NE(t->name.find("at 2 in flight (the pool's size"), std::string::npos) << t->name;
  // A pool as large as the cap is compared at the cap.
  run.pool_rate.pool_size = 3;
  a = Analyze(run);
  EXPECT_EQ(a.pool_floor_concurrency, 3);
  t = Target(a, "pool: fresh containers/s");
  ASSERT_NE(t, nullptr);
  EXPECT_NE(t->name.find("at 3 in flight (the daemon's start cap)"), std::string::npos) << t->name;
}

TEST(BenchReport, APoolMeasuredInBlocksIsComparedWithTheFloorOfTheBlocksBetween) {
  // The floor's blocks between the pool's: 1 start every 250 ms (4/s) at 2 in flight, where
  // the sweep's level says 2/s; the pool (8/s) is set against the 4/s.
  RunResult run = MakeRun();
  SweepLevel& f = run.pool_rate.floor;
  f.series = kRawFloor;
  f.concurrency = 2;
  f.block_starts = {0};
  for (int i = 1; i <= 8; ++i) {
    Sample x;
    x.block = 0;
    x.start_ms = 250.0 * i - 100;
    x.latency_ms = 100;
    f.samples.push_back(x);
  }
  Analysis a = Analyze(run);
  EXPECT_TRUE(a.pool_floor_interleaved);
  EXPECT_NEAR(a.pool_floor_rate, 4.0, 1e-9);
  EXPECT_NEAR(a.pool_floor_ratio.estimate, 2.0, 1e-9);
  const TargetVerdict* t = Target(a, "pool: fresh containers/s");
  ASSERT_NE(t, nullptr);
  EXPECT_NE(t->name.find("in alternating blocks"), std::string::npos) << t->name;
  EXPECT_NE(t->measured.find("vs 4.00/s"), std::string::npos) << t->measured;
  std::string md = MarkdownReport(run, a);
  EXPECT_NE(md.find("alternate with blocks of the raw floor"), std::string::npos);
  // Without those blocks, the sweep's level is the floor.
  run.pool_rate.floor = SweepLevel{};
  a = Analyze(run);
  EXPECT_FALSE(a.pool_floor_interleaved);
  EXPECT_NEAR(a.pool_floor_ratio.estimate, 4.0, 1e-9);
}

TEST(BenchReport, AMissedColdRateSaysWhereItsCpuWentAgainstTheFloors) {
  RunResult run = MakeRun();
  // ephemera at 2 takes twice the floor's wall time: 0.5 x its rate, missed.
  run.sweep[2].wall_ms = 4000;
  for (size_t i = 0; i < run.sweep[2].samples.size(); ++i)
    run.sweep[2].samples[i].latency_ms = 1000.0 * static_cast<double>(i + 1);
  run.sweep[3].cpu = {1, 4, 2000, 3000, 0, 4, 180, 0, 40};
  Analysis a = Analyze(run);
  std::string found = BudgetLine(a, "cold starts at concurrency 2 (missed)");
  EXPECT_NE(found.find("500.0 ms of wall time and 800.0 ms of CPU (1.60 cores busy) against "
                       "the floor's 500.0 ms and 750.0 ms (1.50 cores)"),
            std::string::npos)
      << found;
  EXPECT_NE(found.find("the daemon 5.0 ms and the benchmark 2.0 ms (the floor's client 1.0 ms), "
                       "inside containers 50.0 ms (floor 45.0), the engine and the rest 742.0 "
                       "ms (floor 694.0), steal 0.0 ms (floor 10.0)"),
            std::string::npos)
      << found;
  // A level that was met says nothing of the kind.
  EXPECT_EQ(BudgetLine(a, "cold starts at concurrency 1 (missed)"), "");
}

TEST(BenchReport, GapsRestartAtEachBlock) {
  SweepLevel l;
  l.block_starts = {100, 1000};
  for (auto [block, end] : {std::pair{0, 300.0}, {0, 200.0}, {1, 1500.0}, {1, 1100.0}}) {
    Sample x;
    x.block = block;
    x.start_ms = end - 50;
    x.latency_ms = 50;
    l.samples.push_back(x);
  }
  std::vector<double> g = l.gaps();
  ASSERT_EQ(g.size(), 4u);
  EXPECT_DOUBLE_EQ(g[0], 100);  // 100 -> 200
  EXPECT_DOUBLE_EQ(g[1], 100);  // 200 -> 300
  EXPECT_DOUBLE_EQ(g[2], 100);  // 1000 -> 1100
  EXPECT_DOUBLE_EQ(g[3], 400);  // 1100 -> 1500
  PoolRate p;
  p.pool_size = 2;
  p.fresh_answers = {0, 1, 200, 450};
  std::vector<double> pg = p.gaps();  // the first two came from the full pool
  ASSERT_EQ(pg.size(), 2u);
  EXPECT_DOUBLE_EQ(pg[0], 199);
  EXPECT_DOUBLE_EQ(pg[1], 250);
  // In blocks, each starts on a full pool: its first pool_size answers are skipped too.
  p.fresh_answers = {0, 1, 200, 450, 1000, 1001, 1300};
  p.fresh_blocks = {0, 0, 0, 0, 1, 1, 1};
  pg = p.gaps();
  ASSERT_EQ(pg.size(), 3u);
  EXPECT_DOUBLE_EQ(pg[0], 199);
  EXPECT_DOUBLE_EQ(pg[1], 250);
  EXPECT_DOUBLE_EQ(pg[2], 299);  // 1001 -> 1300, not 450 -> 1000
}

TEST(BenchReport, TargetsWithoutDataAreNotEvaluated) {
  RunResult run;
  run.series.push_back(MakeSeries(kEphemera, "ephemera cold", 100, false));
  Analysis a = Analyze(run);
  ASSERT_EQ(a.targets.size(), 9u);  // 4 cold, 3 warm/pool, pool rate, throughput
  for (const TargetVerdict& t : a.targets) EXPECT_FALSE(t.evaluated) << t.name;
}

TEST(BenchReport, JsonHasEverySampleTheEnvironmentAndTheVerdicts) {
  RunResult run = MakeRun();
  json::Json j = json::Parse(JsonReport(run, Analyze(run)));
  ASSERT_TRUE(j);
  EXPECT_EQ(json::GetString(j.get(), "schema").value_or(""), kJsonSchema);
  const cJSON* cfg = Get(j.get(), "config");
  EXPECT_EQ(json::GetString(cfg, "function").value_or(""), "echo");
  EXPECT_EQ(json::GetString(Get(j.get(), "environment"), "cores").value_or(""), "2");
  const cJSON* series = Get(j.get(), "series");
  ASSERT_EQ(cJSON_GetArraySize(series), 5);
  const cJSON* e = cJSON_GetArrayItem(series, 0);
  EXPECT_EQ(json::GetString(e, "key").value_or(""), kEphemera);
  EXPECT_EQ(cJSON_GetArraySize(Get(e, "samples")), 21);
  EXPECT_EQ(json::GetNumber(Get(e, "summary"), "p50").value_or(0), 100);
  EXPECT_TRUE(json::GetNumber(Get(e, "median_ci"), "low").has_value());
  EXPECT_EQ(json::GetNumber(Get(e, "rejects"), "wrong_class_dropped").value_or(0), 1);
  const cJSON* s0 = cJSON_GetArrayItem(Get(e, "samples"), 0);
  EXPECT_TRUE(json::GetNumber(s0, "latency_ms").has_value());
  EXPECT_TRUE(json::GetNumber(Get(s0, "phases"), "create").has_value());
  EXPECT_TRUE(json::GetNumber(Get(Get(e, "phases"), "start"), "p50").has_value());
  ASSERT_EQ(cJSON_GetArraySize(Get(j.get(), "ratios")), 2);
  const cJSON* targets = Get(j.get(), "targets");
  ASSERT_EQ(cJSON_GetArraySize(targets), static_cast<int>(kTargets));
  EXPECT_EQ(json::GetBool(cJSON_GetArrayItem(targets, 1), "met"), false);
  const cJSON* sweep = Get(j.get(), "sweep");
  ASSERT_EQ(cJSON_GetArraySize(sweep), 5);
  EXPECT_EQ(json::GetNumber(cJSON_GetArrayItem(sweep, 0), "cold_starts_per_second").value_or(0), 2);
  EXPECT_EQ(json::GetNumber(Get(cJSON_GetArrayItem(sweep, 0), "cold_starts_per_second_ci"), "low")
                .value_or(0),
            2);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "cold_rate_ratios")), 2);
  EXPECT_EQ(json::GetNumber(Get(j.get(), "knee"), "knee").value_or(0), 1);
  EXPECT_EQ(cJSON_GetArraySize(Get(Get(j.get(), "knee"), "floor_levels")), 3);
  EXPECT_EQ(
      json::GetNumber(Get(Get(j.get(), "pool_rate"), "fresh_per_second"), "estimate").value_or(0),
      8);
  const cJSON* tp = Get(j.get(), "throughput");
  ASSERT_EQ(cJSON_GetArraySize(tp), 2);
  EXPECT_EQ(json::GetNumber(cJSON_GetArrayItem(tp, 1), "invokes_per_second").value_or(0), 12000);
  EXPECT_EQ(
      json::GetNumber(Get(cJSON_GetArrayItem(tp, 1), "cpu_us_per_invoke"), "daemon").value_or(0),
      50);
  EXPECT_FALSE(Get(cJSON_GetArrayItem(tp, 1), "latencies"));  // too many: summary only
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "throughput_profile")), 1);
  const cJSON* qm = Get(j.get(), "queue_memory");
  ASSERT_EQ(cJSON_GetArraySize(qm), 1);
  EXPECT_EQ(json::GetNumber(cJSON_GetArrayItem(qm, 0), "rss_kb").value_or(0), 18 * 1024);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "microbench")), 1);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "notes")), 1);
}

TEST(BenchReport, MarkdownHasTheSections) {
  RunResult run = MakeRun();
  std::string md = MarkdownReport(run, Analyze(run));
  for (const char* s :
       {"# ephemera benchmark",
        "## Headline",
        "## Targets",
        "## Where the time goes",
        "## Concurrency sweep",
        "## The engine's knee",
        "**Knee: 1 starts in flight.**",
        "## Warm and pool invocations",
        "| ephemera warm | 21 | 0.40 |",
        "## Pool refill rate",
        "| pool | 2 | 10 | 200.0 | 300.0 | 1.50 | 4.0 | 2.0 | 40.0 | 1.0 | 250.0 | 3.0 |",
        "| raw floor | 2 | 10 | 200.0 | 360.0 | 1.80 | 0.0 | 1.0 | 42.0 | 0.0 | 314.0 | 3.0 |",
        "the benchmark asked /healthz 26 times (2.0 per invocation). Of the replacements it "
        "saw become idle right after a short poll, 10 gave a time from their take: p10 109, "
        "p50 145, p90 181 ms; after a take it slept until 0.85 x 118 ms",
        "| ephemera cold @2 | 1 | 4 | 500.0 | 800.0 | 1.60 | 5.0 | 2.0 | 50.0 | 1.0 | 742.0 | 0.0 "
        "|",
        "## Warm throughput",
        "| 16 | 12000 |",
        "_raw_spin_unlock_irqrestore",
        "## Daemon memory with queued invocations",
        "| sync | 1001 | 1000 | 16.0 MB | 18.0 MB",
        "| ephemera / floor cold starts/s |",
        "| Redis µs | other µs | steal µs | daemon switches |",
        "| 2.0 KB | 1000 Event invocations still queued |",
        "## Samples not kept",
        "## Microbenchmarks",
        "## What each series runs",
        "## Environment",
        "![latency CDF per series](cdf.svg)",
        "(phases.svg)",
        "(sweep.svg)",
        "| ephemera cold | 21 | 100 |",
        "**missed**",
        "| ephemera / raw floor | 1.000 |"}) {
    EXPECT_NE(md.find(s), std::string::npos) << "missing: " << s;
  }
  std::string t = TerminalTable(run, Analyze(run));
  EXPECT_NE(t.find("[MISSED]"), std::string::npos);
}

// A run whose daemon had --precreate: cold at `cold_p50` against the floor's 100 ms, and
// only the first `with_create` cold samples had a create phase.
RunResult MakePrecreateRun(double cold_p50, int with_create) {
  RunResult run = MakeRun();
  run.config.precreate = true;
  Series& e = run.series[0];
  for (size_t i = 0; i < e.samples.size(); ++i) {
    e.samples[i].latency_ms += cold_p50 - 100;
    if (static_cast<int>(i) >= with_create) e.samples[i].phases.erase("create");
  }
  return run;
}

TEST(BenchReport, PrecreateAddsItsTargetFromTheSameRatioAndCountsTheCreates) {
  RunResult run = MakePrecreateRun(80, 3);
  Analysis a = Analyze(run);
  ASSERT_EQ(a.targets.size(), kTargets + 1);
  EXPECT_EQ(a.cold_samples, 21);
  EXPECT_EQ(a.cold_with_create, 3);
  EXPECT_NEAR(a.ratios[0].ci.estimate, 0.8, 1e-12);
  // Right after the 1.05 target, which says the daemon ran with --precreate.
  EXPECT_EQ(a.targets[0].name, "ephemera cold p50 <= 1.05 x raw Docker floor p50");
  EXPECT_NE(a.targets[0].margin.find("the daemon ran with --precreate"), std::string::npos);
  const TargetVerdict& t = a.targets[1];
  EXPECT_EQ(t.name, kPrecreateTargetName);
  EXPECT_TRUE(t.evaluated);
  EXPECT_TRUE(t.met);  // 0.80 <= 0.95
  EXPECT_NE(t.measured.find("0.800 x"), std::string::npos) << t.measured;
  EXPECT_NE(t.margin.find("met: 15.0 ms under the 95.0 ms allowed"), std::string::npos) << t.margin;
  EXPECT_NE(t.margin.find("3 of 21 cold samples had a create phase"), std::string::npos)
      << t.margin;
  // The create line of the time budget counts instead of comparing medians.
  bool create_line = false;
  for (const std::string& line : a.time_budget) {
    EXPECT_NE(line.rfind("create: ", 0), 0u) << line;
    if (line.rfind("create (--precreate): 3 of 21 cold samples had one", 0) == 0)
      create_line = true;
  }
  EXPECT_TRUE(create_line);

  RunResult slow = MakePrecreateRun(100, 21);
  Analysis b = Analyze(slow);
  const TargetVerdict& m = b.targets[1];
  EXPECT_TRUE(m.evaluated);
  EXPECT_FALSE(m.met);  // 1.00 > 0.95
  EXPECT_NE(m.margin.find("missed by 5.0 ms over the 95.0 ms allowed"), std::string::npos)
      << m.margin;
  EXPECT_NE(m.margin.find("21 of 21 cold samples"), std::string::npos) << m.margin;
}

TEST(BenchReport, PrecreateIsInTheJsonConfigTheMarkdownAndTheTable) {
  RunResult run = MakePrecreateRun(80, 3);
  Analysis a = Analyze(run);
  json::Json j = json::Parse(JsonReport(run, a));
  ASSERT_TRUE(j);
  EXPECT_EQ(json::GetBool(Get(j.get(), "config"), "precreate"), true);
  EXPECT_EQ(json::GetNumber(Get(j.get(), "precreate"), "cold_samples").value_or(0), 21);
  EXPECT_EQ(json::GetNumber(Get(j.get(), "precreate"), "cold_with_create").value_or(0), 3);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "targets")), static_cast<int>(kTargets + 1));
  std::string md = MarkdownReport(run, a);
  EXPECT_NE(md.find("**The daemon ran with `--precreate`**"), std::string::npos);
  EXPECT_NE(md.find("3 of 21 kept cold samples had a create phase"), std::string::npos);
  EXPECT_NE(md.find(std::string("| ") + kPrecreateTargetName + " | 0.800 x"), std::string::npos);
  std::string t = TerminalTable(run, a);
  EXPECT_NE(t.find("precreate: 3 of 21 cold samples had a create phase"), std::string::npos);
  EXPECT_NE(t.find(std::string("[met]    ") + kPrecreateTargetName), std::string::npos);
}

TEST(BenchReport, WithoutPrecreateNothingOfItIsReported) {
  RunResult run = MakeRun();
  Analysis a = Analyze(run);
  ASSERT_EQ(a.targets.size(), kTargets);
  EXPECT_EQ(Target(a, "cold with --precreate"), nullptr);
  EXPECT_EQ(a.targets[0].margin.find("precreate"), std::string::npos);
  json::Json j = json::Parse(JsonReport(run, a));
  ASSERT_TRUE(j);
  EXPECT_EQ(json::GetBool(Get(j.get(), "config"), "precreate"), false);
  EXPECT_FALSE(Get(j.get(), "precreate"));
  EXPECT_EQ(MarkdownReport(run, a).find("precreate"), std::string::npos);
  EXPECT_EQ(TerminalTable(run, a).find("precreate"), std::string::npos);
}

TEST(BenchReport, ChartsLeaveOutWarmAndPool) {
  RunResult run = MakeRun();
  Analysis a = Analyze(run);
  EXPECT_EQ(CdfSvg(run).find("ephemera warm"), std::string::npos);
  EXPECT_EQ(PhasesSvg(run, a).find("ephemera pool"), std::string::npos);
  EXPECT_NE(CdfSvg(run).find("ephemera cold"), std::string::npos);
}

TEST(BenchReport, SvgsAreWellFormedAndEscapeText) {
  RunResult run = MakeRun();
  run.series[2].label = "docker <run> & \"rm\"";
  Analysis a = Analyze(run);
  for (const std::string& svg : {CdfSvg(run), PhasesSvg(run, a), SweepSvg(a)}) {
    EXPECT_EQ(CheckXml(svg), "") << svg.substr(0, 400);
    EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  }
  EXPECT_NE(CdfSvg(run).find("docker &lt;run&gt; &amp; &quot;rm&quot;"), std::string::npos);
  EXPECT_NE(CdfSvg(run).find("<polyline"), std::string::npos);
  EXPECT_NE(PhasesSvg(run, a).find("<rect"), std::string::npos);
  // An empty run still draws valid charts.
  RunResult empty;
  Analysis none = Analyze(empty);
  EXPECT_EQ(CheckXml(CdfSvg(empty)), "");
  EXPECT_EQ(CheckXml(PhasesSvg(empty, none)), "");
  EXPECT_EQ(CheckXml(SweepSvg(none)), "");
}

TEST(BenchReport, XmlCheckCatchesBrokenDocuments) {
  EXPECT_EQ(CheckXml("<a><b x=\"1\"/>t &amp; u</a>"), "");
  EXPECT_NE(CheckXml("<a><b></a>"), "");
  EXPECT_NE(CheckXml("<a x=1></a>"), "");
  EXPECT_NE(CheckXml("<a>fish & chips</a>"), "");
  EXPECT_NE(CheckXml("<a></a><b></b>"), "");
}

TEST(BenchReport, WriteReportsCreatesEveryFile) {
  char tmpl[] = "/tmp/bench-report-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = std::string(tmpl) + "/nested/out";
  RunResult run = MakeRun();
  ASSERT_TRUE(WriteReports(run, Analyze(run), dir).ok());
  for (const char* f : {"results.json", "report.md", "cdf.svg", "phases.svg", "sweep.svg"}) {
    std::ifstream in(dir + "/" + f);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_FALSE(ss.str().empty()) << f;
  }
  EXPECT_EQ(std::system(("rm -rf '" + std::string(tmpl) + "'").c_str()), 0);
}

}  // namespace
}  // namespace ephemera::bench
