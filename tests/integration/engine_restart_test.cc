// Engines other than the suite's, each a second dockerd with its own socket, data root and
// exec root started by the test, so the suite's engine is never disturbed:
// - the engine restarting under load (issue 8, "Limits that hold"): in-flight invocations
//   fail with a ServiceException naming the engine, kept environments are discarded, pools
//   refill once the engine answers again, and no daemon restart is needed;
// - an engine whose default log driver is `none`: the log tail comes from the attach,
//   which does not need a log driver, under every policy;
// - an engine whose attach streams lag (the suite's engine behind a proxy that holds them
//   back): a cold invocation's log tail still holds everything the function wrote.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "runtime/core/base64.h"
#include "runtime/json/json.h"
#include "tests/integration/daemon_fixture.h"

namespace ephemera::testing {
namespace {

std::string Run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null </dev/null").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// A dockerd of the test's own.
class SecondEngine {
 public:
  // `dockerd_args`: more options for the engine (e.g. its default log driver).
  explicit SecondEngine(std::string dockerd_args = "") : dockerd_args_(std::move(dockerd_args)) {
    char tmpl[] = "/tmp/ephemera-engine-XXXXXX";
    dir_ = mkdtemp(tmpl);
    socket_ = dir_ + "/docker.sock";
    // A bridge of its own: with --bridge none a dockerd deletes the host's docker0, which
    // the suite's engine needs.
    bridge_ = "ephtest" + std::to_string(getpid() % 100000);
    std::system(("ip link add " + bridge_ + " type bridge >/dev/null 2>&1").c_str());
  }
  ~SecondEngine() {
    Stop();
    // The killed engine's containers keep their shims (containerd-shim-runc-v2, with the
    // container's processes under it) running past any dockerd: end them. The [c] keeps
    // the pattern from matching this shell's own command line.
    std::system(("for p in $(pgrep -f '[c]ontainerd-shim-runc-v2 .*" + dir_ +
                 "/'); do pkill -KILL -P $p; kill -KILL $p; done >/dev/null 2>&1")
                    .c_str());
    std::system(("ip link delete " + bridge_ + " >/dev/null 2>&1").c_str());
    // dockerd leaves its data root bind-mounted and a namespace file mounted: undo the
    // mounts (innermost first), then remove the folder.
    std::system(
        ("grep -o ' " + dir_ + "[^ ]*' /proc/mounts | sort -r | xargs -r umount -l").c_str());
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string endpoint() const { return "unix://" + socket_; }
  std::string cli() const { return "/usr/bin/docker -H " + endpoint() + " "; }

  bool Start() {
    std::filesystem::remove(dir_ + "/docker.pid");
    std::string cmd = "setsid /usr/sbin/dockerd --host " + endpoint() + " --data-root " + dir_ +
                      "/data --exec-root " + dir_ + "/exec --pidfile " + dir_ +
                      "/docker.pid --bridge " + bridge_ + " --iptables=false --ip-masq=false " +
                      dockerd_args_ + " </dev/null >>" + dir_ + "/dockerd.log 2>&1 &";
    if (std::system(cmd.c_str()) != 0) return false;
    return WaitUntil(
        [&] { return Run("curl -s --unix-socket " + socket_ + " http://e/_ping") == "OK"; }, 60000);
  }
  // The engine crashes: its connections drop at once, its containers stay behind.
  void Kill() {
    pid_t pid = Pid();
    if (pid > 0) {
      kill(pid, SIGKILL);
      WaitUntil([pid] { return kill(pid, 0) != 0; }, 10000);
    }
  }
  void Stop() {
    pid_t pid = Pid();
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    if (!WaitUntil([pid] { return kill(pid, 0) != 0; }, 30000)) kill(pid, SIGKILL);
  }
  int Containers(const std::string& label) const {
    std::string out = Run(cli() + "ps -aq --filter label=" + label);
    int n = 0;
    for (char c : out) n += c == '\n';
    return n;
  }
  int Running(const std::string& label) const {
    std::string out = Run(cli() + "ps -q --filter label=" + label);
    int n = 0;
    for (char c : out) n += c == '\n';
    return n;
  }
  std::string log() const {
    std::ifstream in(dir_ + "/dockerd.log");
    std::string all((std::istreambuf_iterator<char>(in)), {});
    return all.size() > 3000 ? all.substr(all.size() - 3000) : all;
  }

 private:
  pid_t Pid() const {
    std::ifstream in(dir_ + "/docker.pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }
  std::string dockerd_args_;
  std::string dir_, socket_, bridge_;
};

// Loads the images the tests run from the suite's engine into `engine`.
bool LoadImages(const SecondEngine& engine) {
  return std::system(("/usr/bin/docker save ephemera/echo:latest ephemera/busybox:latest "
                      "ephemera/holder:latest | " +
                      engine.cli() + "load >/dev/null")
                         .c_str()) == 0;
}

TEST(EngineRestart, InFlightFailsClearlyPoolsRefillAndNothingIsLeft) {
  SecondEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.log();
  ASSERT_TRUE(LoadImages(engine));
  Daemon d;
  Daemon::Options o;
  o.extra_args = {"--docker", engine.endpoint()};
  ASSERT_EQ(d.Start(o), "");
  auto create = [&](const std::string& body) {
    return Http("POST", d.url() + "/2015-03-31/functions", body).status;
  };
  ASSERT_EQ(create(R"({"FunctionName":"er-pool","Code":{"ImageUri":"ephemera/echo:latest"},)"
                   R"("Environment":{"Variables":{"EPHEMERA_MODE":"native",)"
                   R"("EPHEMERA_POLICY":"pool","EPHEMERA_POOL_SIZE":"2"}}})"),
            201);
  ASSERT_EQ(create(R"({"FunctionName":"er-slow","Code":{"ImageUri":"ephemera/busybox:latest"},)"
                   R"("Timeout":60,"ImageConfig":{"EntryPoint":["sh","-c","sleep 30; cat"]},)"
                   R"("Environment":{"Variables":{"EPHEMERA_MODE":"exec"}}})"),
            201);
  ASSERT_EQ(create(R"({"FunctionName":"er-iso","Code":{"ImageUri":"ephemera/echo:latest"},)"
                   R"("Environment":{"Variables":{"EPHEMERA_MODE":"native",)"
                   R"("EPHEMERA_NETWORK":"isolated"}}})"),
            201);
  ASSERT_TRUE(WaitUntil([&] { return engine.Running("ephemera.function=er-pool") == 2; }, 30000));
  HttpResult iso = d.Invoke("er-iso", "[1]");
  ASSERT_EQ(iso.status, 200) << iso.body;

  // Three invocations in flight when the engine dies.
  std::vector<HttpResult> slow(3);
  std::vector<std::thread> threads;
  for (auto& r : slow) threads.emplace_back([&d, &r] { r = d.Invoke("er-slow", "{}"); });
  ASSERT_TRUE(WaitUntil([&] { return engine.Running("ephemera.function=er-slow") == 3; }, 30000));
  engine.Kill();
  for (auto& t : threads) t.join();
  for (const auto& r : slow) {
    EXPECT_TRUE(r.status == 503 || r.status == 502) << r.status << " " << r.body;
    EXPECT_EQ(r.Header("x-amzn-errortype"), "ServiceException") << r.body;
    EXPECT_NE(r.body.find(engine.endpoint().substr(7)), std::string::npos)
        << "the error names the engine: " << r.body;
  }
  // While it is down, calls fail the same way (the pooled environments went with it).
  HttpResult down = d.Invoke("er-pool", "{}");
  EXPECT_EQ(down.status, 503) << down.body;
  EXPECT_EQ(down.Header("x-amzn-errortype"), "ServiceException");

  // The engine comes back: the same daemon refills its pool and serves again.
  ASSERT_TRUE(engine.Start()) << engine.log();
  ASSERT_TRUE(WaitUntil([&] { return engine.Running("ephemera.function=er-pool") == 2; }, 60000))
      << d.log();
  HttpResult back = d.Invoke("er-pool", R"({"back":true})");
  EXPECT_EQ(back.status, 200) << back.body;
  EXPECT_EQ(back.body, R"({"back":true})");
  // The namespace holders went with the old engine: the pool forgets them and makes new
  // ones, so isolated functions run again too.
  HttpResult iso_back;
  EXPECT_TRUE(WaitUntil(
      [&] {
        iso_back = d.Invoke("er-iso", "[2]");
        return iso_back.status == 200;
      },
      30000))
      << iso_back.status << " " << iso_back.body;
  EXPECT_EQ(iso_back.body, "[2]");
  // What the crash left behind (exited containers) is removed without a daemon restart.
  std::string mine = "ephemera.daemon=" + std::to_string(d.pid());
  EXPECT_TRUE(WaitUntil([&] { return engine.Containers("ephemera.function=er-slow") == 0; }, 30000))
      << d.log();
  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_EQ(engine.Containers(mine), 0)
      << "containers left on the engine:\n"
      << ephemera::testing::Run(engine.cli() + "ps -a --filter label=" + mine +
                                " --format '{{.ID}} {{.Status}} {{.Labels}}'")
      << d.log();
}

// With no log driver the engine keeps no output (`docker logs` fails), but an attach still
// streams it: the daemon attaches and never asks the engine to replay logs, so the tail
// holds the function's output under cold, warm and pool.
TEST(EngineLogDriverNone, TheLogTailHoldsTheFunctionsOutputUnderEveryPolicy) {
  SecondEngine engine("--log-driver none");
  ASSERT_TRUE(engine.Start()) << engine.log();
  ASSERT_NE(
      ephemera::testing::Run(engine.cli() + "info --format '{{.LoggingDriver}}'").find("none"),
      std::string::npos)
      << "the engine's default log driver is none";
  ASSERT_TRUE(LoadImages(engine));
  Daemon d;
  Daemon::Options o;
  o.extra_args = {"--docker", engine.endpoint()};
  ASSERT_EQ(d.Start(o), "");
  for (const char* policy : {"cold", "warm", "pool"}) {
    std::string name = std::string("ld-") + policy;
    const bool pool = std::string(policy) == "pool";
    HttpResult c =
        Http("POST", d.url() + "/2015-03-31/functions",
             R"({"FunctionName":")" + name + R"(","Code":{"ImageUri":"ephemera/busybox:latest"},)" +
                 R"("ImageConfig":{"EntryPoint":["sh","-c","read x; echo log-$x >&2; echo $x"]},)" +
                 R"("Environment":{"Variables":{"EPHEMERA_MODE":"exec","EPHEMERA_POLICY":")" +
                 policy + (pool ? R"(","EPHEMERA_POOL_SIZE":"1)" : "") + R"("}}})");
    ASSERT_EQ(c.status, 201) << c.body;
    auto idle = [&] {
      auto j = json::Parse(Http("GET", d.url() + "/healthz").body);
      return j && json::GetNumber(j.get(), "idle_environments").value_or(0) >= 1;
    };
    for (const char* n : {"first", "second"}) {
      if (pool) {
        ASSERT_TRUE(WaitUntil(idle, 30000)) << "the pool has an environment ready";
      }
      HttpResult r = d.Invoke(name, std::string("\"") + n + "\"", {"X-Amz-Log-Type: Tail"});
      ASSERT_EQ(r.status, 200) << policy << ": " << r.body << d.log();
      EXPECT_EQ(r.body, std::string("\"") + n + "\"\n") << "exec mode answers with the output";
      const bool second = std::string(n) == "second";
      EXPECT_EQ(r.Header("x-ephemera-start"), pool                                        ? "pool"
                                              : (second && std::string(policy) == "warm") ? "warm"
                                                                                          : "cold");
      auto log = Base64Decode(r.Header("x-amz-log-result"));
      ASSERT_TRUE(log.has_value()) << policy;
      EXPECT_NE(log->find(std::string("log-\"") + n + "\""), std::string::npos)
          << policy << " (" << r.Header("x-ephemera-start") << "): " << *log;
      EXPECT_NE(log->find("REPORT RequestId: "), std::string::npos) << *log;
    }
    // Deleted before the next policy, so /healthz's idle environments are the pool's only.
    EXPECT_EQ(Http("DELETE", d.url() + "/2015-03-31/functions/" + name).status, 204);
    EXPECT_TRUE(
        WaitUntil([&] { return engine.Containers("ephemera.function=" + name) == 0; }, 30000));
  }
  std::string mine = "ephemera.daemon=" + std::to_string(d.pid());
  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_EQ(engine.Containers(mine), 0) << "containers left on the engine";
}

// The suite's engine behind lagging_engine_proxy.py, which holds back what the engine
// sends on attach connections. Killed and its folder removed when the test ends, however
// it ends.
class LaggingProxy {
 public:
  LaggingProxy() {
    char tmpl[] = "/tmp/ephemera-lag-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~LaggingProxy() {
    if (!pid_.empty()) Run("kill " + pid_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string endpoint() const { return "unix://" + dir_ + "/docker.sock"; }
  std::string log() const {
    std::ifstream in(dir_ + "/proxy.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // The suite's engine socket: DOCKER_HOST's when it is unix://, else the default ("" for
  // an engine over TCP, which the proxy cannot front).
  static std::string EngineSocket() {
    const char* host = std::getenv("DOCKER_HOST");
    if (host == nullptr || *host == 0) return "/var/run/docker.sock";
    std::string h(host);
    return h.rfind("unix://", 0) == 0 ? h.substr(7) : "";
  }
  // Starts it, with attach streams `delay_s` behind, and waits until it listens.
  bool Start(double delay_s) {
    pid_ = Run("setsid /usr/bin/python3 " EPHEMERA_SOURCE_DIR
               "/tests/integration/lagging_engine_proxy.py --listen " +
               dir_ + "/docker.sock --engine " + EngineSocket() + " --delay " +
               std::to_string(delay_s) + " </dev/null >" + dir_ + "/proxy.log 2>&1 & echo $!");
    while (!pid_.empty() && pid_.back() == '\n') pid_.pop_back();
    return !pid_.empty() &&
           WaitUntil([&] { return log().find("ready") != std::string::npos; }, 30000);
  }

 private:
  std::string dir_;
  std::string pid_;
};

// The suite's engine behind a LaggingProxy whose attach streams trail by 1.5 s, and a
// daemon that uses it (stopped before the proxy: members go in reverse order).
class LaggingEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    if (LaggingProxy::EngineSocket().empty()) {
      GTEST_SKIP() << "the suite's engine is not on a unix socket (DOCKER_HOST="
                   << std::getenv("DOCKER_HOST") << ")";
    }
    ASSERT_TRUE(proxy_.Start(1.5)) << proxy_.log();
    Daemon::Options o;
    o.extra_args = {"--docker", proxy_.endpoint()};
    ASSERT_EQ(daemon_.Start(o), "");
  }

  LaggingProxy proxy_;
  Daemon daemon_;
};

// A busy engine's attach stream was seen to trail its container by over a second, and a
// cold log tail cut off at a fixed wait then lacked the function's last lines. A cold
// outcome that asked for the tail waits for the stream's end instead, which the engine
// sends once it has written all the container wrote. The proxy makes every attach stream
// lag by 1.5 s, more than the daemon's other log waits (1 s).
TEST_F(LaggingEngine, AColdLogTailWaitsForTheEndOfTheAttachStream) {
  Daemon& d = daemon_;
  HttpResult c =
      Http("POST", d.url() + "/2015-03-31/functions",
           R"({"FunctionName":"lag-cold","Code":{"ImageUri":"ephemera/busybox:latest"},)"
           R"("ImageConfig":{"EntryPoint":["sh","-c","read x; echo log-$x >&2; echo $x"]},)"
           R"("Environment":{"Variables":{"EPHEMERA_MODE":"exec"}}})");
  ASSERT_EQ(c.status, 201) << c.body;
  for (const char* n : {"first", "second"}) {
    auto t0 = std::chrono::steady_clock::now();
    HttpResult r = d.Invoke("lag-cold", std::string("\"") + n + "\"", {"X-Amz-Log-Type: Tail"});
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(r.status, 200) << r.body << d.log();
    EXPECT_EQ(r.body, std::string("\"") + n + "\"\n");
    EXPECT_EQ(r.Header("x-ephemera-start"), "cold");
    // The premise: the stream's end reached the daemon only after the proxy's lag.
    EXPECT_GE(ms, 1500) << "the proxy held the attach stream back";
    auto log = Base64Decode(r.Header("x-amz-log-result"));
    ASSERT_TRUE(log.has_value());
    EXPECT_NE(log->find(std::string("log-\"") + n + "\""), std::string::npos) << *log;
    EXPECT_NE(log->find("REPORT RequestId: "), std::string::npos) << *log;
  }
  std::string mine = "ephemera.daemon=" + std::to_string(d.pid());
  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_EQ(ephemera::testing::Run("/usr/bin/docker ps -aq --filter label=" + mine), "")
      << "containers left on the engine";
}

// A kept environment's tail cannot wait for the stream's end: the container lives on. The
// runtime marks the end of each invocation's output on both streams (shim/log_mark.h) and
// the outcome waits for the marks, so with the stream 1.5 s behind (more than the 1 s a
// kept environment's tail used to wait at most) each tail still holds its own lines and
// none of the other invocation's. Exec mode marks from the shim itself; lambda-cpp (its
// own libcurl client, auto mode) posts through the shim's proxy, which marks for it.
TEST_F(LaggingEngine, KeptEnvironmentsLogTailsWaitForTheRuntimesMarks) {
  Daemon& d = daemon_;
  const std::string exec_fn =
      R"("Code":{"ImageUri":"ephemera/busybox:latest"},)"
      R"("ImageConfig":{"EntryPoint":["sh","-c","read x; echo log-$x >&2; echo $x"]},)";
  const std::string client_fn = R"("Code":{"ImageUri":"ephemera/lambda-cpp:latest"},)";
  for (const auto& [name, code, policy] :
       {std::tuple<std::string, std::string, std::string>{"lag-warm", exec_fn, "warm"},
        {"lag-pool", exec_fn, "pool"},
        {"lag-client", client_fn, "warm"}}) {
    const bool pool = policy == "pool";
    const bool client = name == "lag-client";
    std::string vars = R"("EPHEMERA_POLICY":")" + policy + "\"" +
                       (pool ? R"(,"EPHEMERA_POOL_SIZE":"1")" : "") +
                       (client ? "" : R"(,"EPHEMERA_MODE":"exec")");
    HttpResult c = Http("POST", d.url() + "/2015-03-31/functions",
                        R"({"FunctionName":")" + name + "\"," + code +
                            R"("Environment":{"Variables":{)" + vars + "}}}");
    ASSERT_EQ(c.status, 201) << c.body;
    std::vector<std::string> ids;
    for (const char* n : {"first", "second"}) {
      if (pool) {
        ASSERT_TRUE(WaitUntil(
            [&] {
              auto j = json::Parse(Http("GET", d.url() + "/healthz").body);
              return j && json::GetNumber(j.get(), "idle_environments").value_or(0) >= 1;
            },
            30000))
            << "the pool has an environment ready";
      }
      auto t0 = std::chrono::steady_clock::now();
      HttpResult r = d.Invoke(name, std::string("\"") + n + "\"", {"X-Amz-Log-Type: Tail"});
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      ASSERT_EQ(r.status, 200) << name << ": " << r.body << d.log();
      // Not a speed check: an outcome whose marks never came would wait out the 10 s
      // backstop; both marks (stdout and stderr) came well before it.
      EXPECT_LT(ms, 8000) << name << " waited for its log tail's backstop";
      const bool second = std::string(n) == "second";
      EXPECT_EQ(r.Header("x-ephemera-start"), pool ? "pool" : second ? "warm" : "cold") << name;
      auto log = Base64Decode(r.Header("x-amz-log-result"));
      ASSERT_TRUE(log.has_value()) << name;
      std::string id = r.Header("x-amzn-requestid");
      ids.push_back(id);
      if (client) {
        EXPECT_NE(log->find("lambda-cpp: invocation " + id), std::string::npos) << name << *log;
      } else {
        EXPECT_EQ(r.body, std::string("\"") + n + "\"\n");
        EXPECT_NE(log->find(std::string("log-\"") + n + "\""), std::string::npos)
            << name << " (" << r.Header("x-ephemera-start") << "): " << *log;
        if (second) {
          EXPECT_EQ(log->find("first"), std::string::npos) << "only its own lines: " << *log;
        }
      }
      EXPECT_EQ(log->find("ephemera-log-mark"), std::string::npos) << "marks are taken out";
      EXPECT_NE(log->find("REPORT RequestId: " + id), std::string::npos) << *log;
    }
    if (client) {
      // Each tail holds its own invocation only.
      auto second_log = d.Invoke(name, "\"third\"", {"X-Amz-Log-Type: Tail"});
      auto log = Base64Decode(second_log.Header("x-amz-log-result"));
      ASSERT_TRUE(log.has_value());
      EXPECT_EQ(log->find(ids[0]), std::string::npos) << *log;
      EXPECT_EQ(log->find(ids[1]), std::string::npos) << *log;
    }
    EXPECT_EQ(Http("DELETE", d.url() + "/2015-03-31/functions/" + name).status, 204);
  }
  std::string mine = "ephemera.daemon=" + std::to_string(d.pid());
  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_EQ(ephemera::testing::Run("/usr/bin/docker ps -aq --filter label=" + mine), "")
      << "containers left on the engine";
}

}  // namespace
}  // namespace ephemera::testing
