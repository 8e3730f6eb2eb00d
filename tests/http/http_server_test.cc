// Tests of HttpServer over real TCP on 127.0.0.1: the server and the client
// sockets run on the same loop, which the fixture owns. Nothing sleeps: the
// tests run the loop until what they wait for has happened (a watchdog timer
// fails a test that would otherwise hang).
#include "runtime/http/http_server.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/http/http_test_support.h"

namespace ephemera::http {
namespace {

using testing::ClientResponse;
using testing::EchoPath;
using testing::HttpServerTest;
using testing::TestClient;

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  StartServer(EchoPath);
  TestClient& c = Connect();
  c.Send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  c.Send("POST /two HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 2; })) << c.received();
  auto rs = c.Responses();
  EXPECT_EQ(rs[0].status, 200);
  EXPECT_EQ(rs[0].body, "path=/one body=");
  EXPECT_EQ(rs[0].headers.Get("Connection"), "keep-alive");
  EXPECT_EQ(rs[1].body, "path=/two body=hi");
  EXPECT_EQ(server_->connection_count(), 1u);
  EXPECT_EQ(server_->requests_served(), 2u);
  EXPECT_FALSE(c.eof());
}

TEST_F(HttpServerTest, RequestArrivingOneByteAtATimeIsServed) {
  StartServer(EchoPath);
  TestClient& c = Connect();
  std::string wire =
      "POST /2015-03-31/functions/f%20g/invocations HTTP/1.1\r\nHost: x\r\n"
      "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  for (char ch : wire) {
    c.Send(std::string(1, ch));
    ASSERT_TRUE(RunUntil([&] { return c.writes_pending() == 0; }));
    uv_run(&loop_, UV_RUN_NOWAIT);  // a turn for the server to read this byte on its own
  }
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  EXPECT_EQ(c.Responses()[0].body, "path=/2015-03-31/functions/f g/invocations body=abcde");
}

TEST_F(HttpServerTest, PipelinedRepliesGoOutInRequestOrder) {
  std::vector<std::string> handled;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    handled.push_back(ex->request().path);
    if (ex->request().path == "/slow") {
      // Asynchronous: answered from a timer, after the fast one has arrived.
      After(20, [ex] { ex->Reply(HttpResponse(200, "slow")); });
    } else {
      ex->Reply(HttpResponse(200, "fast" + ex->request().path));
    }
  });
  TestClient& c = Connect();
  c.Send(
      "GET /slow HTTP/1.1\r\n\r\n"
      "GET /fast1 HTTP/1.1\r\n\r\n"
      "POST /fast2 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
  ASSERT_TRUE(RunUntil([&] { return !handled.empty(); }));
  // One request in flight at a time: the others wait for the slow reply.
  EXPECT_EQ(handled, (std::vector<std::string>{"/slow"}));
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 3; }));
  auto rs = c.Responses();
  EXPECT_EQ(rs[0].body, "slow");
  EXPECT_EQ(rs[1].body, "fast/fast1");
  EXPECT_EQ(rs[2].body, "fast/fast2");
  EXPECT_EQ(handled, (std::vector<std::string>{"/slow", "/fast1", "/fast2"}));
  EXPECT_EQ(server_->connection_count(), 1u);
}

// A Runtime API in miniature: POST /result gets a 202 that may wait for the next reply;
// any other request is parked in *parked, for the test to answer.
HttpServer::Handler ResultAndParkedNext(std::shared_ptr<HttpExchange>* parked) {
  return [parked](std::shared_ptr<HttpExchange> ex) {
    if (ex->request().path == "/result") {
      HttpResponse r(202, "accepted");
      r.may_wait_for_next = true;
      ex->Reply(std::move(r));
    } else {
      *parked = std::move(ex);
    }
  };
}

constexpr char kResultThenNext[] =
    "POST /result HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"
    "GET /next HTTP/1.1\r\n\r\n";

// The Runtime API's 202 to a runtime that pipelined its next GET /next waits for that
// event: both replies reach the client in one read.
TEST_F(HttpServerTest, AReplyThatMayWaitGoesOutWithThePipelinedRequestsReply) {
  std::shared_ptr<HttpExchange> parked;
  StartServer(ResultAndParkedNext(&parked));
  TestClient& c = Connect();
  c.Send(kResultThenNext);
  ASSERT_TRUE(RunUntil([&] { return parked != nullptr; }));
  After(5, [&] { parked->Reply(HttpResponse(200, "event")); });
  ASSERT_TRUE(RunUntil([&] { return !c.Responses().empty(); }));
  // Held, the 202 came with the event; sent at once, it would have come alone 5 ms earlier.
  auto rs = c.Responses();
  ASSERT_EQ(rs.size(), 2u) << c.received();
  EXPECT_EQ(c.reads(), 1);
  EXPECT_EQ(rs[0].status, 202);
  EXPECT_EQ(rs[0].body, "accepted");
  EXPECT_EQ(rs[1].body, "event");
}

TEST_F(HttpServerTest, AHeldReplyGoesAloneWhenThePipelinedRequestIsNotAnsweredInTime) {
  std::shared_ptr<HttpExchange> parked;  // answered only after the client has the 202
  StartServer(ResultAndParkedNext(&parked));
  TestClient& c = Connect();
  c.Send(kResultThenNext);
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  EXPECT_EQ(c.Responses()[0].status, 202);
  ASSERT_NE(parked, nullptr);
  parked->Reply(HttpResponse(200, "event"));
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 2; }));
  EXPECT_EQ(c.Responses()[1].body, "event");
  // Without a pipelined request nothing waits: the 202 of a lone POST comes by itself.
  c.Send("POST /result HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 3; }));
  EXPECT_EQ(c.Responses()[2].status, 202);
}

TEST_F(HttpServerTest, ThousandsOfPipelinedRequestsInOneWriteAnsweredInOrder) {
  const int kRequests = 5000;
  int next_expected = 0;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    // Appended, not `"/" + std::to_string(n)`: GCC 12 at -O2 reports a false
    // -Wrestrict in the inlined operator+(const char*, string&&).
    std::string expected_path("/");
    expected_path += std::to_string(next_expected);
    EXPECT_EQ(ex->request().path, expected_path);
    ++next_expected;
    ex->Reply(HttpResponse(200, ex->request().path.substr(1)));
  });
  TestClient& c = Connect();
  std::string burst;
  for (int i = 0; i < kRequests; ++i) {
    burst += "GET /";
    burst += std::to_string(i);
    burst += " HTTP/1.1\r\n\r\n";
  }
  c.Send(burst);
  ASSERT_TRUE(RunUntil([&] { return next_expected == kRequests; }));
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == kRequests; }));
  auto rs = c.Responses();
  for (int i = 0; i < kRequests; ++i) ASSERT_EQ(rs[i].body, std::to_string(i));
}

TEST_F(HttpServerTest, ClientDisconnectBeforeReplyRunsAbortOnce) {
  std::shared_ptr<HttpExchange> held;
  int aborts = 0;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    ex->SetOnAbort([&aborts] { ++aborts; });
    held = std::move(ex);  // a long poll: answered much later, if ever
  });
  TestClient& c = Connect();
  c.Send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return held != nullptr; }));
  EXPECT_TRUE(held->waiting());
  c.Close();
  ASSERT_TRUE(RunUntil([&] { return aborts > 0; }));
  EXPECT_TRUE(held->aborted());
  EXPECT_FALSE(held->waiting());
  held->Reply(HttpResponse(200, "too late"));  // a no-op
  held->Reply(HttpResponse(200, "still too late"));
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  EXPECT_EQ(aborts, 1);
}

TEST_F(HttpServerTest, ClientResetBeforeReplyRunsAbortOnce) {
  std::shared_ptr<HttpExchange> held;
  int aborts = 0;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    ex->SetOnAbort([&aborts] { ++aborts; });
    held = std::move(ex);
  });
  TestClient& c = Connect();
  c.Send("GET /next HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return held != nullptr; }));
  c.Close(/*reset=*/true);
  ASSERT_TRUE(RunUntil([&] { return aborts > 0; }));
  held->Reply(HttpResponse(200, "too late"));
  RunFor(5);
  EXPECT_EQ(aborts, 1);
  EXPECT_EQ(server_->connection_count(), 0u);
}

TEST_F(HttpServerTest, AbortCallbackHoldingTheExchangeItselfIsSafe) {
  // The callback owns the last reference to its own exchange.
  int aborts = 0;
  bool got = false;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    got = true;
    std::weak_ptr<HttpExchange> weak = ex;
    ex->SetOnAbort([&aborts, ex, weak] {
      ++aborts;
      EXPECT_FALSE(weak.expired());
      ex->Reply(HttpResponse(200, "ignored"));
    });
  });
  TestClient& c = Connect();
  c.Send("GET /next HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return got; }));
  c.Close();
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  EXPECT_EQ(aborts, 1);
}

TEST_F(HttpServerTest, ReplyThroughARawPointerWhenTheConnectionHoldsTheLastReference) {
  // Reply() is documented as safe even though the connection drops the last
  // reference to the exchange inside it; ASan checks that nothing is touched.
  HttpExchange* raw = nullptr;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    ex->SetOnAbort([] {});
    raw = ex.get();
  });
  TestClient& c = Connect();
  c.Send("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return raw != nullptr; }));
  std::exchange(raw, nullptr)->Reply(HttpResponse(200, "a"));
  ASSERT_TRUE(RunUntil([&] { return raw != nullptr; }));
  std::exchange(raw, nullptr)->Reply(HttpResponse(200, "b"));
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 2; }));
  EXPECT_EQ(c.Responses()[1].body, "b");
}

TEST_F(HttpServerTest, OversizedContentLengthGets413WhileTheClientIsStillSending) {
  HttpServer::Options options;  // default limit: 6 MB
  bool handled = false;
  StartServer([&](std::shared_ptr<HttpExchange>) { handled = true; }, options);
  TestClient& c = Connect();
  const size_t declared = 7 * 1024 * 1024;
  c.Send("POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nContent-Length: " +
         std::to_string(declared) + "\r\n\r\n");
  c.Send(std::string(1024 * 1024, 'a'));
  // The answer comes before the client has sent the rest.
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  auto r = c.Responses()[0];
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.headers.Get("Connection"), "close");
  EXPECT_NE(r.body.find("exceeds the limit"), std::string::npos) << r.body;
  // The server keeps reading and discarding, so the rest of the body goes
  // through without a reset, and the server's FIN arrives.
  c.Send(std::string(declared - 1024 * 1024, 'b'));
  ASSERT_TRUE(RunUntil([&] { return c.writes_pending() == 0 && c.eof(); }));
  EXPECT_EQ(c.write_error(), 0) << uv_strerror(c.write_error());
  EXPECT_EQ(c.read_error(), 0);
  c.Close();
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  EXPECT_FALSE(handled);
}

TEST_F(HttpServerTest, BodyLimitFnRaisesTheLimitForOneRoute) {
  HttpServer::Options options;
  options.limits.max_body_bytes = 10;
  options.body_limit = [](const HttpRequest& head) -> size_t {
    return head.path == "/big" ? 100 : 10;
  };
  StartServer([](std::shared_ptr<HttpExchange> ex) { EchoPath(ex); }, options);
  TestClient& c = Connect();
  c.Send("POST /big HTTP/1.1\r\nContent-Length: 50\r\n\r\n" + std::string(50, 'x'));
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  EXPECT_EQ(c.Responses()[0].status, 200);
  c.Send("POST /small HTTP/1.1\r\nContent-Length: 50\r\n\r\n" + std::string(50, 'x'));
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 2; }));
  EXPECT_EQ(c.Responses()[1].status, 413);
}

TEST_F(HttpServerTest, ErrorResponseHookShapesTheBody) {
  HttpServer::Options options;
  options.limits.max_header_bytes = 200;
  options.limits.max_body_bytes = 10;
  options.error_response = [](int status, const std::string& message, const HttpRequest& head) {
    HttpResponse r(status,
                   "{\"status\":" + std::to_string(status) + ",\"path\":\"" + head.path +
                       "\",\"message\":\"" + message + "\"}",
                   "application/json");
    r.headers.Set("X-Amzn-ErrorType", "RequestTooLargeException");
    return r;
  };
  StartServer(EchoPath, options);

  TestClient& a = Connect();
  a.Send("GARBAGE\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return a.Responses().size() == 1 && a.eof(); }));
  EXPECT_EQ(a.Responses()[0].status, 400);
  EXPECT_EQ(a.Responses()[0].headers.Get("Content-Type"), "application/json");
  EXPECT_EQ(a.Responses()[0].body.rfind("{\"status\":400,\"path\":\"\"", 0), 0u)
      << a.Responses()[0].body;

  TestClient& b = Connect();
  b.Send("POST /f HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return b.Responses().size() == 1; }));
  EXPECT_EQ(b.Responses()[0].status, 413);
  EXPECT_EQ(b.Responses()[0].headers.Get("X-Amzn-ErrorType"), "RequestTooLargeException");
  EXPECT_EQ(b.Responses()[0].body.rfind("{\"status\":413,\"path\":\"/f\"", 0), 0u)
      << b.Responses()[0].body;

  TestClient& d = Connect();
  d.Send("GET / HTTP/1.1\r\nX-Big: " + std::string(300, 'h') + "\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return d.Responses().size() == 1; }));
  EXPECT_EQ(d.Responses()[0].status, 431);
}

TEST_F(HttpServerTest, ErrorResponseHookThatThrowsStillAnswers) {
  HttpServer::Options options;
  options.error_response = [](int, const std::string&, const HttpRequest&) -> HttpResponse {
    throw std::runtime_error("hook broke");
  };
  StartServer(EchoPath, options);
  TestClient& c = Connect();
  c.Send("NOT HTTP\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  EXPECT_EQ(c.Responses()[0].status, 400);
}

TEST_F(HttpServerTest, NoContentHasNoBodyAndTheConnectionStaysInSync) {
  StartServer([](std::shared_ptr<HttpExchange> ex) {
    if (ex->request().path == "/nc") {
      ex->Reply(HttpResponse(204, "must not be sent"));
    } else if (ex->request().path == "/nm") {
      ex->Reply(HttpResponse(304, "must not be sent either"));
    } else {
      EchoPath(ex);
    }
  });
  TestClient& c = Connect();
  c.Send(
      "DELETE /nc HTTP/1.1\r\n\r\nGET /nm HTTP/1.1\r\n\r\n"
      "GET /after HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 3; }));
  auto rs = c.Responses();
  EXPECT_EQ(rs[0].status, 204);
  EXPECT_FALSE(rs[0].headers.Has("Content-Length"));
  EXPECT_EQ(rs[1].status, 304);
  EXPECT_EQ(c.received().find("must not be sent"), std::string::npos);
  EXPECT_EQ(rs[2].body, "path=/after body=");
}

TEST_F(HttpServerTest, HeadGetsTheLengthButNoBody) {
  StartServer([](std::shared_ptr<HttpExchange> ex) { ex->Reply(HttpResponse(200, "12345")); });
  TestClient& c = Connect();
  c.Send("HEAD / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses(/*head_request=*/true).size() == 1; }));
  EXPECT_EQ(c.Responses(true)[0].headers.Get("Content-Length"), "5");
  RunFor(5);
  EXPECT_EQ(c.received().find("12345"), std::string::npos);
}

TEST_F(HttpServerTest, ConnectionCloseAndHttp10EndTheConnectionAfterTheReply) {
  StartServer(EchoPath);
  TestClient& a = Connect();
  a.Send("GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n");
  TestClient& b = Connect();
  b.Send("GET /b HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return a.eof() && b.eof(); }));
  ASSERT_EQ(a.Responses().size(), 1u);
  EXPECT_EQ(a.Responses()[0].headers.Get("Connection"), "close");
  ASSERT_EQ(b.Responses().size(), 1u);
  EXPECT_EQ(b.Responses()[0].body, "path=/b body=");
  EXPECT_EQ(b.Responses()[0].headers.Get("Connection"), "close");
  EXPECT_EQ(server_->requests_served(), 2u);
}

TEST_F(HttpServerTest, HalfClosedClientStillGetsAReplyThatIsBeingWritten) {
  // printf 'GET ...' | nc -N: the client shuts down its side after the request.
  // A reply already being written must still arrive in full.
  const size_t kBody = 8 << 20;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    ex->Reply(HttpResponse(200, std::string(kBody, 'h')));
  });
  TestClient& c = Connect(/*start_reading=*/false);
  c.Send("GET / HTTP/1.1\r\n\r\n");
  c.Shutdown();
  ASSERT_TRUE(RunUntil([&] { return server_->requests_served() == 1; }));
  RunFor(20);  // the server sees our FIN while its write is still queued
  c.StartReading();
  ASSERT_TRUE(RunUntil([&] { return c.eof() || c.read_error() != 0; }));
  EXPECT_EQ(c.read_error(), 0);
  ASSERT_EQ(c.Responses().size(), 1u);
  EXPECT_EQ(c.Responses()[0].body.size(), kBody);
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
}

TEST_F(HttpServerTest, HandlerMayCloseTheServer) {
  std::shared_ptr<HttpExchange> held;
  int aborts = 0;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    if (ex->request().path == "/next") {
      ex->SetOnAbort([&aborts] { ++aborts; });
      held = std::move(ex);
      return;
    }
    ex->Reply(HttpResponse(200, "bye"));
    server_->Close();
  });
  TestClient& poll = Connect();
  poll.Send("GET /next HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return held != nullptr; }));
  TestClient& c = Connect();
  c.Send("POST /shutdown HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.eof() && poll.eof(); }));
  // A small reply goes out at once (libuv writes when its queue is empty), so
  // it is not lost to the close that follows it.
  ASSERT_EQ(c.Responses().size(), 1u);
  EXPECT_EQ(c.Responses()[0].body, "bye");
  EXPECT_EQ(aborts, 1);
  EXPECT_EQ(server_->connection_count(), 0u);
  EXPECT_EQ(server_->requests_served(), 2u);
  // Stopped accepting.
  TestClient& late = Connect();
  ASSERT_TRUE(RunUntil([&] { return late.read_error() != 0 || late.eof(); }));
}

TEST_F(HttpServerTest, HandlerThatThrowsGets500) {
  StartServer([](std::shared_ptr<HttpExchange>) -> void { throw std::runtime_error("boom"); });
  TestClient& c = Connect();
  c.Send("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 2; }));
  EXPECT_EQ(c.Responses()[0].status, 500);
  EXPECT_NE(c.Responses()[0].body.find("boom"), std::string::npos);
}

TEST_F(HttpServerTest, ExpectContinueGets100BeforeTheBody) {
  StartServer(EchoPath);
  TestClient& c = Connect();
  c.Send("POST /up HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.received().find("\r\n\r\n") != std::string::npos; }));
  EXPECT_EQ(c.received(), "HTTP/1.1 100 Continue\r\n\r\n");
  c.Send("hello");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 2; }));
  EXPECT_EQ(c.Responses()[1].body, "path=/up body=hello");
}

TEST_F(HttpServerTest, ExpectContinueOverTheLimitGets413Instead) {
  HttpServer::Options options;
  options.limits.max_body_bytes = 4;
  StartServer(EchoPath, options);
  TestClient& c = Connect();
  c.Send("POST /up HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  EXPECT_EQ(c.Responses()[0].status, 413);
}

TEST_F(HttpServerTest, StopsAnsweringAClientThatDoesNotReadUntilItDoes) {
  // Every response is 1 MB; the client pipelines 40 requests and reads nothing.
  const int kRequests = 40;
  const size_t kBody = 1 << 20;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    ex->Reply(HttpResponse(200, std::string(kBody, 'r')));
  });
  TestClient& c = Connect(/*start_reading=*/false);
  std::string burst;
  for (int i = 0; i < kRequests; ++i) burst += "GET /r HTTP/1.1\r\n\r\n";
  c.Send(burst);
  ASSERT_TRUE(RunUntil([&] { return server_->requests_served() > 0; }));
  RunFor(50);
  EXPECT_LT(server_->requests_served(), static_cast<uint64_t>(kRequests))
      << "responses should wait for the client to read";
  c.StartReading();
  // Byte count first: parsing 40 MB on every loop turn would be quadratic.
  ASSERT_TRUE(RunUntil([&] { return c.received().size() >= kRequests * kBody; }));
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == kRequests; }));
  EXPECT_EQ(server_->requests_served(), static_cast<uint64_t>(kRequests));
}

TEST_F(HttpServerTest, ClientGoneWhileALargeReplyIsBeingWritten) {
  bool replied = false;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    ex->Reply(HttpResponse(200, std::string(16 << 20, 'z')));
    replied = true;
  });
  TestClient& c = Connect(/*start_reading=*/false);
  c.Send("GET /big HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return replied; }));
  RunFor(5);
  c.Close(/*reset=*/true);
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
}

TEST_F(HttpServerTest, ServerDestroyedWhileALargeReplyIsBeingWritten) {
  bool replied = false;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    ex->Reply(HttpResponse(200, std::string(16 << 20, 'z')));
    replied = true;
  });
  TestClient& c = Connect(/*start_reading=*/false);
  c.Send("GET /big HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return replied; }));
  server_.reset();
  c.StartReading();
  ASSERT_TRUE(RunUntil([&] { return c.eof() || c.read_error() != 0; }));
}

TEST_F(HttpServerTest, ServerDestroyedWithOpenConnectionsAndAPendingExchange) {
  std::shared_ptr<HttpExchange> held;
  int aborts = 0;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    if (ex->request().path == "/next") {
      ex->SetOnAbort([&aborts] { ++aborts; });
      held = std::move(ex);
    } else {
      EchoPath(ex);
    }
  });
  TestClient& polling = Connect();
  polling.Send("GET /next HTTP/1.1\r\n\r\n");
  TestClient& idle = Connect();
  idle.Send("GET /idle HTTP/1.1\r\n\r\n");
  TestClient& partial = Connect();
  partial.Send("POST /half HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
  ASSERT_TRUE(RunUntil([&] {
    return held != nullptr && idle.Responses().size() == 1 && server_->connection_count() == 3;
  }));
  server_.reset();
  EXPECT_EQ(aborts, 1);
  EXPECT_TRUE(held->aborted());
  held->Reply(HttpResponse(200, "after the server is gone"));
  ASSERT_TRUE(RunUntil([&] { return polling.eof() && idle.eof() && partial.eof(); }));
  EXPECT_TRUE(polling.received().empty());
  EXPECT_EQ(aborts, 1);
}

TEST_F(HttpServerTest, AbortCallbackMayDestroyTheServer) {
  std::shared_ptr<HttpExchange> held;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    ex->SetOnAbort([this] { server_.reset(); });
    held = std::move(ex);
  });
  TestClient& a = Connect();
  a.Send("GET /next HTTP/1.1\r\n\r\n");
  TestClient& b = Connect();
  b.Send("GET /next HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return held != nullptr && server_->connection_count() == 2; }));
  a.Close();
  ASSERT_TRUE(RunUntil([&] { return server_ == nullptr; }));
  ASSERT_TRUE(RunUntil([&] { return b.eof(); }));
}

TEST_F(HttpServerTest, AbortCallbackMayDestroyTheServerWhileItIsClosing) {
  // An environment's Runtime API server: aborting its pending /next tears the
  // environment, and with it the server, down, from inside server->Close().
  std::vector<std::shared_ptr<HttpExchange>> held;
  int aborts = 0;
  StartServer([&](std::shared_ptr<HttpExchange> ex) {
    ex->SetOnAbort([this, &aborts] {
      ++aborts;
      server_.reset();
    });
    held.push_back(std::move(ex));
  });
  TestClient& a = Connect();
  a.Send("GET /next HTTP/1.1\r\n\r\n");
  TestClient& b = Connect();
  b.Send("GET /next HTTP/1.1\r\n\r\n");
  TestClient& idle = Connect();
  ASSERT_TRUE(RunUntil([&] { return held.size() == 2 && server_->connection_count() == 3; }));
  server_->Close();
  EXPECT_EQ(server_, nullptr);
  EXPECT_EQ(aborts, 2);
  ASSERT_TRUE(RunUntil([&] { return a.eof() && b.eof() && idle.eof(); }));
}

TEST_F(HttpServerTest, ListenOnABusyPortFails) {
  StartServer(EchoPath);
  HttpServer second(&loop_, EchoPath, {});
  Status st = second.Listen("127.0.0.1", server_->port());
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  Status bad = second.Listen("not-an-address", 0);
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
}

TEST_F(HttpServerTest, ListensOnIpv6Loopback) {
  server_ = std::make_unique<HttpServer>(&loop_, EchoPath, HttpServer::Options{});
  Status st = server_->Listen("::1", 0);
  if (!st.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << st.message();
  EXPECT_GT(server_->port(), 0);
  EXPECT_EQ(server_->host(), "::1");
}

TEST(SerializeResponseHead, AddsLengthAndConnectionAndDropsTheirDuplicates) {
  HttpResponse r(200, "abc", "text/plain");
  r.headers.Add("content-length", "999");
  r.headers.Add("Connection", "upgrade");
  r.headers.Add("X-A", "1");
  EXPECT_EQ(SerializeResponseHead(r, true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n"
            "Content-Length: 3\r\nConnection: keep-alive\r\n\r\n");
  HttpResponse nc(204, "");
  EXPECT_EQ(SerializeResponseHead(nc, false),
            "HTTP/1.1 204 No Content\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Connection: close\r\n\r\n");
}

}  // namespace
}  // namespace ephemera::http
