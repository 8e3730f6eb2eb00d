// tests/shim/unix_echo_server.h: an echo server on a unix socket, standing in for a host
// service behind EPHEMERA_FORWARD. Every connection gets its own thread; bytes come back
// as they arrive, and an EOF from the client makes it close its side.
// Thread: its own threads; construct and destroy from one thread.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <list>
#include <string>
#include <thread>

namespace ephemera::shim::testing {

// Echoes every byte back; on EOF from the client it closes its side.
class UnixEchoServer {
 public:
  explicit UnixEchoServer(std::string path) : path_(std::move(path)) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    unlink(path_.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 8), 0);
    EXPECT_EQ(pipe2(stop_, O_CLOEXEC), 0);
    thread_ = std::thread([this] { Accept(); });
  }
  ~UnixEchoServer() {
    EXPECT_EQ(write(stop_[1], "x", 1), 1);
    thread_.join();
    for (auto& t : connections_) t.join();
    close(fd_);
    close(stop_[0]);
    close(stop_[1]);
    unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  void Accept() {
    while (true) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      poll(p, 2, -1);
      if (p[1].revents != 0) return;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      connections_.emplace_back([c] {
        char buf[65536];
        ssize_t n;
        while ((n = read(c, buf, sizeof buf)) > 0) {
          for (ssize_t off = 0; off < n;) {
            ssize_t w = write(c, buf + off, static_cast<size_t>(n - off));
            if (w <= 0) break;
            off += w;
          }
        }
        close(c);
      });
    }
  }

  std::string path_;
  int fd_ = -1;
  int stop_[2] = {-1, -1};
  std::thread thread_;
  std::list<std::thread> connections_;
};

}  // namespace ephemera::shim::testing
