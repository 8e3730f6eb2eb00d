// tests/shim/forward_test.cc: EPHEMERA_FORWARD parsing and TCP → unix socket forwarding,
// against an echo server on a temporary unix socket.
#include "shim/forward.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <list>
#include <thread>

#include "tests/shim/unix_echo_server.h"

namespace ephemera::shim {
namespace {

using Clock = std::chrono::steady_clock;
using testing::UnixEchoServer;

int ConnectLoopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

// Reads until EOF or the deadline.
std::string ReadToEof(int fd, int timeout_ms = 10000) {
  std::string out;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(Forward, ParsesPortPathPairs) {
  std::vector<ForwardRule> rules;
  ASSERT_TRUE(ParseForwardSpec("6379=/run/ephemera/fwd-6379.sock,5432=/p2", &rules).ok());
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].port, 6379);
  EXPECT_EQ(rules[0].unix_path, "/run/ephemera/fwd-6379.sock");
  EXPECT_EQ(rules[1].port, 5432);
  EXPECT_EQ(rules[1].unix_path, "/p2");
  for (const char* bad : {"6379", "6379=relative", "0=/x", "70000=/x", "x=/y", "1=/a,1=/b"}) {
    Status st = ParseForwardSpec(bad, &rules);
    EXPECT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.message().find("EPHEMERA_FORWARD"), std::string::npos) << st.message();
  }
}

TEST(Forward, PipesBytesBothWaysAndPassesOnTheHalfClose) {
  UnixEchoServer echo("/tmp/ephemera-fwd-test-" + std::to_string(getpid()) + ".sock");
  PortForwarder forwarder({0, echo.path()});
  ASSERT_TRUE(forwarder.Start().ok());
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + (i >> 11));
  int fd = ConnectLoopback(forwarder.port());
  // Write from a thread while reading here: the echo comes back while we still send.
  std::thread writer([&] {
    for (size_t off = 0; off < data.size();) {
      ssize_t w = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      ASSERT_GT(w, 0);
      off += static_cast<size_t>(w);
    }
    shutdown(fd, SHUT_WR);  // the echo server sees EOF through the forwarder and closes
  });
  std::string back = ReadToEof(fd);
  writer.join();
  close(fd);
  EXPECT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data);

  // Two connections at once are independent.
  int a = ConnectLoopback(forwarder.port());
  int b = ConnectLoopback(forwarder.port());
  ASSERT_EQ(send(b, "bee", 3, 0), 3);
  ASSERT_EQ(send(a, "ay", 2, 0), 2);
  shutdown(a, SHUT_WR);
  shutdown(b, SHUT_WR);
  EXPECT_EQ(ReadToEof(a), "ay");
  EXPECT_EQ(ReadToEof(b), "bee");
  close(a);
  close(b);
}

TEST(Forward, AMissingUnixSocketClosesTheTcpConnection) {
  PortForwarder forwarder({0, "/tmp/ephemera-no-such-socket.sock"});
  ASSERT_TRUE(forwarder.Start().ok());
  int fd = ConnectLoopback(forwarder.port());
  auto start = Clock::now();
  EXPECT_EQ(ReadToEof(fd), "");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  close(fd);
}

}  // namespace
}  // namespace ephemera::shim
