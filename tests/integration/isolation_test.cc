// Isolation and hardening (issue 9, sections 1 and 2), tried the way a hostile function
// would: from inside real containers of the real daemon. Each probe is a busybox shell
// script whose output the test reads; a host-network function runs the same probe where
// it matters, to show the probe can see what isolation hides.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "runtime/json/json.h"
#include "tests/integration/daemon_fixture.h"

namespace ephemera::testing {
namespace {

class Isolation : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon;
    ASSERT_EQ(daemon_->Start(), "");
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(daemon_->Stop(), 0) << daemon_->log();
    delete daemon_;
    daemon_ = nullptr;
  }
  // An exec function running `script` with busybox sh, in `network`.
  static void Probe(const std::string& name, const std::string& network, const std::string& script,
                    const std::string& extra_vars = "") {
    std::string escaped;
    for (char c : script) {
      if (c == '"' || c == '\\') escaped.push_back('\\');
      escaped.push_back(c);
    }
    std::string body =
        R"({"FunctionName":")" + name +
        R"(","Code":{"ImageUri":"ephemera/busybox:latest"},"Timeout":10,)" +
        R"("ImageConfig":{"EntryPoint":["sh","-c",")" + escaped + R"("]},)" +
        R"("Environment":{"Variables":{"EPHEMERA_MODE":"exec","EPHEMERA_NETWORK":")" + network +
        "\"" + extra_vars + "}}}";
    HttpResult r = Http("POST", daemon_->url() + "/2015-03-31/functions", body);
    ASSERT_EQ(r.status, 201) << r.body;
  }
  static std::string Port() { return std::to_string(PortOf(daemon_->url())); }
  static int PortOf(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }
  static Daemon* daemon_;
};
Daemon* Isolation::daemon_ = nullptr;

// busybox nc: connect, send a request, print the first line of the answer.
std::string HttpProbe(const std::string& port, const std::string& request) {
  return "printf '" + request + "' | timeout 3 nc 127.0.0.1 " + port +
         " | head -n 1 | grep -q HTTP && echo reachable || echo unreachable";
}

TEST_F(Isolation, AnIsolatedFunctionCannotReachTheControlPlane) {
  std::string script =
      HttpProbe(Port(), "DELETE /2015-03-31/functions/victim HTTP/1.0\\r\\n\\r\\n");
  Probe("probe-isolated", "isolated", script);
  Probe("probe-host", "host", script);
  Probe("victim", "isolated", "cat");
  HttpResult isolated = daemon_->Invoke("probe-isolated", "{}");
  ASSERT_EQ(isolated.status, 200) << isolated.body;
  EXPECT_EQ(isolated.body, "unreachable\n");
  EXPECT_EQ(Http("GET", daemon_->url() + "/2015-03-31/functions/victim").status, 200)
      << "the victim still exists";
  // On the host network the same probe reaches the daemon (so the probe works) and deletes.
  HttpResult host = daemon_->Invoke("probe-host", "{}");
  ASSERT_EQ(host.status, 200) << host.body;
  EXPECT_EQ(host.body, "reachable\n");
}

TEST_F(Isolation, AnIsolatedFunctionSeesOnlyItsOwnListener) {
  // A warm isolated environment stays idle while the probe runs beside it.
  Probe("neighbour", "isolated", "cat", R"(,"EPHEMERA_POLICY":"warm")");
  ASSERT_EQ(daemon_->Invoke("neighbour", R"("x")").status, 200);
  // Listening sockets (state 0A) in the probe's namespace: only its shim's 127.0.0.1:9001.
  Probe("listeners", "isolated",
        "grep -c ' 0A ' /proc/net/tcp; grep ' 0A ' /proc/net/tcp | "
        "cut -c7-19");
  HttpResult r = daemon_->Invoke("listeners", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "1\n0100007F:2329\n") << "one listener, 127.0.0.1:9001";
  Http("DELETE", daemon_->url() + "/2015-03-31/functions/neighbour");
}

TEST_F(Isolation, AFunctionInvokesAnotherByNameFromInside) {
  Probe("callee", "isolated", "tr a-z A-Z");
  Probe("caller", "isolated",
        // busybox nc stops at the end of its input: keep it open while the answer comes.
        "(printf 'POST /2015-03-31/functions/callee/invocations HTTP/1.1\\r\\nHost: x\\r\\n"
        "Content-Length: 7\\r\\n\\r\\n\"hello\"'; sleep 4) | timeout 5 nc 127.0.0.1 9001 | "
        "tail -c 7");
  HttpResult r = daemon_->Invoke("caller", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"("HELLO")");
}

TEST_F(Isolation, AHostServiceIsReachableOnlyWhereTheSpecForwardsIt) {
  // Redis on the host (scripts/setup.sh starts it on 6379).
  std::string script =
      "(printf 'PING\\r\\n'; sleep 1) | timeout 2 nc 127.0.0.1 6379 | head -c 5; echo";
  Probe("redis-allowed", "isolated", script, R"(,"EPHEMERA_FORWARD":"6379")");
  Probe("redis-denied", "isolated", script);
  HttpResult allowed = daemon_->Invoke("redis-allowed", "{}");
  ASSERT_EQ(allowed.status, 200) << allowed.body;
  EXPECT_EQ(allowed.body, "+PONG\n");
  HttpResult denied = daemon_->Invoke("redis-denied", "{}");
  ASSERT_EQ(denied.status, 200) << denied.body;
  EXPECT_EQ(denied.body, "\n") << "no forward, no Redis";
}

TEST_F(Isolation, HardeningRefusesRawSocketsAndWritesOutsideTmp) {
  Probe("hardened", "isolated",
        "id -u; touch /etc/x 2>/dev/null && echo root-writable || echo root-read-only; "
        "touch /tmp/x && echo tmp-writable; "
        "ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo raw-allowed || echo raw-refused");
  HttpResult r = daemon_->Invoke("hardened", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "993\nroot-read-only\ntmp-writable\nraw-refused\n");
}

TEST_F(Isolation, AForkBombIsContainedAndOthersKeepWorking) {
  Probe("bomb", "isolated", "b() { b | b & }; b; sleep 10", R"(,"EPHEMERA_PIDS_LIMIT":"64")");
  HttpResult r = daemon_->Invoke("bomb", "{}");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled") << r.body;
  HttpResult echo = daemon_->Invoke("echo", R"({"still":"here"})");
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(echo.body, R"({"still":"here"})");
  EXPECT_TRUE(daemon_->WaitIdle());
}

// A setuid-root binary run by the function's non-root user: no-new-privileges keeps its
// effective user; the same image with the setting opted out shows the binary would gain root.
TEST_F(Isolation, ASetuidBinaryCannotGainPrivileges) {
  const std::string image = "ephemera/test-setuid:latest";
  std::string import = std::string("tar --owner=0 --group=0 --mode=4755 -C ") +
                       EPHEMERA_BINARY_DIR + "/bin --transform s,euid_probe,probe, -cf - " +
                       "euid_probe | /usr/bin/docker import -c 'ENTRYPOINT [\"/probe\"]' - " +
                       image + " >/dev/null";
  ASSERT_EQ(std::system(import.c_str()), 0) << import;
  auto create = [&](const std::string& name, const std::string& extra) {
    std::string body = R"({"FunctionName":")" + name + R"(","Code":{"ImageUri":")" + image +
                       R"("},"Timeout":10,"Environment":{"Variables":{"EPHEMERA_MODE":"exec")" +
                       extra + "}}}";
    HttpResult r = Http("POST", daemon_->url() + "/2015-03-31/functions", body);
    ASSERT_EQ(r.status, 201) << r.body;
  };
  create("setuid", "");
  create("setuid-allowed", R"(,"EPHEMERA_NO_NEW_PRIVILEGES":"false")");
  HttpResult kept = daemon_->Invoke("setuid", "{}");
  ASSERT_EQ(kept.status, 200) << kept.body;
  EXPECT_EQ(kept.body, "uid=993 euid=993\n");
  HttpResult gained = daemon_->Invoke("setuid-allowed", "{}");
  ASSERT_EQ(gained.status, 200) << gained.body;
  EXPECT_EQ(gained.body, "uid=993 euid=0\n") << "the probe shows a setuid binary at work";
  EXPECT_TRUE(daemon_->WaitIdle());
  std::system(("/usr/bin/docker rmi -f " + image + " >/dev/null 2>&1").c_str());
}

// Network namespaces are made ahead (runtime/sandbox/holders.h): `--max-starts` holders
// ready from the start while some function is isolated, and, once an isolated function has
// been called, four times as many in all, made while the daemon is idle, so a burst finds
// them made. Then no more, however idle.
TEST(IsolationHolders, ThePoolGrowsAheadOnlyOnceUsedAndOnlyToItsCap) {
  Daemon d;
  Daemon::Options o;
  o.extra_args = {"--max-starts", "1"};
  ASSERT_EQ(d.Start(o), "");
  const std::string mine = "ephemera.daemon=" + std::to_string(d.pid());
  auto holders = [&] { return ContainersWithLabels({mine, "ephemera.holder=1"}).size(); };
  auto health = [&](const char* field) {
    auto j = json::Parse(Http("GET", d.url() + "/healthz").body);
    return j ? json::GetNumber(j.get(), field).value_or(-1) : -1;
  };
  auto starting = [&] { return health("holders_starting"); };
  ASSERT_TRUE(WaitUntil([&] { return holders() == 1 && starting() == 0; }, 30000))
      << "one spare for one start in flight: " << holders() << d.log();
  // Unused, the pool stays at its spare, idle as the daemon is.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(holders(), 1u);
  EXPECT_EQ(starting(), 0);
  EXPECT_EQ(health("holders_ahead_left"), 0) << "nothing to make ahead before a use";

  HttpResult r = d.Invoke("echo", R"({"n":1})");
  ASSERT_EQ(r.status, 200) << r.body;
  // /healthz says more are to come (a benchmark waits for them before it measures).
  EXPECT_GE(health("holders_ahead_left"), 1);
  ASSERT_TRUE(d.WaitIdle());
  EXPECT_TRUE(WaitUntil([&] { return holders() == 4 && starting() == 0; }, 30000))
      << "4 x the spare once used: " << holders() << d.log();
  EXPECT_EQ(health("holders_ahead_left"), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(holders(), 4u) << "no more than the cap";

  // The next call takes one of them and gives it back: still 4.
  r = d.Invoke("echo", R"({"n":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(d.WaitIdle());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(holders(), 4u);
  EXPECT_EQ(starting(), 0);

  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_TRUE(ContainersWithLabel(mine).empty()) << "containers left by the daemon";
}

}  // namespace
}  // namespace ephemera::testing
