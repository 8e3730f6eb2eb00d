// A short real run of ephemera-bench against dockerd (integration): its own daemon, the
// five series, a two-level sweep with a floor-only knee level, the pool rate, two
// throughput levels, the queue memory stage. Checks the reports' structure, never the
// timings. A second, shorter run with --precreate.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "runtime/json/json.h"
#include "tests/bench/xml_check.h"

namespace {

using ephemera::bench::testing::CheckXml;
namespace json = ephemera::json;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f) != nullptr) out += buf;
  pclose(f);
  return out;
}

// What a run left behind, for a failed check: the containers with their labels and
// states, the run's notes (results.json) and its daemon's last lines.
std::string Leftovers(const std::string& out) {
  std::string text = Shell(
      "docker ps -a --filter label=ephemera.bench --format "
      "'{{.ID}} {{.Names}} {{.Status}} {{.CreatedAt}} {{.Labels}}'");
  json::Json j = json::Parse(Read(out + "/results.json"));
  const cJSON* note = nullptr;
  if (j) {
    cJSON_ArrayForEach(note, cJSON_GetObjectItemCaseSensitive(j.get(), "notes")) {
      if (cJSON_IsString(note)) text += std::string("note: ") + note->valuestring + "\n";
    }
  }
  std::string log = Read(out + "/daemon.log");
  if (log.size() > 4000) log = log.substr(log.size() - 4000);
  return text + "daemon.log (end):\n" + log;
}

const cJSON* Get(const cJSON* o, const char* key) {
  return cJSON_GetObjectItemCaseSensitive(o, key);
}

TEST(BenchSmoke, QuickRunWritesCompleteReports) {
  char tmpl[] = "/tmp/bench-smoke-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string out = tmpl;
  std::string cmd =
      std::string(EPHEMERA_BENCH_BIN) + " --quick --samples 3 --warmups 1" +
      " --sweep-samples 2 --sweep-levels 1,2 --knee-levels 1,3 --pool-rate-samples 3" +
      " --throughput-levels 1,2 --throughput-seconds 1 --queue-invocations 20" +
      " --no-perf --no-microbench" + " --registry " + EPHEMERA_SOURCE_DIR +
      "/registry/functions.json --out " + out + " > " + out + "/stdout.txt 2> " + out +
      "/stderr.txt";
  int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  ASSERT_EQ(WEXITSTATUS(rc), 0) << Read(out + "/stderr.txt") << Read(out + "/daemon.log");

  json::Json j = json::Parse(Read(out + "/results.json"));
  ASSERT_TRUE(j);
  EXPECT_EQ(json::GetString(j.get(), "schema").value_or(""), "ephemera-bench/1");
  const cJSON* env = Get(j.get(), "environment");
  for (const char* k : {"cpu_model", "cores", "kernel", "cgroup", "docker_server", "runc",
                        "storage_driver", "image_size_bytes", "load_avg_end"}) {
    EXPECT_TRUE(json::GetString(env, k).has_value()) << k;
  }
  const cJSON* series = Get(j.get(), "series");
  ASSERT_EQ(cJSON_GetArraySize(series), 5);
  const char* keys[] = {"ephemera", "raw_floor", "docker_run", "ephemera_warm", "ephemera_pool"};
  for (int i = 0; i < 5; ++i) {
    const cJSON* s = cJSON_GetArrayItem(series, i);
    EXPECT_EQ(json::GetString(s, "key").value_or(""), keys[i]);
    const cJSON* rejects = Get(s, "rejects");
    int kept = cJSON_GetArraySize(Get(s, "samples"));
    int failed = static_cast<int>(json::GetNumber(rejects, "failed").value_or(0));
    EXPECT_EQ(json::GetNumber(rejects, "warmups_discarded").value_or(0), 1) << keys[i];
    EXPECT_EQ(kept, 3) << keys[i] << " (" << failed << " failed)";
    if (i >= 3 && kept > 0) {  // warm and pool: the right kind, the handler's time apart
      const cJSON* s0 = cJSON_GetArrayItem(Get(s, "samples"), 0);
      EXPECT_EQ(json::GetString(s0, "start").value_or(""), i == 3 ? "warm" : "pool");
      EXPECT_TRUE(json::GetNumber(Get(s0, "phases"), "beyond_handler").has_value());
    }
    EXPECT_TRUE(json::GetNumber(Get(s, "summary"), "p50").has_value());
    EXPECT_TRUE(json::GetNumber(Get(s, "median_ci"), "low").has_value());
    if (i < 2 && kept > 0) {
      const cJSON* phases = Get(cJSON_GetArrayItem(Get(s, "samples"), 0), "phases");
      EXPECT_TRUE(json::GetNumber(phases, "create").has_value()) << keys[i];
      EXPECT_TRUE(json::GetNumber(phases, "start").has_value()) << keys[i];
    }
  }
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "ratios")), 2);
  // 4 cold, 3 warm/pool, 2 cold rates, pool rate, throughput, 2 queue memory.
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "targets")), 13);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "sweep")), 5);  // 2 levels x 2 series + floor at 3
  EXPECT_EQ(cJSON_GetArraySize(Get(Get(j.get(), "knee"), "floor_levels")), 3);
  EXPECT_EQ(json::GetNumber(Get(j.get(), "pool_rate"), "fresh").value_or(0) +
                json::GetNumber(Get(j.get(), "pool_rate"), "not_fresh").value_or(0),
            3);
  // Where the refills' time went: each series' CPU per container, from /proc.
  for (const char* series : {"pool_cpu", "floor_cpu"}) {
    const cJSON* c = Get(Get(j.get(), "pool_rate"), series);
    EXPECT_EQ(json::GetNumber(c, "containers").value_or(0), 3) << series;
    EXPECT_GT(json::GetNumber(c, "machine_ms").value_or(0), 0) << series;
    EXPECT_GT(json::GetNumber(c, "wall_ms").value_or(0), 0) << series;
  }
  // The daemon's CPU was read (-1: unknown). It may be 0: /proc counts 10 ms ticks, and
  // three refills can cost the daemon less than one on a fast machine.
  EXPECT_GE(json::GetNumber(Get(Get(j.get(), "pool_rate"), "pool_cpu"), "daemon_ms").value_or(-1),
            0);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "throughput")), 2);
  const cJSON* qm = Get(j.get(), "queue_memory");
  ASSERT_EQ(cJSON_GetArraySize(qm), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(json::GetNumber(cJSON_GetArrayItem(qm, i), "queued").value_or(0), 20) << i;
    EXPECT_GT(json::GetNumber(cJSON_GetArrayItem(qm, i), "rss_kb").value_or(0), 0) << i;
  }

  std::string md = Read(out + "/report.md");
  for (const char* s :
       {"## Headline", "## Targets", "## Where the time goes", "## Concurrency sweep",
        "## Environment", "## Warm and pool invocations", "## Pool refill rate",
        "## The engine's knee", "## Warm throughput", "## Daemon memory with queued invocations",
        "CPU per container started", "| pool | 1 | 3 |", "| raw floor | 1 | 3 |"}) {
    EXPECT_NE(md.find(s), std::string::npos) << s;
  }
  for (const char* f : {"cdf.svg", "phases.svg", "sweep.svg"}) {
    std::string svg = Read(out + "/" + f);
    EXPECT_FALSE(svg.empty()) << f;
    EXPECT_EQ(CheckXml(svg), "") << f;
  }
  EXPECT_NE(Read(out + "/stdout.txt").find("ephemera / raw floor"), std::string::npos);

  // Nothing left behind: no container of ours, no daemon.
  EXPECT_EQ(Shell("docker ps -aq --filter label=ephemera.bench"), "") << Leftovers(out);
  EXPECT_EQ(std::system(("rm -rf '" + out + "'").c_str()), 0);
}

// --precreate: the daemon creates each cold start's successor ahead, the cold samples are
// kept without a create phase, settling leaves that one container, the report has the
// 0.95 target, and the daemon's containers are gone at the end.
TEST(BenchSmoke, PrecreateRunKeepsColdSamplesWithoutCreateAndLeavesNothing) {
  char tmpl[] = "/tmp/bench-smoke-precreate-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string out = tmpl;
  std::string cmd = std::string(EPHEMERA_BENCH_BIN) +
                    " --precreate --samples 3 --warmups 1 --sweep-samples 0" +
                    " --pool-rate-samples 0 --throughput-levels 0 --queue-invocations 0" +
                    " --no-docker-run --no-warm-pool --no-microbench --registry " +
                    EPHEMERA_SOURCE_DIR + "/registry/functions.json --out " + out + " > " + out +
                    "/stdout.txt 2> " + out + "/stderr.txt";
  int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  std::string err = Read(out + "/stderr.txt");
  ASSERT_EQ(WEXITSTATUS(rc), 0) << err << Read(out + "/daemon.log");

  json::Json j = json::Parse(Read(out + "/results.json"));
  ASSERT_TRUE(j);
  EXPECT_EQ(json::GetBool(Get(j.get(), "config"), "precreate"), true);
  EXPECT_NE(
      json::GetString(Get(j.get(), "config"), "command_line").value_or("").find("--precreate"),
      std::string::npos);
  const cJSON* e = cJSON_GetArrayItem(Get(j.get(), "series"), 0);
  EXPECT_EQ(json::GetString(e, "key").value_or(""), "ephemera");
  EXPECT_EQ(cJSON_GetArraySize(Get(e, "samples")), 3);
  EXPECT_EQ(json::GetNumber(Get(e, "rejects"), "wrong_class_dropped").value_or(-1), 0);
  // The warm-up round made the first container; every kept sample found one ahead.
  EXPECT_EQ(json::GetNumber(Get(j.get(), "precreate"), "cold_samples").value_or(0), 3);
  EXPECT_EQ(json::GetNumber(Get(j.get(), "precreate"), "cold_with_create").value_or(-1), 0);
  bool target = false;
  const cJSON* t = nullptr;
  cJSON_ArrayForEach(t, Get(j.get(), "targets")) {
    if (json::GetString(t, "name").value_or("").rfind("cold with --precreate", 0) == 0)
      target = json::GetBool(t, "evaluated").value_or(false);
  }
  EXPECT_TRUE(target);
  // Settling never timed out waiting for the created container (or for anything else).
  for (const char* note : {"were not settled", "were still there", "was not quiet"})
    EXPECT_EQ(Read(out + "/results.json").find(note), std::string::npos) << note;
  EXPECT_NE(Read(out + "/report.md").find("The daemon ran with `--precreate`"), std::string::npos);

  // Nothing left behind: neither the floor's containers nor the daemon's (its pid is in
  // the progress line "daemon ... (pid N, log ...)").
  EXPECT_EQ(Shell("docker ps -aq --filter label=ephemera.bench"), "") << Leftovers(out);
  size_t at = err.find("(pid ");
  ASSERT_NE(at, std::string::npos) << err;
  std::string pid = err.substr(at + 5, err.find(',', at) - at - 5);
  EXPECT_EQ(Shell("docker ps -aq --filter label=ephemera.daemon=" + pid), "") << pid;
  EXPECT_EQ(std::system(("rm -rf '" + out + "'").c_str()), 0);
}

}  // namespace
