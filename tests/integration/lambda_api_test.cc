// Lambda API fidelity against the real daemon and dockerd (issue 3): invocation
// types, log tails, error shapes and codes, size limits, the control plane.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "runtime/core/base64.h"
#include "tests/integration/daemon_fixture.h"

namespace ephemera::testing {
namespace {

class LambdaApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon;
    ASSERT_EQ(daemon_->Start(), "");
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(daemon_->Stop(), 0) << daemon_->log();
    delete daemon_;
  }
  static std::string Url(const std::string& path) { return daemon_->url() + path; }
  static double Metric(const std::string& name) { return daemon_->Metric(name); }
  static HttpResult CreateFunction(const std::string& json) {
    return Http("POST", Url("/2015-03-31/functions"), json, {"Content-Type: application/json"});
  }
  static Daemon* daemon_;
};
Daemon* LambdaApi::daemon_ = nullptr;

TEST_F(LambdaApi, FunctionNameAsFullAndPartialArn) {
  for (const char* ref : {"arn:aws:lambda:us-east-1:123456789012:function:echo",
                          "123456789012:function:echo", "echo:$LATEST"}) {
    HttpResult r = daemon_->Invoke(ref, "{\"a\":1}");
    EXPECT_EQ(r.status, 200) << ref << ": " << r.body;
    EXPECT_EQ(r.body, "{\"a\":1}") << ref;
  }
}

TEST_F(LambdaApi, QualifierLatestAcceptedOthersAre404) {
  HttpResult ok =
      Http("POST", Url("/2015-03-31/functions/echo/invocations?Qualifier=%24LATEST"), "{}");
  EXPECT_EQ(ok.status, 200) << ok.body;
  HttpResult bad = Http("POST", Url("/2015-03-31/functions/echo/invocations?Qualifier=7"), "{}");
  EXPECT_EQ(bad.status, 404);
  EXPECT_EQ(bad.Header("x-amzn-errortype"), "ResourceNotFoundException");
  EXPECT_NE(bad.body.find("function:echo:7"), std::string::npos) << bad.body;
}

TEST_F(LambdaApi, PayloadThatIsNotJsonIs400) {
  for (const char* type : {"RequestResponse", "Event"}) {
    HttpResult r =
        daemon_->Invoke("echo", "not json", {std::string("X-Amz-Invocation-Type: ") + type});
    EXPECT_EQ(r.status, 400) << type;
    EXPECT_EQ(r.Header("x-amzn-errortype"), "InvalidRequestContentException") << type;
    EXPECT_NE(r.body.find("Could not parse request body into json"), std::string::npos) << r.body;
  }
}

TEST_F(LambdaApi, ContentTypeThatCannotCarryJsonIs415) {
  HttpResult xml = daemon_->Invoke("echo", "{}", {"Content-Type: text/xml"});
  EXPECT_EQ(xml.status, 415);
  EXPECT_EQ(xml.Header("x-amzn-errortype"), "UnsupportedMediaTypeException");
  EXPECT_NE(xml.body.find("text/xml"), std::string::npos) << xml.body;
  for (const char* ok : {"application/json; charset=utf-8", "application/octet-stream",
                         "application/x-amz-json-1.1"}) {
    HttpResult r = daemon_->Invoke("echo", "{}", {std::string("Content-Type: ") + ok});
    EXPECT_EQ(r.status, 200) << ok << ": " << r.body;
  }
}

TEST_F(LambdaApi, BadInvocationTypeIs400) {
  HttpResult r = daemon_->Invoke("echo", "{}", {"X-Amz-Invocation-Type: Sometimes"});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Header("x-amzn-errortype"), "InvalidParameterValueException");
}

TEST_F(LambdaApi, EventInvocationIsAcceptedThenRuns) {
  ASSERT_TRUE(daemon_->WaitIdle());
  double before = Metric("ephemera_invocations_succeeded_total");
  HttpResult r = daemon_->Invoke("echo", "{\"async\":true}", {"X-Amz-Invocation-Type: Event"});
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "");
  // Accepted means in Redis: the daemon may not have read it back yet, so it is not in
  // flight either; wait for its success rather than for idleness.
  EXPECT_TRUE(WaitUntil(
      [&] { return Metric("ephemera_invocations_succeeded_total") >= before + 1; }, 30000))
      << Http("GET", daemon_->url() + "/metrics").body << daemon_->log();
  ASSERT_TRUE(daemon_->WaitIdle());
  EXPECT_EQ(Metric("ephemera_invocations_succeeded_total"), before + 1);
}

TEST(LambdaApiMetrics, PhaseSumsStartAtZeroAndAddEachSuccessfulInvocation) {
  Daemon d;
  ASSERT_EQ(d.Start(), "");
  auto sum = [&](const std::string& phase) {
    return d.Metric("ephemera_phase_seconds_sum{phase=\"" + phase + "\"}");
  };
  for (const char* phase : {"queue", "image", "create", "start", "init", "handler", "total"})
    EXPECT_EQ(sum(phase), 0.0) << phase << " before any invocation";
  HttpResult r = d.Invoke("echo", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  // Server-Timing "total;dur=MS": the sum is that invocation's total, in seconds.
  std::string timing = r.Header("server-timing");
  size_t at = timing.find("total;dur=");
  ASSERT_NE(at, std::string::npos) << timing;
  double total_ms = std::stod(timing.substr(at + 10));
  EXPECT_NEAR(sum("total"), total_ms / 1000.0, 0.0002) << timing;
  EXPECT_GT(sum("create"), 0.0);
  EXPECT_GT(sum("start"), 0.0);
  EXPECT_EQ(d.Stop(), 0) << d.log();
}

TEST(LambdaApiMetrics, ACallerThatGoesAwayIsCountedAsCancelledNotAsAServiceError) {
  Daemon d;
  ASSERT_EQ(d.Start(), "");
  // sleeper runs for its whole 1 s timeout; curl gives up after 0.5 s.
  std::string cmd = "curl -s -o /dev/null -m 0.5 -X POST -d '{}' " + d.url() +
                    "/2015-03-31/functions/sleeper/invocations";
  EXPECT_NE(std::system(cmd.c_str()), 0) << "curl should have timed out";
  EXPECT_TRUE(
      WaitUntil([&] { return d.Metric("ephemera_invocations_cancelled_total") == 1; }, 10000))
      << Http("GET", d.url() + "/metrics").body;
  EXPECT_TRUE(d.WaitIdle());
  EXPECT_EQ(d.Metric("ephemera_invocations_service_errors_total"), 0);
  EXPECT_EQ(d.Metric("ephemera_invocations_timeouts_total"), 0);
  EXPECT_EQ(d.Stop(), 0) << d.log();
}

TEST_F(LambdaApi, DryRunValidatesWithoutRunning) {
  double before = Metric("ephemera_invocations_started_total");
  HttpResult r = daemon_->Invoke("echo", "{}", {"X-Amz-Invocation-Type: DryRun"});
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(Metric("ephemera_invocations_started_total"), before);
}

TEST_F(LambdaApi, LogTailHasOutputAndLambdaLines) {
  HttpResult r = daemon_->Invoke("crash", "{}", {"X-Amz-Log-Type: Tail"});
  ASSERT_EQ(r.status, 200) << r.body;
  auto logs = Base64Decode(r.Header("x-amz-log-result"));
  ASSERT_TRUE(logs.has_value()) << r.Header("x-amz-log-result");
  EXPECT_NE(logs->find("START RequestId: "), std::string::npos) << *logs;
  EXPECT_NE(logs->find("about to crash"), std::string::npos) << *logs;
  EXPECT_NE(logs->find("END RequestId: "), std::string::npos) << *logs;
  EXPECT_NE(logs->find("REPORT RequestId: "), std::string::npos) << *logs;
  EXPECT_NE(logs->find("Billed Duration: "), std::string::npos) << *logs;
  EXPECT_NE(logs->find("Memory Size: 128 MB"), std::string::npos) << *logs;
  EXPECT_NE(logs->find("Max Memory Used: "), std::string::npos) << *logs;
  EXPECT_LE(logs->size(), 4096u);
}

TEST_F(LambdaApi, PayloadJustUnderSixMegabytesWorks) {
  std::string payload = "\"" + std::string(6186598, 'a') + "\"";
  HttpResult r = daemon_->Invoke("echo", payload);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  EXPECT_TRUE(r.body == payload);
}

TEST_F(LambdaApi, PayloadOverSixMegabytesRefusedWithoutBuffering) {
  long rss_before = daemon_->RssKib();
  std::string payload = "\"" + std::string(6396314, 'a') + "\"";
  HttpResult r = daemon_->Invoke("echo", payload);
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(r.Header("x-amzn-errortype"), "RequestEntityTooLargeException");
  long rss_after = daemon_->RssKib();
  EXPECT_LT(rss_after - rss_before, 6 * 1024)
      << "the daemon grew by " << rss_after - rss_before << " KiB";
}

TEST_F(LambdaApi, EventPayloadOverOneMegabyteRefused) {
  std::string payload = "\"" + std::string(1100 * 1000, 'a') + "\"";
  HttpResult r = daemon_->Invoke("echo", payload, {"X-Amz-Invocation-Type: Event"});
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.Header("x-amzn-errortype"), "RequestEntityTooLargeException");
}

TEST_F(LambdaApi, ClientContextMustBeBase64Json) {
  HttpResult r = daemon_->Invoke("echo", "{}", {"X-Amz-Client-Context: %%%notbase64"});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Header("x-amzn-errortype"), "InvalidParameterValueException");
  std::string ok = Base64Encode("{\"custom\":{\"k\":\"v\"}}");
  HttpResult fine = daemon_->Invoke("echo", "{}", {"X-Amz-Client-Context: " + ok});
  EXPECT_EQ(fine.status, 200) << fine.body;
}

// lambda-cpp carries its own Runtime API client (passthrough: no shim) and answers
// with the /next headers it saw.
TEST_F(LambdaApi, PassthroughRuntimeSeesTheLambdaHeadersAndClientContext) {
  std::string context = "{\"custom\":{\"who\":\"test\"}}";
  HttpResult r = daemon_->Invoke("lambda-cpp", "{\"q\":1}",
                                 {"X-Amz-Client-Context: " + Base64Encode(context)});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"payload\":\"{\\\"q\\\":1}\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"requestId\":\"" + r.Header("x-amzn-requestid") + "\""),
            std::string::npos)
      << r.body;
  EXPECT_NE(
      r.body.find("\"functionArn\":\"arn:aws:lambda:us-east-1:000000000000:function:lambda-cpp\""),
      std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("\"clientContext\":\"{\\\"custom\\\":{\\\"who\\\":\\\"test\\\"}}\""),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("\"traceId\":\"Root=1-"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("\"deadlineMs\":0"), std::string::npos) << r.body;
}

TEST_F(LambdaApi, PassthroughRuntimeErrorsAndExits) {
  HttpResult failed = daemon_->Invoke("lambda-cpp", "{\"fail\":\"asked to\"}");
  EXPECT_EQ(failed.status, 200);
  EXPECT_EQ(failed.Header("x-amz-function-error"), "Unhandled");
  EXPECT_NE(failed.body.find("\"errorType\":\"Function.Requested\""), std::string::npos)
      << failed.body;
  HttpResult exited = daemon_->Invoke("lambda-cpp", "{\"exit\":7}");
  EXPECT_EQ(exited.Header("x-amz-function-error"), "Unhandled");
  EXPECT_NE(exited.body.find("Runtime exited with error: exit status 7"), std::string::npos)
      << exited.body;
}

TEST_F(LambdaApi, InitErrorReachesTheCaller) {
  HttpResult c = CreateFunction(
      R"({"FunctionName":"init-fails","Role":"r","PackageType":"Image",)"
      R"("Code":{"ImageUri":"ephemera/busybox:latest"},"ImageConfig":{"EntryPoint":["/no/such/binary"]}})");
  ASSERT_EQ(c.status, 201) << c.body;
  HttpResult r = daemon_->Invoke("init-fails", "{}");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-function-error"), "Unhandled");
  EXPECT_NE(r.body.find("/no/such/binary"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("errorType"), std::string::npos) << r.body;
  ASSERT_TRUE(daemon_->WaitIdle());
  EXPECT_TRUE(ContainersWithLabel("ephemera.function=init-fails").empty());
}

// With no admission queue, a call over the limit is refused at once (issue 8 adds the queue,
// tested in environments_test).
TEST_F(LambdaApi, ConcurrencyLimitWithoutQueueGives429WithRetryAfter) {
  HttpResult c = CreateFunction(
      R"({"FunctionName":"one-at-a-time","Role":"r","Code":{"ImageUri":"ephemera/busybox:latest"},)"
      R"("ImageConfig":{"EntryPoint":["sh","-c","sleep 3; cat"]},"Timeout":10,)"
      R"("Environment":{"Variables":{"EPHEMERA_CONCURRENCY":"1","EPHEMERA_QUEUE_SIZE":"0"}}})");
  ASSERT_EQ(c.status, 201) << c.body;
  HttpResult first;
  std::thread t([&] { first = daemon_->Invoke("one-at-a-time", "{}"); });
  for (int i = 0; i < 500 && ContainersWithLabel("ephemera.function=one-at-a-time").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  HttpResult second = daemon_->Invoke("one-at-a-time", "{}");
  t.join();
  EXPECT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(second.status, 429) << second.body;
  EXPECT_EQ(second.Header("x-amzn-errortype"), "TooManyRequestsException");
  EXPECT_EQ(second.Header("retry-after"), "1");
  EXPECT_NE(second.body.find("ReservedFunctionConcurrentInvocationLimitExceeded"),
            std::string::npos);
}

TEST_F(LambdaApi, CreateGetListDeleteAndPersistAcrossRestart) {
  std::string spec =
      R"({"FunctionName":"made-by-test","Role":"r","PackageType":"Image","Code":{"ImageUri":"ephemera/shout:latest"},)"
      R"("Timeout":5,"MemorySize":256,"Environment":{"Variables":{"GREETING":"hi"}}})";
  HttpResult c = CreateFunction(spec);
  ASSERT_EQ(c.status, 201) << c.body;
  EXPECT_NE(c.body.find("\"FunctionName\":\"made-by-test\""), std::string::npos);
  EXPECT_EQ(CreateFunction(spec).status, 409);

  HttpResult invoked = daemon_->Invoke("made-by-test", "\"quiet\"");
  EXPECT_EQ(invoked.body, "\"QUIET\"");

  HttpResult list = Http("GET", Url("/2015-03-31/functions/"));
  EXPECT_EQ(list.status, 200);
  EXPECT_NE(list.body.find("made-by-test"), std::string::npos);
  HttpResult page = Http("GET", Url("/2015-03-31/functions/?MaxItems=2"));
  EXPECT_NE(page.body.find("\"NextMarker\""), std::string::npos) << page.body;

  // Restart on the same state file: the function is still there.
  std::string state = daemon_->state_path();
  ASSERT_EQ(daemon_->Stop(), 0);
  ASSERT_EQ(daemon_->Start({{}, state}), "");
  HttpResult get = Http("GET", Url("/2015-03-31/functions/made-by-test"));
  ASSERT_EQ(get.status, 200) << get.body;
  EXPECT_NE(get.body.find("\"MemorySize\":256"), std::string::npos) << get.body;
  EXPECT_NE(get.body.find("ephemera/shout:latest"), std::string::npos) << get.body;
  HttpResult conf = Http("GET", Url("/2015-03-31/functions/made-by-test/configuration"));
  EXPECT_EQ(conf.status, 200);

  HttpResult del = Http("DELETE", Url("/2015-03-31/functions/made-by-test"));
  EXPECT_EQ(del.status, 204);
  EXPECT_EQ(Http("GET", Url("/2015-03-31/functions/made-by-test")).status, 404);
}

TEST_F(LambdaApi, CreateWithBadSpecNamesTheField) {
  HttpResult name = CreateFunction(R"({"FunctionName":")" + std::string(65, 'a') +
                                   R"(","Role":"r","Code":{"ImageUri":"ephemera/echo:latest"}})");
  EXPECT_EQ(name.status, 400);
  EXPECT_EQ(name.Header("x-amzn-errortype"), "InvalidParameterValueException");
  HttpResult timeout = CreateFunction(
      R"({"FunctionName":"t","Role":"r","Code":{"ImageUri":"ephemera/echo:latest"},"Timeout":901})");
  EXPECT_EQ(timeout.status, 400);
  EXPECT_NE(timeout.body.find("Timeout"), std::string::npos) << timeout.body;
  HttpResult image = CreateFunction(
      R"({"FunctionName":"noimg","Role":"r","Code":{"ImageUri":"ephemera/not-built:latest"}})");
  EXPECT_EQ(image.status, 400);
  EXPECT_NE(image.body.find("ephemera/not-built:latest"), std::string::npos) << image.body;
  HttpResult garbage = CreateFunction("{not json");
  EXPECT_EQ(garbage.status, 400);
  EXPECT_EQ(garbage.Header("x-amzn-errortype"), "InvalidRequestContentException");
}

// Hostile input to CreateFunction (issue 9, section 3): a clear 400, nothing shortened.
TEST_F(LambdaApi, MalformedImageReferenceAndNulAreInvalidParameters) {
  HttpResult bad_ref =
      CreateFunction(R"js({"FunctionName":"bad-ref","Role":"r","Code":{"ImageUri":"$(id)"}})js");
  EXPECT_EQ(bad_ref.status, 400) << bad_ref.body;
  EXPECT_EQ(bad_ref.Header("x-amzn-errortype"), "InvalidParameterValueException");
  EXPECT_NE(bad_ref.body.find("$(id)"), std::string::npos) << "names the value: " << bad_ref.body;
  HttpResult nul = CreateFunction(
      R"({"FunctionName":"nul-env","Role":"r","Code":{"ImageUri":"ephemera/shout:latest"},)"
      R"("Environment":{"Variables":{"A":"before\u0000after"}}})");
  EXPECT_EQ(nul.status, 400) << nul.body;
  EXPECT_EQ(nul.Header("x-amzn-errortype"), "InvalidParameterValueException");
  EXPECT_NE(nul.body.find("NUL"), std::string::npos) << nul.body;
  EXPECT_EQ(Http("GET", Url("/2015-03-31/functions/nul-env")).status, 404) << "nothing created";
}

}  // namespace
}  // namespace ephemera::testing
