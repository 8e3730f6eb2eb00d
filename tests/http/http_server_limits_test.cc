// Tests of HttpServer against clients that misbehave: the header, body and idle
// timeouts, the connection limit, and that every descriptor is released. Each
// test runs over TCP and over a unix socket (the two must behave the same).
// The timeouts are short (100-300 ms) and elapsed times are read from the
// loop's clock; nothing sleeps.
#include <gtest/gtest.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/http/http_server.h"
#include "tests/http/http_test_support.h"

namespace ephemera::http {
namespace {

using testing::EchoPath;
using testing::TestClient;

// Timeouts long enough never to fire in a test unless one is shortened.
HttpServer::Options Patient() {
  HttpServer::Options o;
  o.header_timeout_ms = 10'000;
  o.body_timeout_ms = 10'000;
  o.idle_timeout_ms = 10'000;
  return o;
}

class HttpLimitsTest : public testing::HttpServerTest, public ::testing::WithParamInterface<bool> {
 protected:
  void Start(HttpServer::Handler handler, HttpServer::Options options) {
    StartServer(std::move(handler), std::move(options), /*unix_socket=*/GetParam());
  }

  // Calls `step` every `ms` until it returns false, which it must do soon
  // after the test body ends (TearDown waits for that, so no timer is left).
  void Every(uint64_t ms, std::function<bool()> step) {
    ++chains_;
    Repeat(ms, std::move(step));
  }

  void TearDown() override {
    RunUntil([&] { return chains_ == 0; }, 5000);
    HttpServerTest::TearDown();
  }

 private:
  void Repeat(uint64_t ms, std::function<bool()> step) {
    After(ms, [this, ms, step = std::move(step)]() mutable {
      if (step()) {
        Repeat(ms, std::move(step));
      } else {
        --chains_;
      }
    });
  }

  int chains_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Transports, HttpLimitsTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Unix") : std::string("Tcp");
                         });

TEST_P(HttpLimitsTest, SlowlorisHalfAHeadIsAnswered408AndClosedAtTheHeaderTimeout) {
  auto o = Patient();
  o.header_timeout_ms = 200;
  bool handled = false;
  Start([&](std::shared_ptr<HttpExchange>) { handled = true; }, o);
  uint64_t t0 = Now();
  TestClient& c = Connect();
  c.Send("GET /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\nX-Slow: ab");
  ASSERT_TRUE(RunUntil([&] { return c.eof(); }, 3000));
  uint64_t elapsed = Now() - t0;
  EXPECT_GE(elapsed, 190u);
  EXPECT_LT(elapsed, 1500u);
  ASSERT_EQ(c.Responses().size(), 1u) << c.received();
  EXPECT_EQ(c.Responses()[0].status, 408);
  EXPECT_EQ(c.Responses()[0].headers.Get("Connection"), "close");
  EXPECT_NE(c.Responses()[0].body.find("within 200 ms"), std::string::npos);
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  EXPECT_FALSE(handled);
  EXPECT_EQ(server_->stats().header_timeouts, 1u);
  EXPECT_EQ(server_->stats().body_timeouts, 0u);
}

TEST_P(HttpLimitsTest, TricklingTheHeadDoesNotExtendTheHeaderTimeout) {
  auto o = Patient();
  o.header_timeout_ms = 300;
  Start(EchoPath, o);
  uint64_t t0 = Now();
  TestClient& c = Connect();
  std::string head = "GET / HTTP/1.1\r\nX-Trickle: " + std::string(100, 'a');
  // Owned by the chain too: its last step may run after this body has returned.
  auto sent_bytes = std::make_shared<size_t>(0);
  Every(40, [&c, head, sent_bytes] {
    size_t& sent = *sent_bytes;
    if (c.eof() || c.read_error() != 0 || sent == head.size()) return false;
    c.Send(head.substr(sent++, 1));
    return true;
  });
  const size_t& sent = *sent_bytes;
  ASSERT_TRUE(RunUntil([&] { return c.eof() || c.read_error() != 0; }, 3000));
  uint64_t elapsed = Now() - t0;
  EXPECT_LT(elapsed, 1000u) << "a byte every 40 ms must not keep the head open";
  EXPECT_GT(sent, 3u);
  EXPECT_LT(sent, head.size());
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  EXPECT_EQ(server_->stats().header_timeouts, 1u);
}

TEST_P(HttpLimitsTest, ConnectionThatSendsNothingIsClosedWithoutAnAnswer) {
  auto o = Patient();
  o.header_timeout_ms = 150;
  Start(EchoPath, o);
  TestClient& c = Connect();
  ASSERT_TRUE(RunUntil([&] { return c.eof(); }, 3000));
  EXPECT_TRUE(c.received().empty()) << c.received();
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  EXPECT_EQ(server_->stats().header_timeouts, 1u);
}

TEST_P(HttpLimitsTest, StalledBodyIsAnswered408AndClosed) {
  auto o = Patient();
  o.body_timeout_ms = 200;
  bool handled = false;
  Start([&](std::shared_ptr<HttpExchange>) { handled = true; }, o);
  TestClient& c = Connect();
  c.Send("POST /f HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789");
  uint64_t t0 = Now();
  ASSERT_TRUE(RunUntil([&] { return c.eof() || c.read_error() != 0; }, 3000));
  uint64_t elapsed = Now() - t0;
  EXPECT_GE(elapsed, 150u);
  EXPECT_LT(elapsed, 1500u);
  ASSERT_EQ(c.Responses().size(), 1u) << c.received();
  EXPECT_EQ(c.Responses()[0].status, 408);
  EXPECT_NE(c.Responses()[0].body.find("no request body bytes"), std::string::npos);
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  EXPECT_FALSE(handled);
  EXPECT_EQ(server_->stats().body_timeouts, 1u);
  EXPECT_EQ(server_->stats().header_timeouts, 0u);
}

TEST_P(HttpLimitsTest, SlowButSteadyBodyIsNotTimedOut) {
  auto o = Patient();
  o.body_timeout_ms = 200;
  Start(EchoPath, o);
  TestClient& c = Connect();
  const std::string body = "abcdefghijklmnopqrst";  // 20 bytes, 50 ms apart: 1 s in all
  c.Send("POST /slow HTTP/1.1\r\nContent-Length: 20\r\n\r\n");
  // The chain's last step runs after the reply, possibly once this body has returned
  // (TearDown waits for it): it owns what it uses.
  Every(50, [&c, body, sent = size_t{0}]() mutable {
    if (sent == body.size()) return false;
    c.Send(body.substr(sent++, 1));
    return true;
  });
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1 || c.eof(); }, 5000));
  ASSERT_EQ(c.Responses().size(), 1u) << c.received();
  EXPECT_EQ(c.Responses()[0].status, 200);
  EXPECT_EQ(c.Responses()[0].body, "path=/slow body=" + body);
  EXPECT_EQ(server_->stats().body_timeouts, 0u);
}

TEST_P(HttpLimitsTest, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  auto o = Patient();
  o.idle_timeout_ms = 200;
  Start(EchoPath, o);
  TestClient& c = Connect();
  c.Send("GET /once HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  EXPECT_EQ(c.Responses()[0].headers.Get("Connection"), "keep-alive");
  uint64_t t0 = Now();
  ASSERT_TRUE(RunUntil([&] { return c.eof(); }, 3000));
  uint64_t elapsed = Now() - t0;
  EXPECT_GE(elapsed, 150u);
  EXPECT_LT(elapsed, 1500u);
  EXPECT_EQ(c.Responses().size(), 1u) << "idle close sends nothing: " << c.received();
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  EXPECT_EQ(server_->stats().idle_timeouts, 1u);
  EXPECT_EQ(server_->stats().header_timeouts, 0u);
}

TEST_P(HttpLimitsTest, RequestsMoreOftenThanTheIdleTimeoutKeepTheConnection) {
  auto o = Patient();
  o.idle_timeout_ms = 200;
  o.header_timeout_ms = 200;
  Start(EchoPath, o);
  TestClient& c = Connect();
  Every(80, [&c, sent = 0]() mutable {
    if (sent == 10 || c.eof()) return false;
    c.Send("GET /" + std::to_string(sent++) + " HTTP/1.1\r\n\r\n");
    return true;
  });
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 10 || c.eof(); }, 5000));
  EXPECT_EQ(c.Responses().size(), 10u);
  EXPECT_FALSE(c.eof());
  EXPECT_EQ(server_->stats().idle_timeouts, 0u);
  EXPECT_EQ(server_->stats().header_timeouts, 0u);
}

TEST_P(HttpLimitsTest, ParkedExchangeIsNeverTimedOut) {
  // A Runtime API /next long-poll, or a long invoke: with the handler, so no
  // timer applies, however short they are.
  auto o = Patient();
  o.header_timeout_ms = 100;
  o.body_timeout_ms = 100;
  o.idle_timeout_ms = 100;
  std::shared_ptr<HttpExchange> parked;
  int aborts = 0;
  Start(
      [&](std::shared_ptr<HttpExchange> ex) {
        if (ex->request().path == "/next") {
          ex->SetOnAbort([&] { ++aborts; });
          parked = std::move(ex);
        } else {
          EchoPath(ex);
        }
      },
      o);
  TestClient& c = Connect();
  c.Send("POST /next HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_TRUE(RunUntil([&] { return parked != nullptr; }));
  RunFor(600);
  EXPECT_FALSE(c.eof());
  EXPECT_TRUE(parked->waiting());
  EXPECT_EQ(aborts, 0);
  parked->Reply(HttpResponse(200, "event"));
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  EXPECT_EQ(c.Responses()[0].body, "event");
  // Idle again now: the idle timeout applies from the reply on.
  ASSERT_TRUE(RunUntil([&] { return c.eof(); }, 3000));
  auto stats = server_->stats();
  EXPECT_EQ(stats.header_timeouts + stats.body_timeouts, 0u);
  EXPECT_EQ(stats.idle_timeouts, 1u);
}

TEST_P(HttpLimitsTest, PartialRequestBehindAParkedOneIsTimedFromWhenItIsTakenUp) {
  auto o = Patient();
  o.header_timeout_ms = 150;
  std::shared_ptr<HttpExchange> parked;
  Start(
      [&](std::shared_ptr<HttpExchange> ex) {
        if (ex->request().path == "/next") {
          parked = std::move(ex);
        } else {
          EchoPath(ex);
        }
      },
      o);
  TestClient& c = Connect();
  c.Send("GET /next HTTP/1.1\r\n\r\nGET /half HTTP/1.1\r\nX-A:");
  ASSERT_TRUE(RunUntil([&] { return parked != nullptr; }));
  RunFor(400);  // well past the header timeout: the half request is not being read yet
  EXPECT_FALSE(c.eof());
  parked->Reply(HttpResponse(200, "event"));
  uint64_t t0 = Now();
  ASSERT_TRUE(RunUntil([&] { return c.eof(); }, 3000));
  EXPECT_GE(Now() - t0, 100u);
  ASSERT_EQ(c.Responses().size(), 2u) << c.received();
  EXPECT_EQ(c.Responses()[0].body, "event");
  EXPECT_EQ(c.Responses()[1].status, 408);
  EXPECT_EQ(server_->stats().header_timeouts, 1u);
}

TEST_P(HttpLimitsTest, ConnectionOverTheLimitGets503ThroughTheErrorHookThenClose) {
  auto o = Patient();
  o.max_connections = 2;
  std::vector<int> hook_statuses;
  o.error_response = [&](int status, const std::string& message, const HttpRequest&) {
    hook_statuses.push_back(status);
    HttpResponse r(status, "{\"message\":\"" + message + "\"}", "application/json");
    return r;
  };
  Start(EchoPath, o);
  TestClient& a = Connect();
  a.Send("GET /a HTTP/1.1\r\n\r\n");
  TestClient& b = Connect();
  b.Send("GET /b HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return a.Responses().size() == 1 && b.Responses().size() == 1; }));
  TestClient& refused = Connect();
  refused.Send("GET /c HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return refused.eof() || refused.read_error() != 0; }, 5000));
  ASSERT_EQ(refused.Responses().size(), 1u) << refused.received();
  EXPECT_EQ(refused.Responses()[0].status, 503);
  EXPECT_EQ(refused.Responses()[0].headers.Get("Connection"), "close");
  EXPECT_EQ(refused.Responses()[0].body,
            "{\"message\":\"connection limit of 2 reached; try again later\"}");
  EXPECT_EQ(hook_statuses, std::vector<int>{503});
  auto stats = server_->stats();
  EXPECT_EQ(stats.connections_refused, 1u);
  EXPECT_EQ(stats.connections_accepted, 2u);
  EXPECT_EQ(stats.connections_open, 2u);
  EXPECT_EQ(stats.requests, 2u);
  // The two served connections still work; once one goes, a newcomer is served.
  a.Send("GET /a2 HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return a.Responses().size() == 2; }));
  b.Close();
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 1; }));
  TestClient& late = Connect();
  late.Send("GET /late HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return late.Responses().size() == 1 || late.eof(); }));
  ASSERT_EQ(late.Responses().size(), 1u);
  EXPECT_EQ(late.Responses()[0].status, 200);
  EXPECT_EQ(server_->stats().connections_refused, 1u);
}

TEST_P(HttpLimitsTest, PlainTextRefusalSaysTheLimitWasReached) {
  auto o = Patient();
  o.max_connections = 1;
  Start(EchoPath, o);
  TestClient& a = Connect();
  a.Send("GET /a HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return a.Responses().size() == 1; }));
  TestClient& refused = Connect();  // sends nothing: answered anyway
  ASSERT_TRUE(RunUntil([&] { return refused.eof() || refused.read_error() != 0; }, 5000));
  ASSERT_EQ(refused.Responses().size(), 1u) << refused.received();
  EXPECT_EQ(refused.Responses()[0].status, 503);
  EXPECT_EQ(refused.Responses()[0].body, "connection limit of 1 reached; try again later\n");
}

TEST_P(HttpLimitsTest, EveryDescriptorIsReleased) {
  {
    // The loop's first listen opens the descriptor libuv keeps in reserve for
    // EMFILE (until the loop closes): open it before the baseline.
    HttpServer warm_up(&loop_, EchoPath, {});
    ASSERT_TRUE(warm_up.Listen("127.0.0.1", 0).ok());
  }
  RunFor(2);
  auto before = testing::OpenFds();
  auto o = Patient();
  o.header_timeout_ms = 150;
  o.body_timeout_ms = 150;
  o.idle_timeout_ms = 150;
  o.max_connections = 4;
  Start(EchoPath, o);
  std::vector<TestClient*> cs;
  for (int i = 0; i < 4; ++i) cs.push_back(&Connect());
  cs[0]->Send("GET /idle HTTP/1.1\r\n\r\n");                      // idle timeout
  cs[1]->Send("GET /slow HTTP/1.1\r\nX-A");                       // header timeout
  cs[2]->Send("POST /b HTTP/1.1\r\nContent-Length: 9\r\n\r\nx");  // body timeout
  // cs[3] sends nothing: closed at the header timeout without an answer.
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 4; }));
  TestClient& refused = Connect();  // over the limit
  ASSERT_TRUE(RunUntil(
      [&] {
        for (auto* c : cs) {
          if (!c->eof()) return false;
        }
        return refused.eof();
      },
      5000));
  EXPECT_EQ(refused.Responses().size(), 1u);
  TestClient& bye = Connect();
  bye.Send("GET /bye HTTP/1.1\r\nConnection: close\r\n\r\n");  // served and closed
  ASSERT_TRUE(RunUntil([&] { return bye.eof(); }));
  EXPECT_EQ(bye.Responses().size(), 1u);
  auto stats = server_->stats();
  EXPECT_EQ(stats.idle_timeouts, 1u);
  EXPECT_EQ(stats.header_timeouts, 2u);
  EXPECT_EQ(stats.body_timeouts, 1u);
  EXPECT_EQ(stats.connections_refused, 1u);
  EXPECT_EQ(stats.connections_accepted, 5u);
  for (auto* c : cs) c->Close();
  refused.Close();
  bye.Close();
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  server_.reset();
  RunFor(5);  // the close callbacks run
  EXPECT_EQ(testing::OpenFds(), before);
}

TEST(HttpServerOptions, DefaultsAreTheOnesTheHeaderStates) {
  HttpServer::Options o;
  EXPECT_EQ(o.header_timeout_ms, 10'000u);
  EXPECT_EQ(o.body_timeout_ms, 10'000u);
  EXPECT_EQ(o.idle_timeout_ms, 60'000u);
  EXPECT_EQ(o.max_connections, 4096u);
}

}  // namespace
}  // namespace ephemera::http
