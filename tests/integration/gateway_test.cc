// The HTTP gateway (runtime/api/gateway.h) end to end: the real daemon, the real dockerd,
// real HTTP requests on /gateway/{function}/... answered by real functions: webapp (busybox
// httpd CGI behind the shim's http mode), echo (returns the event it got), crash and sleeper
// (a function error and a timeout), and the kv batch (functions/kv: a proxy response with
// its own statusCode; Redis on 127.0.0.1:6379, namespaced copies as in orders_test.cc).
#include <gtest/gtest.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "runtime/json/json.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/store/redis_session.h"

namespace ephemera::testing {
namespace {

std::string Tag() {
  unsigned char b[3] = {};
  if (getrandom(b, sizeof b, 0) != 3) b[0] = static_cast<unsigned char>(getpid());
  char out[32];
  std::snprintf(out, sizeof out, "gw%d%02x%02x%02x", static_cast<int>(getpid() % 100000), b[0],
                b[1], b[2]);
  return out;
}

class Gateway : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tag_ = Tag();
    daemon_ = new Daemon;
    Daemon::Options o;
    o.extra_args = {"--redis-prefix", tag_ + ":ev:", "--daemon-id", tag_};
    ASSERT_EQ(daemon_->Start(o), "");
  }
  static void TearDownTestSuite() {
    for (const std::string& f : created_) {
      Http("DELETE", daemon_->url() + "/2015-03-31/functions/" + f);
    }
    EXPECT_TRUE(daemon_->WaitIdle());
    EXPECT_TRUE(EnvironmentsOf(daemon_->pid()).empty()) << "cold functions leave no container";
    EXPECT_EQ(daemon_->Stop(), 0) << daemon_->log();
    delete daemon_;
    daemon_ = nullptr;
    DeleteKeys(tag_ + "*");
  }
  static std::string Url(const std::string& path) { return daemon_->url() + path; }
  static json::Json Body(const HttpResult& r) { return json::Parse(r.body); }

  // A copy of the kv image's `role` as function <tag>-<role>, keys and peers under the tag.
  static int CreateKv(const std::string& role, int timeout) {
    std::string name = tag_ + "-" + role;
    std::string body = R"({"FunctionName":")" + name +
                       R"(","Code":{"ImageUri":"ephemera/kv:latest"},"Timeout":)" +
                       std::to_string(timeout) + R"(,"ImageConfig":{"Command":[")" + role +
                       R"("]},"Environment":{"Variables":{"EPHEMERA_MODE":"native",)" +
                       R"("KEY_PREFIX":")" + tag_ + R"(:","PEER_PREFIX":")" + tag_ +
                       R"(-","EPHEMERA_STORE_PREFIXES":")" + tag_ + R"(:batch:*"}}})";
    HttpResult r = Http("POST", Url("/2015-03-31/functions"), body);
    if (r.status == 201) created_.push_back(name);
    return static_cast<int>(r.status);
  }

  static std::string tag_;
  static Daemon* daemon_;
  static std::vector<std::string> created_;
};
std::string Gateway::tag_;
Daemon* Gateway::daemon_ = nullptr;
std::vector<std::string> Gateway::created_;

TEST_F(Gateway, AWebAppAnswersWithItsStatusBodyAndCookies) {
  HttpResult r =
      Http("GET", Url("/gateway/webapp/cgi-bin/hello?name=ada"), "", {"Cookie: a=1; b=2"});
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  json::Json j = Body(r);
  ASSERT_NE(j, nullptr) << r.body;
  EXPECT_EQ(json::GetString(j.get(), "hello"), "ada") << r.body;
  EXPECT_EQ(json::GetString(j.get(), "cookie"), "a=1; b=2") << "cookies[] reach the service";
  EXPECT_EQ(r.Header("content-type"), "application/json");
  // The fixture keeps the last of repeated headers: the second cookie the CGI set.
  EXPECT_EQ(r.Header("set-cookie"), "visits=1; Path=/");
  EXPECT_FALSE(r.Header("apigw-requestid").empty());
  EXPECT_EQ(r.Header("x-ephemera-start"), "cold");
  EXPECT_NE(r.Header("server-timing").find("total;dur="), std::string::npos);

  HttpResult missing = Http("GET", Url("/gateway/webapp/no/such/page"));
  EXPECT_EQ(missing.status, 404) << "the service's own status: " << missing.body;
  EXPECT_EQ(missing.Header("apigw-requestid").empty(), false);
}

TEST_F(Gateway, EchoReturnsTheEventItGot) {
  HttpResult r = Http("PUT", Url("/gateway/echo/items/7?tag=a&tag=b"), "hello ☃",
                      {"X-Trace: one", "Content-Type: text/plain"});
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.Header("content-type"), "application/json");
  json::Json e = Body(r);
  ASSERT_NE(e, nullptr) << r.body;
  EXPECT_EQ(json::GetString(e.get(), "version"), "2.0");
  EXPECT_EQ(json::GetString(e.get(), "rawPath"), "/items/7");
  EXPECT_EQ(json::GetString(e.get(), "rawQueryString"), "tag=a&tag=b");
  EXPECT_EQ(json::GetString(e.get(), "body"), "hello ☃");
  EXPECT_EQ(json::GetBool(e.get(), "isBase64Encoded"), false);
  const cJSON* headers = cJSON_GetObjectItem(e.get(), "headers");
  EXPECT_EQ(json::GetString(headers, "x-trace"), "one");
  EXPECT_EQ(json::GetString(cJSON_GetObjectItem(e.get(), "queryStringParameters"), "tag"), "a,b");
  EXPECT_EQ(json::GetString(cJSON_GetObjectItem(e.get(), "pathParameters"), "proxy"), "items/7");
  const cJSON* ctx = cJSON_GetObjectItem(e.get(), "requestContext");
  EXPECT_EQ(json::GetString(ctx, "requestId"), r.Header("apigw-requestid"));
  EXPECT_EQ(json::GetString(cJSON_GetObjectItem(ctx, "http"), "method"), "PUT");

  std::string binary("\x00\xff\x01", 3);
  HttpResult b = Http("POST", Url("/gateway/echo"), binary);
  ASSERT_EQ(b.status, 200) << b.body;
  json::Json be = Body(b);
  ASSERT_NE(be, nullptr) << b.body;
  EXPECT_EQ(json::GetBool(be.get(), "isBase64Encoded"), true);
  EXPECT_EQ(json::GetString(be.get(), "body"), "AP8B");
  EXPECT_EQ(json::GetString(be.get(), "rawPath"), "/");
  EXPECT_EQ(cJSON_GetObjectItem(be.get(), "pathParameters"), nullptr);
}

TEST_F(Gateway, AnUnknownFunctionIs404) {
  HttpResult r = Http("GET", Url("/gateway/no-such-function/x"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"message":"Not Found"})");
  EXPECT_EQ(r.Header("x-ephemera-error"), "no function no-such-function");
}

TEST_F(Gateway, AFunctionErrorIs502AndATimeoutIs504) {
  HttpResult crash = Http("POST", Url("/gateway/crash"), "{}");
  EXPECT_EQ(crash.status, 502) << crash.body;
  EXPECT_EQ(crash.body, R"({"message":"Internal Server Error"})");
  EXPECT_EQ(crash.Header("x-ephemera-error"), "Runtime.ExitError");
  EXPECT_EQ(crash.Header("x-amz-function-error"), "Unhandled");

  HttpResult slow = Http("GET", Url("/gateway/sleeper"));
  EXPECT_EQ(slow.status, 504) << slow.body;
  EXPECT_EQ(slow.body, R"({"message":"Endpoint request timed out"})");
}

TEST_F(Gateway, TheBatchGivesARealHttpStatus) {
  ASSERT_EQ(CreateKv("batch", 90), 201);
  ASSERT_EQ(CreateKv("batch-item", 10), 201);
  std::string url = Url("/gateway/" + tag_ + "-batch/batches");

  HttpResult bad = Http("POST", url, R"({"items":[]})", {"Content-Type: application/json"});
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("BadRequest"), std::string::npos) << bad.body;
  HttpResult junk = Http("POST", url, "not json");
  EXPECT_EQ(junk.status, 400) << junk.body;

  HttpResult good = Http("POST", url,
                         R"({"batch_id":"g1","wait_ms":60000,"items":[{"id":"a","value":"1"},)"
                         R"({"id":"b","value":"2"},{"id":"c","value":"3"}]})",
                         {"Content-Type: application/json"});
  ASSERT_EQ(good.status, 200) << good.body;
  EXPECT_EQ(good.Header("content-type"), "application/json");
  json::Json j = Body(good);
  ASSERT_NE(j, nullptr) << good.body;
  EXPECT_EQ(json::GetString(j.get(), "status"), "Done") << good.body;
  EXPECT_EQ(json::GetNumber(j.get(), "stored"), 3);
  RedisSession admin("127.0.0.1", 6379);
  EXPECT_EQ(admin.Command({"HGET", tag_ + ":batch:g1", "status"}).str, "Done");
}

}  // namespace
}  // namespace ephemera::testing
