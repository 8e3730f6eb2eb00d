// Tests of HttpServer::ListenUnix: the socket file (mode, a stale file
// replaced, a foreign file refused, removal on Close), and requests from real
// clients: one on the test loop and one on a thread with plain blocking
// sockets, as a container's runtime would connect through a bind mount.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "runtime/http/http_server.h"
#include "tests/http/http_test_support.h"

namespace ephemera::http {
namespace {

using testing::EchoPath;
using testing::HttpServerTest;
using testing::TestClient;

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode;
}

// One request over a blocking AF_UNIX socket; returns what came back until
// the server closed (the request says Connection: close).
std::string BlockingExchange(const std::string& path, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "socket failed";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = ::write(fd, request.data() + off, request.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST_F(HttpServerTest, UnixSocketServesKeepAliveRequestsWithMode0666) {
  StartServer(EchoPath, {}, /*unix_socket=*/true);
  const std::string path = server_->unix_path();
  ASSERT_FALSE(path.empty());
  EXPECT_TRUE(S_ISSOCK(ModeOf(path)));
  EXPECT_EQ(ModeOf(path) & 07777, 0666u);
  TestClient& c = Connect();
  c.Send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1; }));
  c.Send("POST /two HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 2; }));
  EXPECT_EQ(c.Responses()[0].body, "path=/2018-06-01/runtime/invocation/next body=");
  EXPECT_EQ(c.Responses()[1].body, "path=/two body=hi");
  EXPECT_EQ(server_->connection_count(), 1u);
  EXPECT_EQ(server_->port(), 0);
}

TEST_F(HttpServerTest, UnixSocketAnswersABlockingClientOnAnotherThread) {
  StartServer(EchoPath, {}, /*unix_socket=*/true);
  std::string got;
  std::thread client([&, path = server_->unix_path()] {
    got = BlockingExchange(path,
                           "POST /from-thread HTTP/1.1\r\nContent-Length: 3\r\n"
                           "Connection: close\r\n\r\nabc");
  });
  // The loop serves until the thread's exchange is over (the server closes
  // the connection after its reply, so the count drops back to zero).
  ASSERT_TRUE(RunUntil([&] { return server_->requests_served() == 1; }));
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
  client.join();
  auto rs = testing::ParseResponses(got);
  ASSERT_EQ(rs.size(), 1u) << got;
  EXPECT_EQ(rs[0].status, 200);
  EXPECT_EQ(rs[0].body, "path=/from-thread body=abc");
}

TEST_F(HttpServerTest, UnixSocketModeIsTheOneAskedForWhateverTheUmask) {
  server_ = std::make_unique<HttpServer>(&loop_, EchoPath, HttpServer::Options{});
  mode_t old = ::umask(077);
  Status st = server_->ListenUnix(TempDir() + "/private.sock", 0660);
  ::umask(old);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(ModeOf(server_->unix_path()) & 07777, 0660u);
}

TEST_F(HttpServerTest, UnixSocketReplacesAStaleSocketFile) {
  const std::string path = TempDir() + "/stale.sock";
  {
    // A socket file left by a server that died without removing it.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  ASSERT_TRUE(S_ISSOCK(ModeOf(path)));
  server_ = std::make_unique<HttpServer>(&loop_, EchoPath, HttpServer::Options{});
  Status st = server_->ListenUnix(path);
  ASSERT_TRUE(st.ok()) << st.message();
  clients_.push_back(std::make_unique<TestClient>(&loop_, path));
  TestClient& c = *clients_.back();
  c.Send("GET /fresh HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c.Responses().size() == 1 || c.read_error() != 0; }));
  ASSERT_EQ(c.Responses().size(), 1u) << uv_strerror(c.read_error());
  EXPECT_EQ(c.Responses()[0].body, "path=/fresh body=");
}

TEST_F(HttpServerTest, UnixSocketRefusesToRemoveAFileThatIsNotASocket) {
  const std::string path = TempDir() + "/precious.txt";
  std::ofstream(path) << "keep me";
  HttpServer server(&loop_, EchoPath, {});
  Status st = server.ListenUnix(path);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("not a socket"), std::string::npos) << st.message();
  EXPECT_TRUE(S_ISREG(ModeOf(path)));
}

TEST_F(HttpServerTest, UnixSocketRefusesAPathTooLongForSunPath) {
  HttpServer server(&loop_, EchoPath, {});
  Status st = server.ListenUnix(TempDir() + "/" + std::string(120, 's'));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("bytes long"), std::string::npos) << st.message();
  Status missing_dir = server.ListenUnix(TempDir() + "/no/such/dir.sock");
  EXPECT_EQ(missing_dir.code(), StatusCode::kUnavailable) << missing_dir.message();
}

TEST_F(HttpServerTest, CloseRemovesTheSocketFile) {
  const std::string path = TempDir() + "/api.sock";
  HttpServer first(&loop_, EchoPath, {});
  ASSERT_TRUE(first.ListenUnix(path).ok());
  EXPECT_TRUE(std::filesystem::exists(path));
  first.Close();
  EXPECT_FALSE(std::filesystem::exists(path));
  first.Close();  // idempotent
  {
    HttpServer second(&loop_, EchoPath, {});
    ASSERT_TRUE(second.ListenUnix(path).ok());
    EXPECT_TRUE(std::filesystem::exists(path));
  }  // the destructor closes
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(HttpServerTest, OneServerListensOnTcpAndAUnixSocketAtOnce) {
  StartServer(EchoPath, {}, /*unix_socket=*/true);
  ASSERT_TRUE(server_->Listen("127.0.0.1", 0).ok());
  EXPECT_EQ(server_->ListenUnix(TempDir() + "/second.sock").code(), StatusCode::kInvalidArgument);
  TestClient& over_unix = Connect();
  clients_.push_back(std::make_unique<TestClient>(&loop_, server_->port()));
  TestClient& over_tcp = *clients_.back();
  over_unix.Send("GET /u HTTP/1.1\r\n\r\n");
  over_tcp.Send("GET /t HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil(
      [&] { return over_unix.Responses().size() == 1 && over_tcp.Responses().size() == 1; }));
  EXPECT_EQ(over_unix.Responses()[0].body, "path=/u body=");
  EXPECT_EQ(over_tcp.Responses()[0].body, "path=/t body=");
  EXPECT_EQ(server_->connection_count(), 2u);
}

TEST_F(HttpServerTest, UnixSocketClientGoneBeforeReplyAbortsTheExchange) {
  std::shared_ptr<HttpExchange> held;
  int aborts = 0;
  StartServer(
      [&](std::shared_ptr<HttpExchange> ex) {
        ex->SetOnAbort([&] { ++aborts; });
        held = std::move(ex);
      },
      {}, /*unix_socket=*/true);
  TestClient& c = Connect();
  c.Send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return held != nullptr; }));
  c.Close();
  ASSERT_TRUE(RunUntil([&] { return aborts == 1; }));
  EXPECT_TRUE(held->aborted());
  ASSERT_TRUE(RunUntil([&] { return server_->connection_count() == 0; }));
}

}  // namespace
}  // namespace ephemera::http
