// Tests of what the runner asks the engine to run: the raw floor's container is the
// daemon's, relabelled; the docker run command line per function mode; with --precreate,
// which cold replies are kept and what settling accepts between samples.
#include "bench/runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

#include "bench/probes.h"
#include "runtime/sandbox/container_spec.h"

namespace ephemera::bench {
namespace {

registry::FunctionSpec ExecFunction() {
  registry::FunctionSpec fn;
  fn.name = "shout";
  fn.image = "ephemera/shout:latest";
  fn.mode = registry::ShimMode::kExec;
  fn.command = {"/usr/local/bin/shout", "--loud"};
  fn.memory_mb = 256;
  fn.environment = {{"GREETING", "hi"}};
  fn.network = "host";
  return fn;
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(BenchRunner, FloorSpecIsTheDaemonsContainerRelabelled) {
  registry::FunctionSpec fn = ExecFunction();
  docker::ImageConfig image;
  docker::ContainerSpec floor;
  ASSERT_TRUE(FloorSpec(fn, image, "/opt/shim", "4242", "127.0.0.1:1234", &floor).ok());

  sandbox::ContainerParams p;
  p.runtime_api_address = "127.0.0.1:1234";
  p.environment_id = "00000000-0000-4000-8000-000000000000";
  p.shim_path = "/opt/shim";
  docker::ContainerSpec daemon;
  ASSERT_TRUE(sandbox::BuildContainerSpec(fn, image, p, &daemon).ok());

  EXPECT_EQ(floor.image, daemon.image);
  EXPECT_EQ(floor.entrypoint, daemon.entrypoint);
  EXPECT_EQ(floor.cmd, daemon.cmd);
  EXPECT_EQ(floor.binds, daemon.binds);
  EXPECT_EQ(floor.network_mode, daemon.network_mode);
  EXPECT_EQ(floor.memory_bytes, daemon.memory_bytes);
  EXPECT_EQ(floor.working_dir, daemon.working_dir);
  EXPECT_EQ(floor.env.size(), daemon.env.size());
  EXPECT_TRUE(Has(floor.env, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:1234"));
  EXPECT_TRUE(Has(floor.env, "EPHEMERA_MODE=exec"));
  EXPECT_TRUE(Has(floor.env, "GREETING=hi"));
  EXPECT_EQ(floor.entrypoint, std::vector<std::string>{sandbox::kShimMountPoint});
  // Only the labels and the name are the benchmark's own.
  EXPECT_EQ(floor.labels.count("ephemera.managed"), 0u);
  EXPECT_EQ(floor.labels.at("ephemera.bench"), "4242");
  EXPECT_EQ(floor.name.rfind("ephemera-bench-shout-", 0), 0u);
  // Each sample gets a fresh request id, so names differ.
  docker::ContainerSpec again;
  ASSERT_TRUE(FloorSpec(fn, image, "/opt/shim", "4242", "127.0.0.1:1235", &again).ok());
  EXPECT_NE(again.name, floor.name);
}

// An isolated function's floor joins a holder and gets the daemon's socket folder and
// variables, as the daemon's own container would.
TEST(BenchRunner, IsolatedFloorSpecJoinsTheHolderLikeTheDaemonsContainer) {
  registry::FunctionSpec fn = ExecFunction();
  fn.network = registry::kDefaultNetwork;
  ASSERT_TRUE(FloorIsolated(fn));
  docker::ImageConfig image;
  FloorEndpoint endpoint;
  endpoint.holder_id = "holder-1";
  endpoint.runtime_dir = "/tmp/bench-1/floor-0";
  docker::ContainerSpec floor;
  ASSERT_TRUE(FloorSpec(fn, image, "/opt/shim", "4242", endpoint, &floor).ok());
  sandbox::ContainerParams p;
  p.environment_id = "00000000-0000-4000-8000-000000000000";
  p.shim_path = "/opt/shim";
  p.holder_id = endpoint.holder_id;
  p.runtime_dir = endpoint.runtime_dir;
  docker::ContainerSpec daemon;
  ASSERT_TRUE(sandbox::BuildContainerSpec(fn, image, p, &daemon).ok());
  EXPECT_EQ(floor.network_mode, "container:holder-1");
  EXPECT_EQ(floor.network_mode, daemon.network_mode);
  EXPECT_EQ(floor.binds, daemon.binds);
  EXPECT_EQ(floor.env.size(), daemon.env.size());
  EXPECT_TRUE(Has(floor.env, "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001"));
  EXPECT_TRUE(Has(floor.env, "EPHEMERA_RUNTIME_SOCKET=/run/ephemera/runtime.sock"));
  EXPECT_EQ(floor.labels.at("ephemera.bench"), "4242");
}

TEST(BenchRunner, DockerRunCommandFollowsTheFunctionMode) {
  BenchOptions o;
  std::string why;
  registry::FunctionSpec exec = ExecFunction();
  auto argv = DockerRunArgv(o, exec, "7", &why);
  ASSERT_FALSE(argv.empty()) << why;
  EXPECT_EQ(argv[0], "/usr/bin/docker");
  EXPECT_TRUE(Has(argv, "--rm"));
  EXPECT_TRUE(Has(argv, "256m"));
  EXPECT_TRUE(Has(argv, "ephemera.bench=7"));
  auto ep = std::find(argv.begin(), argv.end(), "--entrypoint");
  ASSERT_NE(ep, argv.end());
  EXPECT_EQ(*(ep + 1), "/usr/local/bin/shout");
  EXPECT_EQ(argv.back(), "--loud");

  registry::FunctionSpec echo;
  echo.name = "echo";
  echo.image = "ephemera/echo:latest";
  echo.mode = registry::ShimMode::kNative;
  argv = DockerRunArgv(o, echo, "7", &why);
  ASSERT_GE(argv.size(), 2u);
  EXPECT_EQ(argv[argv.size() - 2], "ephemera/echo:latest");
  EXPECT_EQ(argv.back(), "--stdio");

  registry::FunctionSpec other = echo;
  other.image = "someone/lambda:latest";
  other.mode = registry::ShimMode::kPassthrough;
  EXPECT_TRUE(DockerRunArgv(o, other, "7", &why).empty());
  EXPECT_NE(why.find("--docker-run-args"), std::string::npos);
  o.docker_run_args_set = true;
  o.docker_run_args = {"--once"};
  argv = DockerRunArgv(o, other, "7", &why);
  ASSERT_FALSE(argv.empty());
  EXPECT_EQ(argv.back(), "--once");
}

Sample ColdReply(std::map<std::string, double> phases, std::string kind = "cold") {
  Sample s;
  s.start_kind = std::move(kind);
  s.phases = std::move(phases);
  return s;
}

TEST(BenchRunner, AColdStartFromTheContainerCreatedAheadHasStartButNoCreate) {
  EXPECT_TRUE(ColdStartFromAhead(ColdReply({{"start", 150}, {"init", 0}, {"total", 160}})));
  // Created on the cold path: the probe keeps it anyway; not one from ahead.
  EXPECT_FALSE(ColdStartFromAhead(ColdReply({{"create", 40}, {"start", 150}, {"total", 200}})));
  EXPECT_FALSE(ColdStartFromAhead(ColdReply({{"total", 0.3}, {"handler", 0.1}}, "warm")));
  EXPECT_FALSE(ColdStartFromAhead(ColdReply({{"start", 150}, {"total", 160}}, "pool")));
  EXPECT_FALSE(ColdStartFromAhead(ColdReply({{"total", 160}})));  // no container started
  EXPECT_FALSE(ColdStartFromAhead(ColdReply({{"start", 150}})));  // no total: not answered
}

docker::ContainerSummary Row(const std::string& state, const std::string& daemon = "42") {
  docker::ContainerSummary row;
  row.id = state + daemon;
  row.state = state;
  row.labels = {
      {"ephemera.managed", "1"}, {"ephemera.function", "echo"}, {"ephemera.daemon", daemon}};
  return row;
}

TEST(BenchRunner, SettlingWithoutPrecreateWantsNoContainerAtAll) {
  EXPECT_TRUE(ColdContainersSettled({}, "42", false, false));
  EXPECT_FALSE(ColdContainersSettled({Row("created")}, "42", false, false));
  EXPECT_FALSE(ColdContainersSettled({Row("removing")}, "42", false, true));
  // Another daemon's containers are not ours to wait for; without a daemon, all are.
  EXPECT_TRUE(ColdContainersSettled({Row("running", "43")}, "42", false, false));
  EXPECT_FALSE(ColdContainersSettled({Row("running", "43")}, "", false, false));
}

TEST(BenchRunner, SettlingWithPrecreateAcceptsExactlyTheOneCreatedContainer) {
  // Before the first cold start there is none; after one, the daemon's must be there.
  EXPECT_TRUE(ColdContainersSettled({}, "42", true, false));
  EXPECT_FALSE(ColdContainersSettled({}, "42", true, true));
  EXPECT_TRUE(ColdContainersSettled({Row("created")}, "42", true, false));
  EXPECT_TRUE(ColdContainersSettled({Row("created")}, "42", true, true));
  // Nothing more: a second created one, or the previous sample's container still there in
  // any state a started container goes through.
  EXPECT_FALSE(ColdContainersSettled({Row("created"), Row("created")}, "42", true, true));
  for (const char* state : {"running", "exited", "removing", "dead", "paused", "restarting"}) {
    EXPECT_FALSE(ColdContainersSettled({Row("created"), Row(state)}, "42", true, true)) << state;
    EXPECT_FALSE(ColdContainersSettled({Row(state)}, "42", true, false)) << state;
  }
  // Another daemon's created container is not the one ours made ahead.
  EXPECT_FALSE(ColdContainersSettled({Row("created", "43")}, "42", true, true));
  EXPECT_TRUE(ColdContainersSettled({Row("created", "43"), Row("created")}, "42", true, true));
}

TEST(BenchRunner, ThePoolPollSleepsUntilShortlyBeforeTheOldestReplacementCanBeReady) {
  PoolPollPlan plan;
  plan.StartBlock(2);
  // Nothing is known yet: every 2 ms.
  EXPECT_DOUBLE_EQ(plan.DelayMs(0), 2);
  plan.Take(0);  // the full pool's two: no replacement time from them
  plan.Take(1);
  EXPECT_DOUBLE_EQ(plan.refill_min_ms(), 0);
  EXPECT_DOUBLE_EQ(plan.DelayMs(2), 2);
  // The first replacement is seen 2 ms after a poll that saw none: 300 ms after the take
  // at 0.
  plan.SawNoneIdle(298, 2);
  plan.Take(300);
  EXPECT_DOUBLE_EQ(plan.refill_min_ms(), 300);
  // The oldest take still waiting is the one at 1: due at about 301, so 2 ms.
  EXPECT_DOUBLE_EQ(plan.DelayMs(300), 2);
  plan.SawNoneIdle(300, 2);
  plan.Take(303);
  EXPECT_DOUBLE_EQ(plan.refill_min_ms(), 300);  // 302 is not shorter
  // Now the oldest is the take at 300: sleep until 300 + 0.85 x 300 = 555.
  EXPECT_DOUBLE_EQ(plan.DelayMs(304), 251);
  // Woken at 555 after the long sleep, it sees one idle at once: the replacement may have
  // waited unseen, so its time does not count.
  plan.SawNoneIdle(304, 251);
  plan.Take(560);
  EXPECT_DOUBLE_EQ(plan.refill_min_ms(), 300);
  // A shorter one seen right after a short wait does.
  plan.SawNoneIdle(580, 2);
  plan.Take(582);  // 582 - 303 = 279
  EXPECT_DOUBLE_EQ(plan.refill_min_ms(), 279);
  // A poll long after the point the sleep aims at asks again in 2 ms.
  EXPECT_DOUBLE_EQ(plan.DelayMs(10000), 2);
  // A new block starts from its full pool again, the times learnt kept.
  plan.StartBlock(2);
  EXPECT_DOUBLE_EQ(plan.DelayMs(0), 2);
  plan.Take(0);
  plan.Take(1);
  EXPECT_DOUBLE_EQ(plan.DelayMs(2), 0 + 0.85 * 279 - 2);
}

// One replacement matched to the wrong take looks very fast; with five or more times the
// sleep aims at their 20th percentile, so that outlier does not turn every later wait into
// polls every 2 ms.
TEST(BenchRunner, ThePoolPollAimsAtTheTwentiethPercentileOnceItHasFiveTimes) {
  PoolPollPlan plan;
  plan.StartBlock(0);
  double now = 0;
  plan.Take(now);  // no replacement time from the first take
  for (double took : {20.0, 300.0, 310.0, 320.0}) {
    now += took;
    plan.SawNoneIdle(now - 2, 2);
    plan.Take(now);
  }
  ASSERT_EQ(plan.refills().size(), 4u);
  EXPECT_DOUBLE_EQ(plan.basis_ms(), 20) << "under five times, the shortest";
  now += 330;
  plan.SawNoneIdle(now - 2, 2);
  plan.Take(now);
  ASSERT_EQ(plan.refills().size(), 5u);
  EXPECT_DOUBLE_EQ(plan.refill_min_ms(), 20);
  // 20, 300, 310, 320, 330: the 20th percentile is 20 + 0.8 x (300 - 20) = 244.
  EXPECT_DOUBLE_EQ(plan.basis_ms(), 244);
  EXPECT_DOUBLE_EQ(plan.DelayMs(now + 1), 0.85 * 244 - 1);
}

}  // namespace
}  // namespace ephemera::bench
