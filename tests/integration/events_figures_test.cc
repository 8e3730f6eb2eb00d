// Figures for durable Event invocations (label "figures", not part of `ctest -L
// integration`): how long the 202 takes (the Redis write it waits for included), and
// events per second end to end under the cold and pool policies (and warm, for context).
// Real daemon, real dockerd, a private redis-server with the append-only file fsynced every
// second, as scripts/setup.sh starts it. Each test prints its figures and checks loose
// bounds, so a regression by an order of magnitude fails.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/json/json.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/redis/redis_server.h"

namespace ephemera::testing {
namespace {

using Clock = std::chrono::steady_clock;

bool WaitFor(const std::function<bool()>& done, int timeout_ms) {
  auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

size_t Discard(char*, size_t size, size_t n, void*) {
  return size * n;
}

// Event invocations over one keep-alive connection, as an SDK sends them.
class EventSender {
 public:
  explicit EventSender(const std::string& url) : curl_(curl_easy_init()) {
    headers_ = curl_slist_append(nullptr, "X-Amz-Invocation-Type: Event");
    headers_ = curl_slist_append(headers_, "Expect:");
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, Discard);
    curl_easy_setopt(curl_, CURLOPT_NOPROXY, "*");
    url_ = url;
  }
  ~EventSender() {
    curl_slist_free_all(headers_);
    curl_easy_cleanup(curl_);
  }
  // The HTTP status and the milliseconds it took.
  std::pair<long, double> Send(const std::string& function, const std::string& payload) {
    std::string url = url_ + "/2015-03-31/functions/" + function + "/invocations";
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
    auto start = Clock::now();
    long status = 0;
    if (curl_easy_perform(curl_) == CURLE_OK) {
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    }
    return {status, std::chrono::duration<double, std::milli>(Clock::now() - start).count()};
  }

 private:
  CURL* curl_;
  curl_slist* headers_;
  std::string url_;
};

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

long long Succeeded(const RedisServer& redis) {
  // Final states of this test's events (each test has its own Redis).
  return redis
      .Command({"EVAL",
                "local n = 0 for _, k in ipairs(redis.call('KEYS', "
                "'ephemera:events:done:*')) do if redis.call('HGET', k, 'condition') == "
                "'Success' then n = n + 1 end end return n",
                "0"})
      .integer;
}

RedisServer::Options Persistent() {
  RedisServer::Options o;
  o.persist = true;
  return o;
}

TEST(EventsFigures, AcceptanceLatencyOfThe202) {
  RedisServer redis;
  ASSERT_EQ(redis.Start(Persistent()), "");
  Daemon d;
  Daemon::Options o;
  o.extra_args = {"--redis", redis.url(), "--event-concurrency", "0"};  // accept only
  ASSERT_EQ(d.Start(o), "");
  EventSender sender(d.url());
  for (int i = 0; i < 50; ++i) ASSERT_EQ(sender.Send("echo", "{}").first, 202);  // warm-up
  std::vector<double> ms;
  std::string payload =
      "{\"order\":12345,\"items\":[1,2,3],\"note\":\"" + std::string(200, 'x') + "\"}";
  for (int i = 0; i < 2000; ++i) {
    auto [status, took] = sender.Send("echo", payload);
    ASSERT_EQ(status, 202);
    ms.push_back(took);
  }
  double p50 = Percentile(ms, 0.50), p99 = Percentile(ms, 0.99);
  std::printf(
      "Event acceptance (202, Redis AOF everysec, keep-alive, %zu B payload, n=%zu): "
      "p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n",
      payload.size(), ms.size(), p50, Percentile(ms, 0.90), p99,
      *std::max_element(ms.begin(), ms.end()));
  std::fflush(stdout);
  EXPECT_LT(p50, 20);
  EXPECT_LT(p99, 100);
  EXPECT_EQ(redis.Command({"XLEN", "ephemera:events"}).integer, 2050);
  EXPECT_EQ(d.Stop(), 0);
}

// Accepts `n` events of `function` and times until all have succeeded.
void Throughput(const char* label, const std::string& create_json, const std::string& function,
                int n, int ready_idle) {
  RedisServer redis;
  ASSERT_EQ(redis.Start(Persistent()), "");
  Daemon d;
  Daemon::Options o;
  o.extra_args = {"--redis", redis.url()};
  ASSERT_EQ(d.Start(o), "");
  if (!create_json.empty()) {
    ASSERT_EQ(Http("POST", d.url() + "/2015-03-31/functions", create_json).status, 201);
  }
  if (ready_idle > 0) {  // a pool: wait until it is filled
    ASSERT_TRUE(WaitFor(
        [&] {
          json::Json h = json::Parse(Http("GET", d.url() + "/healthz").body);
          return json::GetNumber(h.get(), "idle_environments").value_or(0) >= ready_idle;
        },
        30000));
  }
  EventSender sender(d.url());
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(sender.Send(function, "{\"i\":" + std::to_string(i) + "}").first, 202);
  }
  double accepted_s = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_TRUE(WaitFor([&] { return Succeeded(redis) == n; }, 300000)) << Succeeded(redis);
  double total_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "%s: %d events accepted in %.3f s, all succeeded after %.2f s: %.1f events/s end "
      "to end\n",
      label, n, accepted_s, total_s, n / total_s);
  std::fflush(stdout);
  EXPECT_GT(n / total_s, 0.5);
  EXPECT_EQ(d.Stop(), 0);
}

TEST(EventsFigures, EndToEndEventsPerSecondCold) {
  Throughput("cold (echo, a container per event)", "", "echo", 60, 0);
}

TEST(EventsFigures, EndToEndEventsPerSecondPool) {
  Throughput("pool (echo, EPHEMERA_POOL_SIZE=2)",
             R"({"FunctionName":"pooled","Code":{"ImageUri":"ephemera/echo:latest"},)"
             R"("Environment":{"Variables":{"EPHEMERA_MODE":"native","EPHEMERA_POLICY":"pool",)"
             R"("EPHEMERA_POOL_SIZE":"2"}}})",
             "pooled", 60, 2);
}

TEST(EventsFigures, EndToEndEventsPerSecondWarm) {
  Throughput("warm (echo, concurrency 4)",
             R"({"FunctionName":"warmed","Code":{"ImageUri":"ephemera/echo:latest"},)"
             R"("Environment":{"Variables":{"EPHEMERA_MODE":"native","EPHEMERA_POLICY":"warm",)"
             R"("EPHEMERA_CONCURRENCY":"4"}}})",
             "warmed", 500, 0);
}

}  // namespace
}  // namespace ephemera::testing
