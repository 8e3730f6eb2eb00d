// A short real run of ephemera-bench against dockerd (integration): its own daemon, the
// three series, a two-level sweep. Checks the reports' structure, never the timings.
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

const cJSON* Get(const cJSON* o, const char* key) {
  return cJSON_GetObjectItemCaseSensitive(o, key);
}

TEST(BenchSmoke, QuickRunWritesCompleteReports) {
  char tmpl[] = "/tmp/bench-smoke-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string out = tmpl;
  std::string cmd = std::string(EPHEMERA_BENCH_BIN) + " --quick --samples 3 --warmups 1" +
                    " --sweep-samples 2 --sweep-levels 1,2 --no-microbench" + " --registry " +
                    EPHEMERA_SOURCE_DIR + "/registry/functions.json --out " + out + " > " + out +
                    "/stdout.txt 2> " + out + "/stderr.txt";
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
  ASSERT_EQ(cJSON_GetArraySize(series), 3);
  const char* keys[] = {"ephemera", "raw_floor", "docker_run"};
  for (int i = 0; i < 3; ++i) {
    const cJSON* s = cJSON_GetArrayItem(series, i);
    EXPECT_EQ(json::GetString(s, "key").value_or(""), keys[i]);
    const cJSON* rejects = Get(s, "rejects");
    int kept = cJSON_GetArraySize(Get(s, "samples"));
    int failed = static_cast<int>(json::GetNumber(rejects, "failed").value_or(0));
    EXPECT_EQ(json::GetNumber(rejects, "warmups_discarded").value_or(0), 1) << keys[i];
    EXPECT_EQ(kept, 3) << keys[i] << " (" << failed << " failed)";
    EXPECT_TRUE(json::GetNumber(Get(s, "summary"), "p50").has_value());
    EXPECT_TRUE(json::GetNumber(Get(s, "median_ci"), "low").has_value());
    if (i < 2 && kept > 0) {
      const cJSON* phases = Get(cJSON_GetArrayItem(Get(s, "samples"), 0), "phases");
      EXPECT_TRUE(json::GetNumber(phases, "create").has_value()) << keys[i];
      EXPECT_TRUE(json::GetNumber(phases, "start").has_value()) << keys[i];
    }
  }
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "ratios")), 2);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "targets")), 4);
  EXPECT_EQ(cJSON_GetArraySize(Get(j.get(), "sweep")), 4);  // 2 levels x 2 series

  std::string md = Read(out + "/report.md");
  for (const char* s :
       {"## Headline", "## Targets", "## Where the time goes", "## Concurrency sweep",
        "## Environment", "warm and pool invocations are not measured"}) {
    EXPECT_NE(md.find(s), std::string::npos) << s;
  }
  for (const char* f : {"cdf.svg", "phases.svg", "sweep.svg"}) {
    std::string svg = Read(out + "/" + f);
    EXPECT_FALSE(svg.empty()) << f;
    EXPECT_EQ(CheckXml(svg), "") << f;
  }
  EXPECT_NE(Read(out + "/stdout.txt").find("ephemera / raw floor"), std::string::npos);

  // Nothing left behind: no container of ours, no daemon.
  EXPECT_EQ(Shell("docker ps -aq --filter label=ephemera.bench"), "");
  EXPECT_EQ(std::system(("rm -rf '" + out + "'").c_str()), 0);
}

}  // namespace
