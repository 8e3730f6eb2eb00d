// Invocation records (issue 10, section 3) against the real daemon, the real dockerd and a
// private redis-server: every invocation, synchronous or not, is recorded with its type,
// start, status, phases, sizes and attempt; retention by count; the routes and the CLI
// (`ephemera invocations [NAME] [--follow]`). Waits are bounded waits on conditions.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/json/json.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/redis/redis_server.h"

namespace ephemera::testing {
namespace {

bool WaitFor(const std::function<bool()>& done, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

Daemon::Options With(const RedisServer& redis, std::vector<std::string> more = {}) {
  Daemon::Options o;
  o.extra_args = {"--redis", redis.url()};
  o.extra_args.insert(o.extra_args.end(), more.begin(), more.end());
  return o;
}

// The records of `function` ("" = all), newest first.
std::vector<json::Json> Records(const Daemon& d, const std::string& function, int limit = 100) {
  HttpResult r = Http("GET", d.url() + "/ephemera/invocations?limit=" + std::to_string(limit) +
                                 (function.empty() ? "" : "&function=" + function));
  std::vector<json::Json> out;
  json::Json j = json::Parse(r.body);
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, cJSON_GetObjectItem(j.get(), "Invocations")) {
    out.push_back(json::Json(cJSON_Duplicate(item, true)));
  }
  return out;
}

const cJSON* Find(const std::vector<json::Json>& records, const std::string& id) {
  for (const auto& r : records) {
    if (json::GetString(r.get(), "id") == id) return r.get();
  }
  return nullptr;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(InvocationRecords, EverySyncPlainAndEventInvocationIsRecorded) {
  RedisServer redis;
  ASSERT_EQ(redis.Start(), "");
  Daemon d;
  ASSERT_EQ(d.Start(With(redis)), "");

  HttpResult sync = d.Invoke("echo", "{\"n\":12345}");
  ASSERT_EQ(sync.status, 200);
  HttpResult plain = Http("POST", d.url() + "/function/echo", "raw bytes");
  ASSERT_EQ(plain.status, 200);
  HttpResult failed = d.Invoke("crash", "{}");
  ASSERT_EQ(failed.status, 200);
  ASSERT_EQ(failed.Header("x-amz-function-error"), "Unhandled");
  HttpResult event = d.Invoke("echo", "{\"e\":1}", {"X-Amz-Invocation-Type: Event"});
  ASSERT_EQ(event.status, 202);
  HttpResult missing = d.Invoke("no-such-function", "{}");
  ASSERT_EQ(missing.status, 404);

  std::vector<json::Json> all;
  ASSERT_TRUE(WaitFor(
      [&] {
        all = Records(d, "");
        return Find(all, event.Header("x-amzn-requestid")) != nullptr;
      },
      30000));
  const cJSON* s = Find(all, sync.Header("x-amzn-requestid"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(json::GetString(s, "function"), "echo");
  EXPECT_EQ(json::GetString(s, "type"), "RequestResponse");
  EXPECT_EQ(json::GetString(s, "status"), "Success");
  EXPECT_EQ(json::GetString(s, "start"), sync.Header("x-ephemera-start"));
  EXPECT_EQ(json::GetNumber(s, "attempt"), 1);
  EXPECT_EQ(json::GetNumber(s, "payload_bytes"), 11);
  EXPECT_EQ(json::GetNumber(s, "result_bytes"), 11);
  const cJSON* phases = cJSON_GetObjectItem(s, "phases_ms");
  EXPECT_GT(json::GetNumber(phases, "total").value_or(0), 0);
  EXPECT_GE(json::GetNumber(phases, "handler").value_or(-1), 0);
  EXPECT_LE(json::GetNumber(s, "started_ms").value_or(0),
            json::GetNumber(s, "ended_ms").value_or(-1));
  EXPECT_EQ(cJSON_GetObjectItem(s, "error_type"), nullptr);

  const cJSON* p = Find(all, plain.Header("x-amzn-requestid"));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(json::GetString(p, "type"), "plain");
  EXPECT_EQ(json::GetNumber(p, "payload_bytes"), 9);

  const cJSON* f = Find(all, failed.Header("x-amzn-requestid"));
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(json::GetString(f, "function"), "crash");
  EXPECT_EQ(json::GetString(f, "status"), "FunctionError");
  EXPECT_EQ(json::GetString(f, "error_type"), "Runtime.ExitError");

  const cJSON* e = Find(all, event.Header("x-amzn-requestid"));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(json::GetString(e, "type"), "Event");
  EXPECT_EQ(json::GetNumber(e, "attempt"), 1);
  EXPECT_GT(json::GetNumber(e, "accepted_ms").value_or(0), 0);

  EXPECT_EQ(all.size(), 4u) << "a 404 ran nothing and is not an invocation";
  std::vector<json::Json> echo = Records(d, "echo");
  EXPECT_EQ(echo.size(), 3u);
  EXPECT_EQ(json::GetString(echo[0].get(), "id"), event.Header("x-amzn-requestid"))
      << "newest first";
  HttpResult one =
      Http("GET", d.url() + "/ephemera/invocations/" + sync.Header("x-amzn-requestid"));
  EXPECT_EQ(one.status, 200);
  EXPECT_NE(one.body.find("\"attempts\":[{"), std::string::npos) << one.body;
  EXPECT_EQ(Http("GET", d.url() + "/ephemera/invocations/nope").status, 404);
  EXPECT_EQ(d.Stop(), 0) << d.log();
}

TEST(InvocationRecords, RetentionKeepsTheNewestRecords) {
  RedisServer redis;
  ASSERT_EQ(redis.Start(), "");
  Daemon d;
  ASSERT_EQ(d.Start(With(redis, {"--records-max", "3"})), "");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    HttpResult r = Http("POST", d.url() + "/function/echo", "x");
    ASSERT_EQ(r.status, 200);
    ids.push_back(r.Header("x-amzn-requestid"));
  }
  std::vector<json::Json> kept;
  ASSERT_TRUE(WaitFor(
      [&] {
        kept = Records(d, "");
        return !kept.empty() && json::GetString(kept[0].get(), "id") == ids[4];
      },
      10000));
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(json::GetString(kept[2].get(), "id"), ids[2]);
  EXPECT_EQ(redis.Command({"EXISTS", "ephemera:inv:" + ids[0]}).integer, 0)
      << "the oldest record is deleted, not only unlisted";
  EXPECT_EQ(d.Stop(), 0) << d.log();
}

TEST(InvocationRecords, CliListsThemAndFollowsNewOnes) {
  RedisServer redis;
  ASSERT_EQ(redis.Start(), "");
  Daemon d;
  ASSERT_EQ(d.Start(With(redis)), "");
  HttpResult first = d.Invoke("shout", "\"a\"");
  ASSERT_EQ(first.status, 200);
  std::string first_id = first.Header("x-amzn-requestid");
  ASSERT_TRUE(WaitFor([&] { return !Records(d, "shout").empty(); }, 10000));

  std::string out = "/tmp/ephemera-invocations-" + std::to_string(getpid());
  std::string list = BinaryPath() + " invocations shout --endpoint " + d.url() + " > " + out;
  ASSERT_EQ(std::system(list.c_str()), 0);
  std::string listed = ReadFile(out);
  EXPECT_NE(listed.find(first_id), std::string::npos) << listed;
  EXPECT_NE(listed.find("RequestResponse"), std::string::npos) << listed;
  EXPECT_NE(listed.find("Success"), std::string::npos) << listed;

  pid_t follower = fork();
  if (follower == 0) {
    FILE* f = std::freopen(out.c_str(), "w", stdout);
    (void)f;
    std::string endpoint = d.url();
    execl(BinaryPath().c_str(), "ephemera", "invocations", "shout", "--follow", "--endpoint",
          endpoint.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_TRUE(WaitFor([&] { return ReadFile(out).find(first_id) != std::string::npos; }, 10000));
  HttpResult next = d.Invoke("shout", "\"b\"", {"X-Amz-Invocation-Type: Event"});
  ASSERT_EQ(next.status, 202);
  std::string next_id = next.Header("x-amzn-requestid");
  bool followed = WaitFor([&] { return ReadFile(out).find(next_id) != std::string::npos; }, 20000);
  kill(follower, SIGTERM);
  waitpid(follower, nullptr, 0);
  std::string followed_text = ReadFile(out);
  std::remove(out.c_str());
  EXPECT_TRUE(followed) << followed_text;
  EXPECT_NE(followed_text.find("Event#1"), std::string::npos) << followed_text;
  EXPECT_EQ(d.Stop(), 0) << d.log();
}

TEST(InvocationRecords, HelpDescribesEveryNewOptionAndCommand) {
  std::string out = "/tmp/ephemera-help-" + std::to_string(getpid());
  ASSERT_EQ(std::system((BinaryPath() + " --help > " + out).c_str()), 0);
  std::string help = ReadFile(out);
  std::remove(out.c_str());
  for (const char* word :
       {"--redis URL", "--redis-prefix", "--redis-timeout", "--daemon-id", "--event-concurrency",
        "--event-retry-delays", "--event-service-retry", "--event-claim-idle", "--event-max-queued",
        "--records-max N", "--records-max-age", "ephemera invocations", "--follow",
        "ephemera dlq list", "ephemera dlq replay ID", "REDIS_URL"}) {
    EXPECT_NE(help.find(word), std::string::npos) << word;
  }
  // Every option the help names is one serve accepts (a value it refuses is a usage error,
  // exit 2, not "unknown option").
  for (const char* option : {"--redis-timeout", "--event-concurrency", "--records-max"}) {
    std::string cmd = BinaryPath() + " serve " + option + " bogus 2> " + out;
    EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 2) << option;
    EXPECT_EQ(ReadFile(out).find("unknown serve option"), std::string::npos) << option;
  }
  std::remove(out.c_str());
}

}  // namespace
}  // namespace ephemera::testing
