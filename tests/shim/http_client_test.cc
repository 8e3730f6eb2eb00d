// tests/shim/http_client_test.cc: the shim's HTTP/1.1 client against a fake server.
#include "shim/http_client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <thread>

#include "shim/runtime_api.h"
#include "tests/shim/fake_http_server.h"

namespace ephemera::shim {
namespace {

using testing::FakeHttpServer;
using testing::FakeReply;
using testing::FakeRequest;

HttpRequest Get(const std::string& target) {
  HttpRequest r;
  r.method = "GET";
  r.target = target;
  return r;
}

HttpRequest Post(const std::string& target, std::string body) {
  HttpRequest r;
  r.method = "POST";
  r.target = target;
  r.body = std::move(body);
  return r;
}

TEST(HttpClient, ParsesHostPort) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(HttpClient::ParseHostPort("127.0.0.1:9001", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9001);
  EXPECT_FALSE(HttpClient::ParseHostPort("127.0.0.1", &host, &port));
  EXPECT_FALSE(HttpClient::ParseHostPort("127.0.0.1:", &host, &port));
  EXPECT_FALSE(HttpClient::ParseHostPort("127.0.0.1:99999", &host, &port));
  EXPECT_FALSE(HttpClient::ParseHostPort(":80", &host, &port));
}

TEST(HttpClient, ReadsContentLengthBody) {
  FakeHttpServer server([](const FakeRequest&) {
    return FakeReply::Simple(200, "hello", "X-Thing:  spaced value \r\n");
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse response;
  ASSERT_TRUE(client.Send(Get("/a"), &response).ok());
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "hello");
  ASSERT_NE(response.Header("x-thing"), nullptr);
  EXPECT_EQ(*response.Header("X-THING"), "spaced value");
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target, "/a");
  EXPECT_EQ(requests[0].Header("Host"), server.endpoint());
}

TEST(HttpClient, PipelinedRequestsGoOnOneConnectionAndBothAnswersAreRead) {
  FakeHttpServer server([](const FakeRequest& req) {
    return FakeReply::Simple(req.target == "/post" ? 202 : 200, "for " + req.target);
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse first, second;
  ASSERT_TRUE(client.SendPipelined(Post("/post", "result"), &first, Get("/next"), &second).ok());
  EXPECT_EQ(first.status, 202);
  EXPECT_EQ(first.body, "for /post");
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, "for /next");
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].body, "result");
  EXPECT_EQ(requests[1].target, "/next");
  EXPECT_EQ(requests[1].connection, 1);
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST(HttpClient, APipelinedRequestTheServerClosedOnIsSentAgain) {
  FakeHttpServer server([](const FakeRequest& req) {
    // Answers the first and closes, saying so: the second is never read.
    bool last = req.target == "/first";
    FakeReply r = FakeReply::Simple(200, "for " + req.target, last ? "Connection: close\r\n" : "");
    r.close_after = last;
    return r;
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse first, second;
  ASSERT_TRUE(client.SendPipelined(Get("/first"), &first, Get("/second"), &second).ok());
  EXPECT_EQ(first.body, "for /first");
  EXPECT_EQ(second.body, "for /second");
  EXPECT_EQ(client.connections_opened(), 2);
}

TEST(HttpClient, ARefusedFirstRequestWithdrawsThePipelinedSecond) {
  FakeHttpServer server([](const FakeRequest& req) {
    if (req.target == "/post") return FakeReply::Simple(413, "too large");
    FakeReply r;
    r.hold = true;  // a /next that would wait for an event
    return r;
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse first, second;
  ASSERT_TRUE(client.SendPipelined(Post("/post", "result"), &first, Get("/next"), &second).ok());
  EXPECT_EQ(first.status, 413);
  EXPECT_EQ(second.status, 0);
  EXPECT_FALSE(client.connected());
}

TEST(HttpClient, APipelinedRequestLostToASilentCloseIsSentAgain) {
  FakeHttpServer server([](const FakeRequest& req) {
    FakeReply r = FakeReply::Simple(200, "for " + req.target);
    r.close_after = req.target == "/first";  // closes without a word
    return r;
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse first, second;
  ASSERT_TRUE(client.SendPipelined(Get("/first"), &first, Get("/second"), &second).ok());
  EXPECT_EQ(second.body, "for /second");
  EXPECT_EQ(client.connections_opened(), 2);
}

TEST(HttpClient, ReadsChunkedBodyWithExtensionsAndTrailers) {
  FakeHttpServer server([](const FakeRequest&) {
    FakeReply r;
    r.pieces = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                "lo\r\n6;ext=1\r\n world\r\n", "0\r\nX-Trailer: t\r\n\r\n"};
    return r;
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse response;
  ASSERT_TRUE(client.Send(Get("/"), &response).ok());
  EXPECT_EQ(response.body, "hello world");
  // The connection is still usable after the trailers.
  ASSERT_TRUE(client.Send(Get("/again"), &response).ok());
  EXPECT_EQ(response.body, "hello world");
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST(HttpClient, ReassemblesHeadAndBodySplitAcrossReads) {
  std::string body(300000, 'x');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7);
  FakeHttpServer server([&](const FakeRequest&) {
    FakeReply r;
    std::string all =
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    // Cut inside the status line, inside the CRLFCRLF, and many times in the body.
    r.pieces = {all.substr(0, 7), all.substr(7, 20), all.substr(27, 12)};
    for (size_t off = 39; off < all.size(); off += 70000)
      r.pieces.push_back(all.substr(off, 70000));
    return r;
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse response;
  ASSERT_TRUE(client.Send(Get("/big"), &response).ok());
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, body);
}

TEST(HttpClient, ReusesTheConnectionForKeepAlive) {
  FakeHttpServer server([](const FakeRequest& r) { return FakeReply::Simple(200, r.target); });
  HttpClient client("127.0.0.1", server.port());
  for (int i = 0; i < 5; ++i) {
    HttpResponse response;
    ASSERT_TRUE(client.Send(Get("/" + std::to_string(i)), &response).ok());
    EXPECT_EQ(response.body, "/" + std::to_string(i));
  }
  EXPECT_EQ(client.connections_opened(), 1);
  for (const auto& r : server.requests()) EXPECT_EQ(r.connection, 1);
}

TEST(HttpClient, ReconnectsAfterTheServerClosedTheConnection) {
  FakeHttpServer server([](const FakeRequest& r) {
    FakeReply reply = FakeReply::Simple(200, r.target);
    reply.close_after = true;  // close without saying "Connection: close"
    return reply;
  });
  HttpClient client("127.0.0.1", server.port());
  for (int i = 0; i < 3; ++i) {
    HttpResponse response;
    Status st = client.Send(Get("/" + std::to_string(i)), &response);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(response.body, "/" + std::to_string(i));
  }
  EXPECT_EQ(client.connections_opened(), 3);
  EXPECT_EQ(server.requests().size(), 3u);  // nothing was sent twice
}

TEST(HttpClient, ClosesAfterConnectionCloseAndReadsUntilEof) {
  FakeHttpServer server([](const FakeRequest&) {
    FakeReply r;
    r.pieces = {"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nno length", " here"};
    r.close_after = true;
    return r;
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse response;
  ASSERT_TRUE(client.Send(Get("/"), &response).ok());
  EXPECT_EQ(response.body, "no length here");
  EXPECT_FALSE(client.connected());
}

TEST(HttpClient, SendsBodyWithContentLengthAndSkipsInterimResponses) {
  FakeHttpServer server([](const FakeRequest& r) {
    FakeReply reply;
    reply.pieces = {"HTTP/1.1 100 Continue\r\n\r\n",
                    "HTTP/1.1 202 Accepted\r\nContent-Length: " + std::to_string(r.body.size()) +
                        "\r\n\r\n" + r.body};
    return reply;
  });
  HttpClient client("127.0.0.1", server.port());
  HttpRequest request = Post("/post", std::string("a\0b", 3));
  request.headers.emplace_back("Content-Length", "999");  // ignored: the client frames
  HttpResponse response;
  ASSERT_TRUE(client.Send(request, &response).ok());
  EXPECT_EQ(response.status, 202);
  EXPECT_EQ(response.body, request.body);
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].Header("Content-Length"), "3");
  EXPECT_EQ(requests[0].body, request.body);
}

TEST(HttpClient, NoBodyFor204AndHead) {
  FakeHttpServer server([](const FakeRequest& r) {
    FakeReply reply;
    if (r.method == "HEAD") {
      reply.pieces = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"};
    } else {
      reply.pieces = {"HTTP/1.1 204 No Content\r\n\r\n"};
    }
    return reply;
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse response;
  ASSERT_TRUE(client.Send(Get("/"), &response).ok());
  EXPECT_EQ(response.status, 204);
  HttpRequest head = Get("/");
  head.method = "HEAD";
  ASSERT_TRUE(client.Send(head, &response).ok());
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "");
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST(HttpClient, FailsOnTruncatedBody) {
  FakeHttpServer server([](const FakeRequest&) {
    FakeReply r;
    r.pieces = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"};
    r.close_after = true;
    return r;
  });
  HttpClient client("127.0.0.1", server.port());
  HttpResponse response;
  Status st = client.Send(Get("/"), &response);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("3 of 10"), std::string::npos) << st.message();
}

TEST(HttpClient, ConnectRetriesUntilTheListenerAppearsThenGivesUp) {
  // Find a free port, then leave it closed.
  uint16_t port;
  {
    FakeHttpServer probe([](const FakeRequest&) { return FakeReply::Simple(200, ""); });
    port = probe.port();
  }
  HttpClient client("127.0.0.1", port);
  Status st = client.Connect(50, 1);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("Connection refused"), std::string::npos) << st.message();
}

std::string TempSocketPath(const std::string& name) {
  return "/tmp/ephemera-" + name + "-" + std::to_string(getpid()) + ".sock";
}

TEST(HttpClient, SpeaksHttpOverAUnixSocketWithKeepAlive) {
  FakeHttpServer server([](const FakeRequest& r) { return FakeReply::Simple(200, r.target); },
                        TempSocketPath("client"));
  Endpoint endpoint;
  endpoint.unix_path = server.unix_path();
  HttpClient client(endpoint);
  for (int i = 0; i < 3; ++i) {
    HttpResponse response;
    Status st = client.Send(Get("/u" + std::to_string(i)), &response);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(response.body, "/u" + std::to_string(i));
  }
  EXPECT_EQ(client.connections_opened(), 1);
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].Header("Host"), "localhost");
  EXPECT_EQ(endpoint.Describe(), "unix:" + server.unix_path());
}

TEST(HttpClient, ConnectRetriesUntilTheUnixSocketFileAppears) {
  std::string path = TempSocketPath("late");
  unlink(path.c_str());
  Endpoint endpoint;
  endpoint.unix_path = path;
  HttpClient client(endpoint);
  Status st = client.Connect(30, 1);
  ASSERT_FALSE(st.ok());  // no such file: retried, then given up
  EXPECT_NE(st.message().find("No such file or directory"), std::string::npos) << st.message();
  EXPECT_TRUE(IsGoneError(ProbeEndpoint(endpoint)));
}

TEST(HttpClient, CheckIdleTellsAClosedConnectionFromAPeerThatIsGone) {
  auto server = std::make_unique<FakeHttpServer>([](const FakeRequest& r) {
    FakeReply reply = FakeReply::Simple(200, "x");
    reply.close_after = r.target == "/close";
    return reply;
  });
  HttpClient client("127.0.0.1", server->port());
  HttpResponse response;
  ASSERT_TRUE(client.Send(Get("/close"), &response).ok());
  // The server closed this connection but still listens: not gone, and the client holds
  // a new connection (watched in turn).
  ASSERT_TRUE(client.connected());
  struct pollfd p = {client.fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  EXPECT_TRUE(client.CheckIdle());
  EXPECT_TRUE(client.connected());
  EXPECT_EQ(client.connections_opened(), 2);

  ASSERT_TRUE(client.Send(Get("/keep"), &response).ok());
  EXPECT_EQ(client.connections_opened(), 2);  // the replacement carried it
  server.reset();                             // the listener, then the connection, go away
  p = {client.fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  EXPECT_FALSE(client.CheckIdle());
}

TEST(HttpClient, AFailingWatchAbortsAWaitingRequest) {
  FakeHttpServer server([](const FakeRequest&) {
    FakeReply hold;
    hold.hold = true;  // never answers
    return hold;
  });
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  HttpClient client("127.0.0.1", server.port());
  int checks = 0;
  client.set_watch({[&] { return pipe_fds[0]; },
                    [&] {
                      ++checks;
                      return false;
                    }});
  std::thread trigger([&] {
    server.WaitForRequests(1);
    ASSERT_EQ(write(pipe_fds[1], "x", 1), 1);
  });
  HttpResponse response;
  Status st = client.Send(Get("/long-poll"), &response);
  trigger.join();
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(client.watch_failed());
  EXPECT_EQ(checks, 1);
  EXPECT_EQ(server.requests().size(), 1u);  // not resent
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

TEST(RuntimeApiEndpoint, SocketWinsOverTcpVariablesAndMalformedValuesAreNamed) {
  setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001", 1);
  unsetenv("EPHEMERA_RUNTIME_API");
  unsetenv("EPHEMERA_RUNTIME_SOCKET");
  Endpoint e;
  std::string source;
  ASSERT_TRUE(UpstreamFromEnvironment(&e, &source).ok());
  EXPECT_EQ(source, "AWS_LAMBDA_RUNTIME_API");
  EXPECT_EQ(e.Describe(), "127.0.0.1:9001");

  setenv("EPHEMERA_RUNTIME_API", "127.0.0.1:7000", 1);
  ASSERT_TRUE(UpstreamFromEnvironment(&e, &source).ok());
  EXPECT_EQ(source, "EPHEMERA_RUNTIME_API");
  EXPECT_EQ(e.port, 7000);

  setenv("EPHEMERA_RUNTIME_SOCKET", "/run/ephemera/runtime.sock", 1);
  ASSERT_TRUE(UpstreamFromEnvironment(&e, &source).ok());
  EXPECT_EQ(source, "EPHEMERA_RUNTIME_SOCKET");
  EXPECT_TRUE(e.is_unix());
  EXPECT_EQ(e.Describe(), "unix:/run/ephemera/runtime.sock");

  setenv("EPHEMERA_RUNTIME_SOCKET", "relative.sock", 1);
  Status st = UpstreamFromEnvironment(&e);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("EPHEMERA_RUNTIME_SOCKET"), std::string::npos);

  unsetenv("EPHEMERA_RUNTIME_SOCKET");
  setenv("EPHEMERA_RUNTIME_API", "nonsense", 1);
  st = UpstreamFromEnvironment(&e);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("EPHEMERA_RUNTIME_API must be host:port"), std::string::npos);

  unsetenv("EPHEMERA_RUNTIME_API");
  unsetenv("AWS_LAMBDA_RUNTIME_API");
  EXPECT_FALSE(UpstreamFromEnvironment(&e).ok());
}

}  // namespace
}  // namespace ephemera::shim
