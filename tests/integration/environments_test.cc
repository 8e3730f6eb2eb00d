// Execution environments end to end (issue 8): warm reuse, pools used once and refilled,
// admission with a bounded queue, images that change under a tag, the auto mode, memory
// limits, and shutdown with kept environments. Real daemon, real dockerd, real HTTP.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/core/base64.h"
#include "runtime/json/json.h"
#include "tests/integration/daemon_fixture.h"

namespace ephemera::testing {
namespace {

int Docker(const std::string& args) {
  std::string cmd = "/usr/bin/docker " + args + " >/dev/null 2>&1 </dev/null";
  return std::system(cmd.c_str());
}

std::vector<std::string> ContainersOf(const std::string& function) {
  return ContainersWithLabel("ephemera.function=" + function);
}

class Environments : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon;
    ASSERT_EQ(daemon_->Start(), "");
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(daemon_->Stop(), 0) << daemon_->log();
    delete daemon_;
    daemon_ = nullptr;
    // Only this process's tags: ctest runs each test as a process of its own, two at a
    // time, so removing a shared tag here pulled the image from under another test's
    // daemon (RebuiltTag... failed with "image ... not found" twice that way).
    Docker("rmi " + Tag("retag") + " " + Tag("gone"));
  }

  // A tag of this process only (see TearDownTestSuite).
  static std::string Tag(const std::string& name) {
    return "ephemera-test/" + name + "-p" + std::to_string(getpid()) + ":latest";
  }

  // CreateFunction with ephemera settings as environment variables.
  static HttpResult Create(const std::string& name, const std::string& image,
                           const std::string& variables, const std::string& extra = "") {
    std::string body = R"({"FunctionName":")" + name + R"(","Code":{"ImageUri":")" + image +
                       R"("},"Timeout":10)" + extra + R"(,"Environment":{"Variables":{)" +
                       variables + "}}}";
    return Http("POST", daemon_->url() + "/2015-03-31/functions", body);
  }
  // A busybox function (exec mode) that writes "log-<event>" to stderr and answers with the
  // event; `variables` after EPHEMERA_MODE (the policy).
  static HttpResult CreateLogger(const std::string& name, const std::string& variables) {
    return Create(
        name, "ephemera/busybox:latest", R"("EPHEMERA_MODE":"exec",)" + variables,
        R"(,"ImageConfig":{"EntryPoint":["sh","-c","read x; echo log-$x >&2; echo $x"]})");
  }
  static void Delete(const std::string& name) {
    Http("DELETE", daemon_->url() + "/2015-03-31/functions/" + name);
  }
  static int IdleEnvironments() {
    HttpResult r = Http("GET", daemon_->url() + "/healthz");
    auto j = json::Parse(r.body);
    return j ? static_cast<int>(json::GetNumber(j.get(), "idle_environments").value_or(-1)) : -1;
  }

  static Daemon* daemon_;
};
Daemon* Environments::daemon_ = nullptr;

TEST_F(Environments, WarmSecondCallHasNoStartAndUsesTheSameContainer) {
  ASSERT_EQ(Create("warm-echo", "ephemera/echo:latest",
                   R"("EPHEMERA_MODE":"native","EPHEMERA_POLICY":"warm")")
                .status,
            201);
  HttpResult first = daemon_->Invoke("warm-echo", R"({"n":1})");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.body, R"({"n":1})");
  EXPECT_EQ(first.Header("x-ephemera-start"), "cold");
  EXPECT_NE(first.Header("server-timing").find("start;dur="), std::string::npos);
  auto after_first = ContainersOf("warm-echo");
  ASSERT_EQ(after_first.size(), 1u) << "the warm environment is kept";

  HttpResult second = daemon_->Invoke("warm-echo", R"({"n":2})");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.body, R"({"n":2})");
  EXPECT_EQ(second.Header("x-ephemera-start"), "warm");
  std::string timing = second.Header("server-timing");
  EXPECT_EQ(timing.find("create;"), std::string::npos) << timing;
  EXPECT_EQ(timing.find("start;"), std::string::npos) << timing;
  EXPECT_NE(timing.find("handler;dur="), std::string::npos) << timing;
  EXPECT_EQ(ContainersOf("warm-echo"), after_first) << "the same container served both";
  EXPECT_EQ(first.Header("x-ephemera-environment"), second.Header("x-ephemera-environment"));
  Delete("warm-echo");
  EXPECT_TRUE(WaitUntil([] { return ContainersOf("warm-echo").empty(); }, 10000))
      << "deleting the function drains its warm environment";
}

TEST_F(Environments, LogTailIsPerInvocationInAKeptEnvironment) {
  ASSERT_EQ(CreateLogger("warm-logs", R"("EPHEMERA_POLICY":"warm")").status, 201);
  std::vector<std::string> tail = {"X-Amz-Log-Type: Tail"};
  for (const char* n : {"first", "second", "third"}) {
    HttpResult r = daemon_->Invoke("warm-logs", std::string("\"") + n + "\"", tail);
    ASSERT_EQ(r.status, 200) << r.body;
    auto log = Base64Decode(r.Header("x-amz-log-result"));
    ASSERT_TRUE(log.has_value());
    EXPECT_NE(log->find(std::string("log-\"") + n + "\""), std::string::npos) << *log;
    for (const char* other : {"first", "second", "third"}) {
      if (std::string(other) == n) continue;
      EXPECT_EQ(log->find(std::string("log-\"") + other), std::string::npos)
          << "the tail of " << n << " holds " << other << "'s output: " << *log;
    }
    EXPECT_NE(log->find("REPORT RequestId: "), std::string::npos);
  }
  Delete("warm-logs");
}

// A kept environment attaches only when an invocation first asks for its log tail
// (environment.cc AttachThenDeliver): that invocation's output is all in its tail, and so is
// each later one's, in the same container.
TEST_F(Environments, AKeptEnvironmentAttachesWhenAnInvocationFirstAsksForItsTail) {
  ASSERT_EQ(CreateLogger("warm-late-logs", R"("EPHEMERA_POLICY":"warm")").status, 201);
  HttpResult plain = daemon_->Invoke("warm-late-logs", "\"a\"");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(plain.Header("x-amz-log-result"), "") << "no tail asked, none given";
  const std::string environment = plain.Header("x-ephemera-environment");
  std::vector<std::string> tail = {"X-Amz-Log-Type: Tail"};
  for (const char* n : {"b", "c"}) {
    HttpResult r = daemon_->Invoke("warm-late-logs", std::string("\"") + n + "\"", tail);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Header("x-ephemera-start"), "warm");
    EXPECT_EQ(r.Header("x-ephemera-environment"), environment) << "the same environment";
    auto log = Base64Decode(r.Header("x-amz-log-result"));
    ASSERT_TRUE(log.has_value());
    EXPECT_NE(log->find(std::string("log-\"") + n + "\""), std::string::npos) << *log;
    EXPECT_EQ(log->find("log-\"a\""), std::string::npos) << "a's output is not b's or c's";
    if (std::string(n) == "c") {
      EXPECT_EQ(log->find("log-\"b\""), std::string::npos) << *log;
    }
  }
  Delete("warm-late-logs");
}

// A pool environment starts without waiting for its attach (environment.cc WatchContainer)
// and is ready only once it is answered: its one invocation's output is all in its tail.
TEST_F(Environments, LogTailOfAPoolEnvironmentHoldsItsOneInvocation) {
  ASSERT_EQ(
      CreateLogger("pool-logs", R"("EPHEMERA_POLICY":"pool","EPHEMERA_POOL_SIZE":"2")").status,
      201);
  auto pool_full = [] { return ContainersOf("pool-logs").size() == 2 && IdleEnvironments() >= 2; };
  std::vector<std::string> tail = {"X-Amz-Log-Type: Tail"};
  for (const char* n : {"first", "second", "third"}) {
    ASSERT_TRUE(WaitUntil(pool_full, 20000)) << "the pool fills to 2";
    HttpResult r = daemon_->Invoke("pool-logs", std::string("\"") + n + "\"", tail);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Header("x-ephemera-start"), "pool");
    auto log = Base64Decode(r.Header("x-amz-log-result"));
    ASSERT_TRUE(log.has_value());
    EXPECT_NE(log->find(std::string("log-\"") + n + "\""), std::string::npos) << *log;
    EXPECT_NE(log->find("REPORT RequestId: "), std::string::npos) << *log;
  }
  Delete("pool-logs");
  EXPECT_TRUE(WaitUntil([] { return ContainersOf("pool-logs").empty(); }, 10000));
}

TEST_F(Environments, WarmEnvironmentIsRemovedAfterItsIdleTtl) {
  ASSERT_EQ(Create("warm-ttl", "ephemera/echo:latest",
                   R"("EPHEMERA_MODE":"native","EPHEMERA_POLICY":"warm","EPHEMERA_IDLE_TTL":"1")")
                .status,
            201);
  ASSERT_EQ(daemon_->Invoke("warm-ttl", "{}").status, 200);
  ASSERT_EQ(ContainersOf("warm-ttl").size(), 1u);
  EXPECT_TRUE(WaitUntil([] { return ContainersOf("warm-ttl").empty(); }, 8000))
      << "a 1 s TTL removes the idle container";
  HttpResult again = daemon_->Invoke("warm-ttl", "{}");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.Header("x-ephemera-start"), "cold");
  Delete("warm-ttl");
}

TEST_F(Environments, PoolEnvironmentServesOneInvocationAndIsRefilled) {
  ASSERT_EQ(Create("pool-echo", "ephemera/echo:latest",
                   R"("EPHEMERA_MODE":"native","EPHEMERA_POLICY":"pool","EPHEMERA_POOL_SIZE":"2")")
                .status,
            201);
  auto pool_full = [] { return ContainersOf("pool-echo").size() == 2 && IdleEnvironments() >= 2; };
  ASSERT_TRUE(WaitUntil(pool_full, 20000)) << "the pool fills to 2";
  std::set<std::string> environments, containers;
  for (int i = 0; i < 3; ++i) {
    auto before = ContainersOf("pool-echo");
    HttpResult r = daemon_->Invoke("pool-echo", "[" + std::to_string(i) + "]");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "[" + std::to_string(i) + "]");
    EXPECT_EQ(r.Header("x-ephemera-start"), "pool");
    std::string env = r.Header("x-ephemera-environment");
    EXPECT_TRUE(environments.insert(env).second) << "environment " << env << " was used twice";
    auto used = ContainersWithLabel("ephemera.environment=" + env);
    for (const auto& id : used) EXPECT_TRUE(containers.insert(id).second);
    EXPECT_TRUE(WaitUntil(
        [&] { return ContainersWithLabel("ephemera.environment=" + env).empty(); }, 10000))
        << "a used pool environment is removed";
    ASSERT_TRUE(WaitUntil(pool_full, 20000)) << "and replaced";
  }
  Delete("pool-echo");
  EXPECT_TRUE(WaitUntil([] { return ContainersOf("pool-echo").empty(); }, 10000));
}

TEST_F(Environments, ConcurrencyLimitQueuesThenRefusesPastTheBound) {
  // Each invocation prints the host's uptime before and after a short sleep, so the test
  // can see how many ran at once.
  ASSERT_EQ(Create("queued", "ephemera/busybox:latest",
                   R"("EPHEMERA_MODE":"exec","EPHEMERA_POLICY":"warm",)"
                   R"("EPHEMERA_CONCURRENCY":"5","EPHEMERA_QUEUE_SIZE":"20",)"
                   R"("EPHEMERA_QUEUE_TIMEOUT":"60")",
                   R"(,"ImageConfig":{"EntryPoint":["sh","-c",)"
                   R"("cut -d' ' -f1 /proc/uptime; sleep 0.3; cut -d' ' -f1 /proc/uptime"]})")
                .status,
            201);
  std::mutex mu;
  std::vector<HttpResult> results;
  std::vector<std::thread> threads;
  for (int i = 0; i < 30; ++i) {
    threads.emplace_back([&] {
      HttpResult r = daemon_->Invoke("queued", "{}");
      std::lock_guard<std::mutex> lock(mu);
      results.push_back(std::move(r));
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::pair<double, double>> spans;
  int ok = 0, throttled = 0;
  for (const auto& r : results) {
    if (r.status == 200) {
      ++ok;
      std::istringstream in(r.body);
      double a = 0, b = 0;
      ASSERT_TRUE(in >> a >> b) << r.body;
      spans.emplace_back(a, b);
    } else {
      ASSERT_EQ(r.status, 429) << r.body;
      ++throttled;
      EXPECT_EQ(r.Header("x-amzn-errortype"), "TooManyRequestsException");
      EXPECT_EQ(r.Header("retry-after"), "1");
      EXPECT_NE(r.body.find("ReservedFunctionConcurrentInvocationLimitExceeded"), std::string::npos)
          << r.body;
    }
  }
  EXPECT_EQ(ok, 25) << "5 running + 20 queued";
  EXPECT_EQ(throttled, 5) << "the overflow past the queue bound";
  int most = 0;
  for (const auto& [start, end] : spans) {
    int at_once = 0;
    for (const auto& [s2, e2] : spans) {
      if (s2 <= start && start < e2) ++at_once;
    }
    most = std::max(most, at_once);
  }
  EXPECT_LE(most, 5) << "never more than the concurrency limit at once";
  EXPECT_GE(most, 2) << "invocations did run side by side";
  Delete("queued");
}

TEST_F(Environments, RebuiltTagRunsItsNewCommandUnderEveryPolicy) {
  const std::string tag = Tag("retag");
  ASSERT_EQ(Docker("tag ephemera/shout:latest " + tag), 0);
  for (const char* policy : {"cold", "warm", "pool"}) {
    std::string vars = R"("EPHEMERA_MODE":"exec","EPHEMERA_POLICY":")" + std::string(policy) +
                       "\"" + (std::string(policy) == "pool" ? R"(,"EPHEMERA_POOL_SIZE":"1")" : "");
    ASSERT_EQ(Create(std::string("retag-") + policy, tag, vars).status, 201);
  }
  ASSERT_TRUE(WaitUntil([] { return ContainersOf("retag-pool").size() == 1; }, 20000))
      << ContainersOf("retag-pool").size() << " containers of retag-pool\n"
      << daemon_->log();
  for (const char* policy : {"cold", "warm", "pool"}) {
    HttpResult r = daemon_->Invoke(std::string("retag-") + policy, R"("hello")");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, R"("HELLO")") << policy;
  }
  // The same tag now names another image with another command.
  ASSERT_EQ(Docker("tag ephemera/rev:latest " + tag), 0);
  for (const char* policy : {"cold", "warm", "pool"}) {
    std::string name = std::string("retag-") + policy;
    HttpResult r;
    // The engine's event reaches the daemon within moments; what runs after it is the new
    // image, and never the old one again.
    ASSERT_TRUE(WaitUntil(
        [&] {
          r = daemon_->Invoke(name, R"("hello")");
          return r.status == 200 && r.body == R"("olleh")";
        },
        20000))
        << policy << ": " << r.status << " " << r.body << " (start " << r.Header("x-ephemera-start")
        << ")\n"
        << daemon_->log();
    HttpResult again = daemon_->Invoke(name, R"("hello")");
    EXPECT_EQ(again.body, R"("olleh")") << policy;
  }
  for (const char* policy : {"cold", "warm", "pool"}) Delete(std::string("retag-") + policy);
}

TEST_F(Environments, RemovedImageFailsDryRunAndInvoke) {
  const std::string tag = Tag("gone");
  ASSERT_EQ(Docker("tag ephemera/echo:latest " + tag), 0);
  ASSERT_EQ(Create("gone", tag, R"("EPHEMERA_MODE":"native")").status, 201);
  std::vector<std::string> dry = {"X-Amz-Invocation-Type: DryRun"};
  EXPECT_EQ(daemon_->Invoke("gone", "{}", dry).status, 204);
  ASSERT_EQ(Docker("rmi " + tag), 0);
  HttpResult r = daemon_->Invoke("gone", "{}", dry);
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_EQ(r.Header("x-amzn-errortype"), "ResourceNotReadyException");
  EXPECT_NE(r.body.find(tag), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("Makefile.docker"), std::string::npos)
      << "the build hint is only for the project's own images: " << r.body;
  HttpResult invoke = daemon_->Invoke("gone", "{}");
  EXPECT_EQ(invoke.status, 502) << invoke.body;
  Delete("gone");
}

TEST_F(Environments, AutoModeRunsALambdaImageAndAPlainImage) {
  // No EPHEMERA_MODE: the daemon's default.
  ASSERT_EQ(Create("auto-lambda", "ephemera/lambda-cpp:latest", "").status, 201);
  ASSERT_EQ(Create("auto-plain", "ephemera/shout:latest", "").status, 201);
  HttpResult lambda = daemon_->Invoke("auto-lambda", R"({"k":"v"})");
  ASSERT_EQ(lambda.status, 200) << lambda.body;
  EXPECT_TRUE(lambda.Header("x-amz-function-error").empty()) << lambda.body;
  EXPECT_NE(lambda.body.find("\"requestId\""), std::string::npos) << lambda.body;
  HttpResult plain = daemon_->Invoke("auto-plain", R"("quiet")");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(plain.body, R"("QUIET")");
  Delete("auto-lambda");
  Delete("auto-plain");
}

TEST_F(Environments, MemoryHogGetsOutOfMemoryInNativeAndExecModes) {
  ASSERT_EQ(Create("hog-native", "ephemera/echo:latest", R"("EPHEMERA_MODE":"native")",
                   R"(,"MemorySize":128,"ImageConfig":{"EntryPoint":["/echo","--hog"]})")
                .status,
            201);
  ASSERT_EQ(Create("hog-exec", "ephemera/echo:latest", R"("EPHEMERA_MODE":"exec")",
                   R"(,"MemorySize":128,"ImageConfig":{"EntryPoint":["/echo","--hog-stdio"]})")
                .status,
            201);
  // Within the limit both answer; past it both are killed and say so.
  HttpResult small = daemon_->Invoke("hog-native", "16");
  ASSERT_EQ(small.status, 200);
  EXPECT_EQ(small.body, R"({"allocated_mib":16})");
  for (const char* fn : {"hog-native", "hog-exec"}) {
    HttpResult r = daemon_->Invoke(fn, "400");
    ASSERT_EQ(r.status, 200) << fn << ": " << r.body;
    EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled") << fn;
    EXPECT_NE(r.body.find("Runtime.OutOfMemory"), std::string::npos) << fn << ": " << r.body;
  }
  Delete("hog-native");
  Delete("hog-exec");
}

// A SIGKILL that is not the memory limit's (docker kill) is Runtime.ExitError, in a cold
// environment (where the machine's OOM count, read when the invocation began, settles it)
// and in a warm one's second invocation (where the engine is asked).
TEST_F(Environments, AKillThatIsNotTheMemoryLimitsIsAnExitError) {
  ASSERT_EQ(Create("kill-cold", "ephemera/busybox:latest", R"("EPHEMERA_MODE":"exec")",
                   R"(,"Timeout":30,"ImageConfig":{"EntryPoint":["sh","-c","sleep 20; cat"]})")
                .status,
            201);
  ASSERT_EQ(
      Create(
          "kill-warm", "ephemera/busybox:latest",
          R"("EPHEMERA_MODE":"exec","EPHEMERA_POLICY":"warm")",
          R"(,"Timeout":30,"ImageConfig":{"EntryPoint":["sh","-c","read x; [ $x = 2 ] && sleep 20; echo $x"]})")
          .status,
      201);
  ASSERT_EQ(daemon_->Invoke("kill-warm", "1").status, 200) << "the warm environment's first call";
  for (const char* fn : {"kill-cold", "kill-warm"}) {
    HttpResult r;
    std::thread call([&] { r = daemon_->Invoke(fn, "2"); });
    std::vector<std::string> ids;
    bool running = WaitUntil(
        [&] {
          ids = ContainersWithLabels({"ephemera.function=" + std::string(fn)});
          return ids.size() == 1 &&
                 DockerGet("/v1.41/containers/" + ids[0] + "/json").body.find("\"Running\":true") !=
                     std::string::npos;
        },
        20000);
    if (running) {
      // Give the event time to reach the runtime, then kill the container's PID 1.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      std::system(("/usr/bin/docker kill " + ids[0] + " >/dev/null 2>&1").c_str());
    }
    call.join();
    ASSERT_TRUE(running) << fn;
    ASSERT_EQ(r.status, 200) << fn << ": " << r.body;
    EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled") << fn;
    EXPECT_NE(r.body.find("Runtime.ExitError"), std::string::npos) << fn << ": " << r.body;
    EXPECT_NE(r.body.find("signal: killed"), std::string::npos) << fn << ": " << r.body;
  }
  Delete("kill-cold");
  Delete("kill-warm");
}

TEST_F(Environments, MemoryHogInAWebServiceGetsOutOfMemoryToo) {
  // http mode: busybox httpd serves a CGI script that fills its memory. The script is
  // written to /tmp (the one writable place) when the service starts.
  std::string script =
      "mkdir -p /tmp/w/cgi-bin; cd /tmp/w/cgi-bin; echo '#!/bin/sh' > hog; "
      "echo 'x=$(head -c 400000000 /dev/zero | tr \"\\0\" a)' >> hog; echo echo >> hog; "
      "chmod +x hog; exec httpd -f -p 127.0.0.1:$PORT -h /tmp/w";
  std::string json;
  for (char c : script) {
    if (c == '"' || c == '\\') json.push_back('\\');
    json.push_back(c);
  }
  ASSERT_EQ(
      Create("hog-http", "ephemera/busybox:latest",
             R"("EPHEMERA_MODE":"http","EPHEMERA_HTTP_PORT":"0",)"
             R"("EPHEMERA_HTTP_PATH":"/cgi-bin/hog")",
             R"(,"MemorySize":128,"ImageConfig":{"EntryPoint":["sh","-c",")" + json + R"("]})")
          .status,
      201);
  HttpResult r = daemon_->Invoke("hog-http", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled");
  EXPECT_NE(r.body.find("Runtime.OutOfMemory"), std::string::npos) << r.body;
  Delete("hog-http");
}

TEST(EnvironmentsPrecreate, TheNextColdStartSkipsTheCreate) {
  Daemon d;
  Daemon::Options o;
  o.extra_args = {"--precreate"};
  ASSERT_EQ(d.Start(o), "");
  HttpResult first = d.Invoke("echo", "[1]");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_NE(first.Header("server-timing").find("create;"), std::string::npos);
  // The next container is created, never started: no process runs while idle.
  std::string created;
  ASSERT_TRUE(WaitUntil(
      [&] {
        HttpResult r = DockerGet(
            "/v1.41/containers/"
            "json?all=1&filters=%7B%22label%22%3A%5B%22ephemera.function%3Decho%22%5D%7D");
        created = r.body;
        return r.body.find("\"State\":\"created\"") != std::string::npos;
      },
      10000))
      << created;
  HttpResult second = d.Invoke("echo", "[2]");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.body, "[2]");
  EXPECT_EQ(second.Header("x-ephemera-start"), "cold");
  EXPECT_EQ(second.Header("server-timing").find("create;"), std::string::npos)
      << second.Header("server-timing");
  std::string mine = "ephemera.daemon=" + std::to_string(d.pid());
  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_TRUE(ContainersWithLabel(mine).empty()) << "the container made ahead is removed too";
}

TEST(EnvironmentsShutdown, SigtermRemovesWarmAndPooledEnvironments) {
  Daemon d;
  ASSERT_EQ(d.Start(), "");
  auto create = [&](const std::string& name, const std::string& vars) {
    std::string body =
        R"({"FunctionName":")" + name +
        R"(","Code":{"ImageUri":"ephemera/echo:latest"},"Environment":{"Variables":{)" + vars +
        "}}}";
    return Http("POST", d.url() + "/2015-03-31/functions", body).status;
  };
  ASSERT_EQ(create("sd-warm", R"("EPHEMERA_MODE":"native","EPHEMERA_POLICY":"warm")"), 201);
  ASSERT_EQ(create("sd-pool",
                   R"("EPHEMERA_MODE":"native","EPHEMERA_POLICY":"pool","EPHEMERA_POOL_SIZE":"2")"),
            201);
  ASSERT_EQ(d.Invoke("sd-warm", "{}").status, 200);
  std::string mine = "ephemera.daemon=" + std::to_string(d.pid());
  ASSERT_TRUE(WaitUntil([&] { return EnvironmentsOf(d.pid()).size() == 3; }, 20000))
      << "one warm and two pooled environments";
  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_TRUE(ContainersWithLabel(mine).empty()) << "SIGTERM leaves no container";
}

}  // namespace
}  // namespace ephemera::testing
