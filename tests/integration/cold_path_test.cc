// The cold path end to end (issue 2): a fresh container per invocation, the shim
// or the function's own runtime speaking the Runtime API, the answer back to the
// caller, and nothing left behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "tests/integration/daemon_fixture.h"

namespace ephemera::testing {
namespace {

class ColdPath : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon;
    std::string err = daemon_->Start();
    ASSERT_EQ(err, "");
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(daemon_->Stop(), 0) << daemon_->log();
    delete daemon_;
    daemon_ = nullptr;
  }
  static HttpResult Plain(const std::string& function, const std::string& body) {
    return Http("POST", daemon_->url() + "/function/" + function, body,
                {"Content-Type: application/octet-stream"});
  }
  static Daemon* daemon_;
};
Daemon* ColdPath::daemon_ = nullptr;

std::string AllByteValues() {
  std::string s;
  for (int round = 0; round < 4; ++round) {
    for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
  }
  return s;
}

TEST_F(ColdPath, EchoReturnsEmptyPayload) {
  HttpResult r = Plain("echo", "");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.body, "");
}

TEST_F(ColdPath, EchoReturnsOneByte) {
  HttpResult r = Plain("echo", "x");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "x");
}

TEST_F(ColdPath, EchoReturnsBinaryByteForByte) {
  std::string payload = AllByteValues();
  HttpResult r = Plain("echo", payload);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.size(), payload.size());
  EXPECT_TRUE(r.body == payload) << "binary payload came back altered";
}

TEST_F(ColdPath, EchoReturnsOneMebibyteByteForByte) {
  std::string payload(1 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 7919) >> 3);
  HttpResult r = Plain("echo", payload);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  EXPECT_EQ(r.body.size(), payload.size());
  EXPECT_TRUE(r.body == payload) << "1 MiB payload came back altered";
}

TEST_F(ColdPath, EchoThroughExecModeMatchesNative) {
  std::string payload = AllByteValues();
  HttpResult r = Plain("echo-exec", payload);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.body == payload);
}

TEST_F(ColdPath, ShoutUpperCasesThroughTheShim) {
  HttpResult r = daemon_->Invoke("shout", "\"hello, world\"");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "\"HELLO, WORLD\"");
  EXPECT_EQ(r.Header("x-amz-function-error"), "");
}

TEST_F(ColdPath, ReplyCarriesPhasesAndVersion) {
  HttpResult r = daemon_->Invoke("echo", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-executed-version"), "$LATEST");
  std::string timing = r.Header("server-timing");
  for (const char* phase :
       {"create;dur=", "start;dur=", "init;dur=", "handler;dur=", "total;dur="}) {
    EXPECT_NE(timing.find(phase), std::string::npos) << phase << " missing from " << timing;
  }
  EXPECT_FALSE(r.Header("x-amzn-requestid").empty());
}

TEST_F(ColdPath, UnknownFunctionIs404InTheAwsShape) {
  HttpResult r = daemon_->Invoke("no-such-function", "{}");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Header("x-amzn-errortype"), "ResourceNotFoundException");
  EXPECT_NE(r.body.find("\"Type\":\"User\""), std::string::npos) << r.body;
  EXPECT_NE(
      r.body.find(
          "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function"),
      std::string::npos)
      << r.body;
}

TEST_F(ColdPath, SleepingFunctionTimesOutAndIsKilled) {
  HttpResult r = daemon_->Invoke("sleeper", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled");
  EXPECT_NE(r.body.find("\"errorType\":\"Sandbox.Timedout\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Task timed out after 1.00 seconds"), std::string::npos) << r.body;
  ASSERT_TRUE(daemon_->WaitIdle());
  // This daemon's only: another daemon on the engine (a soak, say) may run sleeper too.
  EXPECT_TRUE(ContainersWithLabels({"ephemera.function=sleeper",
                                    "ephemera.daemon=" + std::to_string(daemon_->pid())})
                  .empty());
}

TEST_F(ColdPath, RuntimeThatExitsGivesExitErrorWithStatus) {
  HttpResult r = daemon_->Invoke("crash", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled");
  EXPECT_NE(r.body.find("\"errorType\":\"Runtime.ExitError\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Runtime exited with error: exit status 3"), std::string::npos) << r.body;
}

TEST_F(ColdPath, TwentyInvocationsLeaveNoContainers) {
  for (int i = 0; i < 20; ++i) {
    std::string payload = "{\"i\":" + std::to_string(i) + "}";
    HttpResult r = daemon_->Invoke("echo", payload);
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.body, payload);
  }
  ASSERT_TRUE(daemon_->WaitIdle());
  // Only the network-namespace holders stay (kept for the next isolated start).
  EXPECT_TRUE(EnvironmentsOf(daemon_->pid()).empty()) << "containers left by this daemon";
}

// http mode: the shim starts the image's web service once and turns an API Gateway
// event into a real HTTP request to it.
TEST_F(ColdPath, WebServiceAnswersApiGatewayEventsInHttpMode) {
  HttpResult v2 = daemon_->Invoke(
      "webapp",
      R"({"version":"2.0","routeKey":"$default","rawPath":"/cgi-bin/hello","rawQueryString":"name=ada",)"
      R"("headers":{"accept":"application/json"},"requestContext":{"http":{"method":"GET","path":"/cgi-bin/hello"}},)"
      R"("isBase64Encoded":false})");
  ASSERT_EQ(v2.status, 200) << v2.body;
  EXPECT_EQ(v2.Header("x-amz-function-error"), "");
  EXPECT_NE(v2.body.find("\"statusCode\":200"), std::string::npos) << v2.body;
  EXPECT_NE(v2.body.find("\\\"hello\\\":\\\"ada\\\""), std::string::npos) << v2.body;
  EXPECT_NE(v2.body.find("\"cookies\":[\"greeted=ada"), std::string::npos) << v2.body;

  HttpResult v1 = daemon_->Invoke(
      "webapp",
      R"({"httpMethod":"POST","path":"/","headers":{"content-type":"text/plain"},"body":"posted body","isBase64Encoded":false})");
  ASSERT_EQ(v1.status, 200) << v1.body;
  EXPECT_NE(v1.body.find("\"body\":\"posted body\""), std::string::npos) << v1.body;
}

TEST_F(ColdPath, OneMebibyteThroughExecModeByteForByte) {
  std::string payload(1 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 131) >> 2);
  HttpResult r = Plain("echo-exec", payload);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  EXPECT_TRUE(r.body == payload) << "1 MiB through the exec-mode shim came back altered";
}

TEST_F(ColdPath, OneMebibyteThroughHttpModeByteForByte) {
  std::string text(1 << 20, 'a');
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + (i * 7) % 26);
  HttpResult r =
      daemon_->Invoke("webapp", R"({"httpMethod":"POST","path":"/","headers":{"content-type":)"
                                R"("text/plain"},"body":")" +
                                    text + R"(","isBase64Encoded":false})");
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  EXPECT_NE(r.body.find("\"body\":\"" + text + "\""), std::string::npos) << r.body.substr(0, 300);
}

TEST_F(ColdPath, HealthzAnswers) {
  HttpResult r = Http("GET", daemon_->url() + "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"status\":\"ok\""), std::string::npos);
}

// A daemon stopped while an invocation runs cancels it, removes the container and
// exits 0 (uv_loop_close succeeded).
TEST(ColdPathShutdown, SigtermDuringInvocationRemovesContainerAndExitsCleanly) {
  Daemon d;
  ASSERT_EQ(d.Start(), "");
  std::string url = d.url();
  HttpResult pending;
  std::thread caller([&] { pending = Http("POST", url + "/function/sleeper", "{}"); });
  std::string mine = "ephemera.daemon=" + std::to_string(d.pid());
  // Wait until the container exists, then stop the daemon under it.
  for (int i = 0; i < 500 && EnvironmentsOf(d.pid()).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(EnvironmentsOf(d.pid()).empty());
  EXPECT_EQ(d.Stop(), 0) << d.log();
  caller.join();
  EXPECT_TRUE(ContainersWithLabel(mine).empty());
  EXPECT_NE(d.log().find("stopped cleanly"), std::string::npos) << d.log();
}

// At start-up a daemon removes what crashed daemons left behind, and nothing of a
// daemon that is still running.
TEST(ColdPathStartup, ReapsContainersOfDeadDaemonsOnly) {
  Daemon alive;
  ASSERT_EQ(alive.Start(), "");
  std::string tag = std::to_string(getpid());
  auto create = [&](const std::string& owner) {
    std::string cmd =
        "/usr/bin/docker create --label ephemera.managed=1 --label ephemera.daemon=" + owner +
        " --label ephemera-test.reap=" + tag + " ephemera/busybox:latest true >/dev/null";
    return std::system(cmd.c_str());
  };
  ASSERT_EQ(create("999999999"), 0);  // no such process
  ASSERT_EQ(create(std::to_string(alive.pid())), 0);
  ASSERT_EQ(ContainersWithLabel("ephemera-test.reap=" + tag).size(), 2u);

  Daemon restarted;
  ASSERT_EQ(restarted.Start(), "");
  for (int i = 0; i < 500 && ContainersWithLabel("ephemera-test.reap=" + tag).size() != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto left = ContainersWithLabel("ephemera-test.reap=" + tag);
  EXPECT_EQ(left.size(), 1u);
  EXPECT_EQ(ContainersWithLabels(
                {"ephemera-test.reap=" + tag, "ephemera.daemon=" + std::to_string(alive.pid())})
                .size(),
            1u)
      << "the running daemon's container was removed";
  std::system(("/usr/bin/docker rm -f $(/usr/bin/docker ps -aq --filter label=ephemera-test.reap=" +
               tag + ") >/dev/null 2>&1")
                  .c_str());
  EXPECT_EQ(restarted.Stop(), 0);
  EXPECT_EQ(alive.Stop(), 0);
}

// Failure modes of the shim, through the daemon, with functions created through the API.
TEST(ColdPathShim, WebServiceThatNeverListensIsAnInitErrorWithItsLog) {
  Daemon d;
  ASSERT_EQ(d.Start({{"--init-timeout", "1500"}, ""}), "");
  HttpResult c =
      Http("POST", d.url() + "/2015-03-31/functions",
           R"({"FunctionName":"deaf","Role":"r","Code":{"ImageUri":"ephemera/busybox:latest"},)"
           R"("ImageConfig":{"EntryPoint":["sh","-c","echo warming up forever; sleep 30"]},)"
           R"("Environment":{"Variables":{"EPHEMERA_MODE":"http"}}})");
  ASSERT_EQ(c.status, 201) << c.body;
  HttpResult r = d.Invoke("deaf", "{}");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled");
  EXPECT_EQ(r.body.find("Sandbox.Timedout"), std::string::npos)
      << "the shim's init error should win: " << r.body;
  EXPECT_NE(r.body.find("warming up forever"), std::string::npos)
      << "the service's last log lines: " << r.body;
  EXPECT_EQ(d.Stop(), 0);
}

TEST(ColdPathShim, HandlerKilledBySignalIsAFunctionError) {
  Daemon d;
  ASSERT_EQ(d.Start(), "");
  HttpResult c =
      Http("POST", d.url() + "/2015-03-31/functions",
           R"({"FunctionName":"killed","Role":"r","Code":{"ImageUri":"ephemera/busybox:latest"},)"
           R"("ImageConfig":{"EntryPoint":["sh","-c","echo dying >&2; kill -9 $$"]}})");
  ASSERT_EQ(c.status, 201) << c.body;
  HttpResult r = d.Invoke("killed", "{}");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled");
  EXPECT_NE(r.body.find("Signal"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("dying"), std::string::npos) << "stderr tail: " << r.body;
  EXPECT_EQ(d.Stop(), 0);
}

TEST(ColdPathEngine, UnreachableEngineGives503NamingIt) {
  Daemon d;
  ASSERT_EQ(d.Start({{"--docker", "/tmp/ephemera-no-such-docker.sock"}, ""}), "");
  HttpResult r = d.Invoke("echo", "{}");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.Header("x-amzn-errortype"), "ServiceException");
  EXPECT_NE(r.body.find("ephemera-no-such-docker.sock"), std::string::npos) << r.body;
  EXPECT_EQ(d.Stop(), 0) << d.log();
}

}  // namespace
}  // namespace ephemera::testing
