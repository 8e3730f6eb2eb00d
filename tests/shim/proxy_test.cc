// tests/shim/proxy_test.cc: the Runtime API proxy in-process, in front of fake upstreams.
#include "shim/proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "tests/shim/fake_http_server.h"

namespace ephemera::shim {
namespace {

using testing::FakeHttpServer;
using testing::FakeReply;
using testing::FakeRequest;
using Clock = std::chrono::steady_clock;

Endpoint Loopback(uint16_t port) {
  Endpoint e;
  e.host = "127.0.0.1";
  e.port = port;
  return e;
}

// A raw TCP client of the proxy, to see its answers byte for byte.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ~RawClient() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  void Send(const std::string& bytes) {
    ASSERT_EQ(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }

  // Reads until `n` bytes arrived, EOF, or the deadline; returns what arrived.
  std::string Read(size_t n, int timeout_ms = 10000) {
    std::string out;
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out.size() < n && Clock::now() < deadline) {
      pollfd p = {fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[65536];
      ssize_t got = recv(fd_, buf, std::min(sizeof buf, n - out.size()), 0);
      if (got <= 0) break;
      out.append(buf, static_cast<size_t>(got));
    }
    return out;
  }

  // True once the proxy closed the connection (bounded wait).
  bool WaitForEof(int timeout_ms = 10000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      pollfd p = {fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      if (recv(fd_, buf, sizeof buf, 0) <= 0) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
};

// Records on_upstream_gone calls; lets a test wait for one.
struct GoneRecorder {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> reasons;

  ProxyHooks Hooks() {
    ProxyHooks hooks;
    hooks.on_upstream_gone = [this](const std::string& why) {
      std::lock_guard<std::mutex> lock(mutex);
      reasons.push_back(why);
      cv.notify_all();
    };
    return hooks;
  }
  bool Wait(int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                       [&] { return !reasons.empty(); });
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return reasons.size();
  }
};

TEST(Proxy, RelaysTheAnswerByteForByteIncludingChunkingAndHeaderSpelling) {
  const std::string answer =
      "HTTP/1.1 207 Odd Reason Phrase\r\nX-Dup: a\r\nx-dup: b\r\nlambda-runtime-aws-request-id:  "
      "r1 \r\n"
      "Transfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;ext\r\npedia\r\n0\r\nX-T: 1\r\n\r\n";
  FakeHttpServer upstream([&](const FakeRequest&) {
    FakeReply r;
    r.pieces = {answer.substr(0, 30), answer.substr(30, 50), answer.substr(80)};
    return r;
  });
  RuntimeApiProxy proxy(Loopback(upstream.port()), {});
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());
  EXPECT_EQ(proxy.address(), "127.0.0.1:" + std::to_string(proxy.port()));
  RawClient client(proxy.port());
  std::string body(100000, 'b');
  client.Send(
      "POST /2015-03-31/functions/other/invocations HTTP/1.1\r\nHost: h\r\n"
      "X-Amz-Client-Context: e30=\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(client.Read(answer.size()), answer);
  // The same connection carries a second exchange.
  client.Send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(client.Read(answer.size()), answer);
  auto requests = upstream.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].target, "/2015-03-31/functions/other/invocations");
  EXPECT_EQ(requests[0].Header("X-Amz-Client-Context"), "e30=");
  EXPECT_EQ(requests[0].Header("Host"), "h");
  EXPECT_EQ(requests[0].body, body);
  EXPECT_EQ(requests[1].connection, requests[0].connection);  // one upstream keep-alive
}

TEST(Proxy, ALongPollDoesNotBlockAConcurrentInvokeCall) {
  std::mutex mutex;
  std::condition_variable cv;
  bool invoke_answered = false;
  FakeHttpServer upstream([&](const FakeRequest& r) {
    if (r.target == "/2018-06-01/runtime/invocation/next") {
      std::unique_lock<std::mutex> lock(mutex);
      cv.wait_for(lock, std::chrono::seconds(10), [&] { return invoke_answered; });
      return FakeReply::Simple(200, "the event", "Lambda-Runtime-Aws-Request-Id: req-9\r\n");
    }
    return FakeReply::Simple(200, "invoked " + r.body);
  });
  RuntimeApiProxy proxy(Loopback(upstream.port()), {});
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());

  HttpResponse next_response;
  Status next_status;
  bool next_done_before_invoke = false;
  std::thread runtime([&] {
    HttpClient client("127.0.0.1", proxy.port());
    HttpRequest next;
    next.target = "/2018-06-01/runtime/invocation/next";
    next_status = client.Send(next, &next_response);
    std::lock_guard<std::mutex> lock(mutex);
    next_done_before_invoke = !invoke_answered;
  });
  ASSERT_TRUE(upstream.WaitForRequests(1));  // the long poll is parked upstream
  HttpClient function("127.0.0.1", proxy.port());
  HttpRequest invoke;
  invoke.method = "POST";
  invoke.target = "/2015-03-31/functions/other/invocations";
  invoke.body = "{\"x\":1}";
  HttpResponse invoke_response;
  ASSERT_TRUE(function.Send(invoke, &invoke_response).ok());
  EXPECT_EQ(invoke_response.body, "invoked {\"x\":1}");
  {
    std::lock_guard<std::mutex> lock(mutex);
    invoke_answered = true;
  }
  cv.notify_all();
  runtime.join();
  ASSERT_TRUE(next_status.ok()) << next_status.message();
  EXPECT_FALSE(next_done_before_invoke);
  EXPECT_EQ(next_response.body, "the event");
  EXPECT_EQ(*next_response.Header("Lambda-Runtime-Aws-Request-Id"), "req-9");
}

TEST(Proxy, AnswersExpectContinueItselfAndForwardsWithoutIt) {
  FakeHttpServer upstream([](const FakeRequest& r) { return FakeReply::Simple(202, r.body); });
  RuntimeApiProxy proxy(Loopback(upstream.port()), {});
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());
  RawClient client(proxy.port());
  client.Send(
      "POST /2018-06-01/runtime/invocation/r/response HTTP/1.1\r\nHost: h\r\n"
      "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(client.Read(interim.size()), interim);
  client.Send("hello");
  std::string final_answer = "HTTP/1.1 202 X\r\nContent-Length: 5\r\n\r\nhello";
  EXPECT_EQ(client.Read(final_answer.size()), final_answer);
  auto requests = upstream.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].Header("Expect"), "");
  EXPECT_EQ(requests[0].Header("Content-Length"), "5");
}

TEST(Proxy, OnRequestMayAnswerLocallyAndOnResponseSeesTheUpstreamHead) {
  FakeHttpServer upstream([](const FakeRequest&) {
    return FakeReply::Simple(200, "up", "Lambda-Runtime-Deadline-Ms: 123\r\n");
  });
  std::mutex mutex;
  std::vector<std::string> seen;
  ProxyHooks hooks;
  hooks.on_request = [](const WireHead& request, std::string* local) {
    if (request.target != "/local") return false;
    *local = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlocal";
    return true;
  };
  hooks.on_response = [&](const WireHead& request, const WireHead& response) {
    std::lock_guard<std::mutex> lock(mutex);
    seen.push_back(request.target + " " + std::to_string(response.status) + " " +
                   *response.Header("lambda-runtime-deadline-ms"));
  };
  RuntimeApiProxy proxy(Loopback(upstream.port()), hooks);
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());
  HttpClient client("127.0.0.1", proxy.port());
  HttpRequest request;
  request.target = "/local";
  HttpResponse response;
  ASSERT_TRUE(client.Send(request, &response).ok());
  EXPECT_EQ(response.body, "local");
  request.target = "/remote";
  ASSERT_TRUE(client.Send(request, &response).ok());
  EXPECT_EQ(response.body, "up");
  EXPECT_EQ(client.connections_opened(), 1);
  ASSERT_EQ(upstream.requests().size(), 1u);
  EXPECT_EQ(upstream.requests()[0].target, "/remote");
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(seen, std::vector<std::string>{"/remote 200 123"});
}

// A client that asks to close gets its answer, then the close, even from an upstream that
// keeps the connection, and for an answer the proxy made itself.
TEST(Proxy, ClosesAfterAnswerWhenTheClientAsksToClose) {
  FakeHttpServer upstream([](const FakeRequest&) { return FakeReply::Simple(200, "up"); });
  ProxyHooks hooks;
  hooks.on_request = [](const WireHead& request, std::string* local) {
    if (request.target != "/local") return false;
    *local = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlocal";
    return true;
  };
  RuntimeApiProxy proxy(Loopback(upstream.port()), hooks);
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());
  for (const char* request :
       {"GET /remote HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /local HTTP/1.1\r\nConnection: close\r\n\r\n", "GET /remote HTTP/1.0\r\n\r\n"}) {
    RawClient client(proxy.port());
    client.Send(request);
    std::string answer = client.Read(1 << 16, 2000);
    EXPECT_NE(answer.find(" 200 "), std::string::npos) << request << answer;
    EXPECT_TRUE(client.WaitForEof(2000)) << "still open after: " << request;
  }
  // Without it, the connection stays for the next request.
  RawClient keep(proxy.port());
  keep.Send("GET /remote HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(keep.Read(1 << 16, 1000).find(" 200 "), std::string::npos);
  EXPECT_FALSE(keep.WaitForEof(300));
}

TEST(Proxy, ForwardsToAUnixSocketUpstream) {
  std::string path = "/tmp/ephemera-proxy-test-" + std::to_string(getpid()) + ".sock";
  FakeHttpServer upstream([](const FakeRequest& r) { return FakeReply::Simple(200, r.target); },
                          path);
  Endpoint unix_upstream;
  unix_upstream.unix_path = path;
  RuntimeApiProxy proxy(unix_upstream, {});
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());
  HttpClient client("127.0.0.1", proxy.port());
  HttpRequest request;
  request.target = "/2018-06-01/runtime/invocation/next";
  HttpResponse response;
  ASSERT_TRUE(client.Send(request, &response).ok());
  EXPECT_EQ(response.body, "/2018-06-01/runtime/invocation/next");
}

TEST(Proxy, AnUpstreamThatClosesAfterEachAnswerIsNotTakenForGone) {
  FakeHttpServer upstream([](const FakeRequest& r) {
    FakeReply reply = FakeReply::Simple(200, r.target);
    reply.close_after = true;  // without saying Connection: close
    return reply;
  });
  GoneRecorder gone;
  RuntimeApiProxy proxy(Loopback(upstream.port()), gone.Hooks());
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());
  HttpClient client("127.0.0.1", proxy.port());
  for (int i = 0; i < 3; ++i) {
    HttpRequest request;
    request.target = "/" + std::to_string(i);
    HttpResponse response;
    Status st = client.Send(request, &response);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(response.body, request.target);
  }
  EXPECT_EQ(upstream.requests().size(), 3u);  // nothing sent twice
  EXPECT_EQ(gone.count(), 0u);
}

TEST(Proxy, AnUpstreamThatDiesUnderALongPollIsReportedGone) {
  auto upstream = std::make_unique<FakeHttpServer>([](const FakeRequest&) {
    FakeReply hold;
    hold.hold = true;
    return hold;
  });
  GoneRecorder gone;
  RuntimeApiProxy proxy(Loopback(upstream->port()), gone.Hooks());
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());
  RawClient client(proxy.port());
  client.Send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(upstream->WaitForRequests(1));
  upstream.reset();  // kill -9: the listener and the connection vanish together
  ASSERT_TRUE(gone.Wait());
  EXPECT_NE(gone.reasons[0].find("closed under GET /2018-06-01/runtime/invocation/next"),
            std::string::npos)
      << gone.reasons[0];
  EXPECT_TRUE(client.WaitForEof());  // the client sees what it would have seen directly
}

TEST(Proxy, AClientHangingUpMidRequestDropsTheUpstreamConnection) {
  FakeHttpServer upstream([](const FakeRequest&) {
    FakeReply hold;
    hold.hold = true;
    return hold;
  });
  RuntimeApiProxy proxy(Loopback(upstream.port()), {});
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());
  RawClient client(proxy.port());
  client.Send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(upstream.WaitForRequests(1));
  client.Close();
  EXPECT_TRUE(upstream.WaitForClosedConnections(1));
}

TEST(Proxy, ARefusedUpstreamConnectionIsReportedGone) {
  uint16_t closed_port;
  {
    FakeHttpServer probe([](const FakeRequest&) { return FakeReply::Simple(200, ""); });
    closed_port = probe.port();
  }
  GoneRecorder gone;
  RuntimeApiProxy proxy(Loopback(closed_port), gone.Hooks());
  ASSERT_TRUE(proxy.Start(Loopback(0)).ok());
  HttpClient client("127.0.0.1", proxy.port());
  HttpRequest request;
  HttpResponse response;
  ASSERT_TRUE(client.Send(request, &response).ok());
  EXPECT_EQ(response.status, 502);
  EXPECT_TRUE(gone.Wait());
}

}  // namespace
}  // namespace ephemera::shim
