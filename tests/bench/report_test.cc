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
  ASSERT_EQ(a.series.size(), 3u);
  EXPECT_DOUBLE_EQ(a.Find(kEphemera)->summary.p50, 100);
  ASSERT_EQ(a.ratios.size(), 2u);
  EXPECT_DOUBLE_EQ(a.ratios[0].ci.estimate, 1.0);
  EXPECT_NEAR(a.ratios[1].ci.estimate, 100.0 / 150.0, 1e-12);
  ASSERT_EQ(a.targets.size(), 4u);
  EXPECT_TRUE(a.targets[0].evaluated);
  EXPECT_TRUE(a.targets[0].met);  // 1.0 <= 1.05
  EXPECT_TRUE(a.targets[1].evaluated);
  EXPECT_FALSE(a.targets[1].met);  // 0.667 > 0.5: 100 ms against 75 allowed
  EXPECT_NE(a.targets[1].margin.find("missed by 25.0 ms"), std::string::npos)
      << a.targets[1].margin;
  EXPECT_TRUE(a.targets[2].met);  // overhead 0.2 ms
  EXPECT_TRUE(a.targets[3].met);  // 71k > 50k
  EXPECT_EQ(a.sweep.size(), 4u);
  EXPECT_DOUBLE_EQ(a.sweep[0].per_second, 2.0);  // 4 samples in 2 s
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

TEST(BenchReport, TargetsWithoutDataAreNotEvaluated) {
  RunResult run;
  run.series.push_back(MakeSeries(kEphemera, "ephemera cold", 100, false));
  Analysis a = Analyze(run);
  ASSERT_EQ(a.targets.size(), 4u);
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
  ASSERT_EQ(cJSON_GetArraySize(series), 3);
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
  ASSERT_EQ(cJSON_GetArraySize(targets), 4);
  EXPECT_EQ(json::GetBool(cJSON_GetArrayItem(targets, 1), "met"), false);
  const cJSON* sweep = Get(j.get(), "sweep");
  ASSERT_EQ(cJSON_GetArraySize(sweep), 4);
  EXPECT_EQ(json::GetNumber(cJSON_GetArrayItem(sweep, 0), "cold_starts_per_second").value_or(0), 2);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "microbench")), 1);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "notes")), 1);
}

TEST(BenchReport, MarkdownHasTheSections) {
  RunResult run = MakeRun();
  std::string md = MarkdownReport(run, Analyze(run));
  for (const char* s :
       {"# ephemera cold-start benchmark", "## Headline", "## Targets", "## Where the time goes",
        "## Concurrency sweep", "## Samples not kept", "## Microbenchmarks",
        "## What each series runs", "## Environment", "![latency CDF per series](cdf.svg)",
        "(phases.svg)", "(sweep.svg)", "| ephemera cold | 21 | 100 |", "**missed**",
        "| ephemera / raw floor | 1.000 |"}) {
    EXPECT_NE(md.find(s), std::string::npos) << "missing: " << s;
  }
  std::string t = TerminalTable(run, Analyze(run));
  EXPECT_NE(t.find("[MISSED]"), std::string::npos);
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
