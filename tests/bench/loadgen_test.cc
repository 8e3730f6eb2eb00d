// The load generator against the project's own HTTP server on a free loopback port:
// what it counts, and what it says about replies it did not expect.
#include "bench/loadgen.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <memory>
#include <string>

#include "runtime/http/http_server.h"

namespace ephemera::bench {
namespace {

// Answers /warm as a warm start, /cold as a cold one, and /fail with a Lambda-style error.
class LoadGeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    server_ = std::make_unique<http::HttpServer>(
        &loop_,
        [](std::shared_ptr<http::HttpExchange> ex) {
          const std::string& path = ex->request().path;
          http::HttpResponse r(200, "{}", "application/json");
          if (path == "/fail") {
            r = http::HttpResponse(502, R"({"Message":"the engine went away"})",
                                   "application/json");
            r.headers.Set("X-Amzn-ErrorType", "ServiceException");
          } else {
            r.headers.Set("X-Ephemera-Start", path == "/cold" ? "cold" : "warm");
          }
          ex->Reply(std::move(r));
        },
        http::HttpServer::Options{});
    ASSERT_TRUE(server_->Listen("127.0.0.1", 0).ok());
  }
  void TearDown() override {
    server_->Close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    server_.reset();
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  // Two connections, three requests each, to `path`; the result once all are answered.
  LoadResult RunAgainst(const std::string& path) {
    LoadOptions o;
    o.port = server_->port();
    o.request = HttpPost("127.0.0.1:" + std::to_string(o.port), path, "{}");
    o.connections = 2;
    o.requests_per_connection = 3;
    o.close_when_done = true;
    o.duration_ms = 0;
    o.expect_header = "X-Ephemera-Start";
    o.expect_value = "warm";
    LoadResult out;
    bool done = false;
    LoadGenerator gen(&loop_, o);
    gen.Run([&](LoadResult r) {
      out = std::move(r);
      done = true;
    });
    while (!done && uv_run(&loop_, UV_RUN_ONCE) != 0) {
    }
    EXPECT_TRUE(done);
    return out;
  }

  uv_loop_t loop_;
  std::unique_ptr<http::HttpServer> server_;
};

TEST_F(LoadGeneratorTest, ExpectedRepliesCountAsCompletedWithNothingToSay) {
  LoadResult r = RunAgainst("/warm");
  EXPECT_EQ(r.completed, 6u);
  EXPECT_EQ(r.mismatched, 0u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.latencies.size(), 6u);
  EXPECT_TRUE(r.messages.empty());
  EXPECT_TRUE(r.mismatches.empty());
}

TEST_F(LoadGeneratorTest, AnUnexpectedHeaderIsCountedAndItsValueSaid) {
  LoadResult r = RunAgainst("/cold");
  EXPECT_EQ(r.completed, 0u);
  EXPECT_EQ(r.mismatched, 6u);
  EXPECT_TRUE(r.messages.empty());
  ASSERT_FALSE(r.mismatches.empty());
  EXPECT_EQ(r.mismatches[0], "X-Ephemera-Start: cold");
}

TEST_F(LoadGeneratorTest, AnErrorSaysItsStatusTypeAndTheStartOfItsBody) {
  LoadResult r = RunAgainst("/fail");
  EXPECT_EQ(r.completed, 0u);
  EXPECT_EQ(r.errors, 6u);
  ASSERT_FALSE(r.messages.empty());
  EXPECT_EQ(r.messages[0], R"(HTTP 502 ServiceException: {"Message":"the engine went away"})");
  EXPECT_LE(r.messages.size(), 5u);
}

}  // namespace
}  // namespace ephemera::bench
