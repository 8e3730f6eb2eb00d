// tests/shim/fake_http_server.h: a tiny blocking HTTP/1.1 server on a loopback port or a
// unix socket, for the shim's tests (the HTTP client's, the proxy's and the real shim
// binary's peer).
//
// Each connection is served on its own thread, so a held long poll does not block other
// connections (the proxy opens one upstream connection per client). For each request the
// handler returns a Reply: raw bytes written in the given pieces (a short pause between
// pieces, so the client sees split reads), optionally closing the connection afterwards,
// or `hold` to answer nothing and keep the connection open (a long poll that never ends).
// Every request is recorded; WaitForRequests() blocks (with a timeout) until enough
// arrived. Destroying the server closes the listener and every connection (a daemon that
// was kill -9ed, as the shim sees it).
// Thread: connection threads run the handler concurrently (handlers must be thread-safe);
// the rest is thread-safe.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace ephemera::shim::testing {

struct FakeRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int connection = 0;  // 1-based index of the TCP connection it came on

  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
    }
    return "";
  }
};

struct FakeReply {
  std::vector<std::string> pieces;
  bool close_after = false;
  bool hold = false;  // never answer; keep the connection until the server stops

  // A complete response with Content-Length.
  static FakeReply Simple(int status, const std::string& body,
                          const std::string& extra_headers = "") {
    FakeReply r;
    r.pieces.push_back("HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body);
    return r;
  }
};

class FakeHttpServer {
 public:
  using Handler = std::function<FakeReply(const FakeRequest&)>;

  // Listens on 127.0.0.1 with a free port, or on the unix socket `unix_path` if given.
  explicit FakeHttpServer(Handler handler, const std::string& unix_path = "")
      : handler_(std::move(handler)), unix_path_(unix_path) {
    if (unix_path.empty()) {
      listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      listen(listen_fd_, 16);
      socklen_t len = sizeof addr;
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
      port_ = ntohs(addr.sin_port);
    } else {
      listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", unix_path.c_str());
      unlink(unix_path.c_str());
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      listen(listen_fd_, 16);
    }
    if (pipe2(stop_pipe_, O_CLOEXEC) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
    if (pipe2(connection_stop_pipe_, O_CLOEXEC) != 0) {
      connection_stop_pipe_[0] = connection_stop_pipe_[1] = -1;
    }
    thread_ = std::thread([this] { Serve(); });
  }

  // The listener goes first, then the connections: a client that sees its connection
  // close and tries a new one must find nobody listening (as after kill -9).
  ~FakeHttpServer() {
    char b = 1;
    ssize_t ignored = write(stop_pipe_[1], &b, 1);
    thread_.join();
    close(listen_fd_);
    if (!unix_path_.empty()) unlink(unix_path_.c_str());
    ignored = write(connection_stop_pipe_[1], &b, 1);
    (void)ignored;
    for (auto& t : connection_threads_) t.join();
    for (int fd :
         {stop_pipe_[0], stop_pipe_[1], connection_stop_pipe_[0], connection_stop_pipe_[1]})
      close(fd);
  }

  uint16_t port() const { return port_; }
  // "127.0.0.1:<port>" (TCP servers).
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& unix_path() const { return unix_path_; }
  int connections() const { return connections_; }

  // Waits until at least `n` connections have ended (the client closed or a reply closed).
  bool WaitForClosedConnections(int n, int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                        [&] { return closed_connections_ >= n; });
  }

  std::vector<FakeRequest> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

  // Waits until at least `n` requests arrived; false on timeout.
  bool WaitForRequests(size_t n, int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                        [&] { return requests_.size() >= n; });
  }

  // Waits until a request whose target ends with `suffix` arrived; returns it.
  bool WaitForTarget(const std::string& suffix, FakeRequest* out, int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      for (const auto& r : requests_) {
        if (r.target.size() >= suffix.size() &&
            r.target.compare(r.target.size() - suffix.size(), suffix.size(), suffix) == 0) {
          *out = r;
          return true;
        }
      }
      return false;
    });
  }

 private:
  // Waits for `fd` readable or stop; false on stop.
  bool WaitReadable(int fd) {
    int stop = fd == listen_fd_ ? stop_pipe_[0] : connection_stop_pipe_[0];
    pollfd p[2] = {{fd, POLLIN, 0}, {stop, POLLIN, 0}};
    while (true) {
      int r = poll(p, 2, -1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 || p[1].revents != 0) return false;
      return true;
    }
  }

  void Serve() {
    while (WaitReadable(listen_fd_)) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      if (unix_path_.empty()) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      int index = ++connections_;
      connection_threads_.emplace_back([this, fd, index] {
        ServeConnection(fd, index);
        close(fd);
        {
          std::lock_guard<std::mutex> lock(mutex_);
          ++closed_connections_;
        }
        cv_.notify_all();
      });
    }
  }

  // Returns false if the server is stopping.
  bool ServeConnection(int fd, int index) {
    std::string buf;
    char tmp[65536];
    while (true) {
      size_t head_end;
      while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!WaitReadable(fd)) return false;
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return true;  // client closed: wait for the next connection
        buf.append(tmp, static_cast<size_t>(n));
      }
      FakeRequest req;
      req.connection = index;
      std::string head = buf.substr(0, head_end);
      size_t line_end = head.find("\r\n");
      std::string first = head.substr(0, line_end);
      size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
      req.method = first.substr(0, sp1);
      req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t content_length = 0;
      size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t eol = head.find("\r\n", pos);
        if (eol == std::string::npos) eol = head.size();
        std::string line = head.substr(pos, eol - pos);
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::string value = line.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          req.headers.emplace_back(line.substr(0, colon), value);
          if (strcasecmp(line.substr(0, colon).c_str(), "Content-Length") == 0) {
            content_length = std::stoul(value);
          }
        }
        pos = eol + 2;
      }
      buf.erase(0, head_end + 4);
      while (buf.size() < content_length) {
        if (!WaitReadable(fd)) return false;
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return true;
        buf.append(tmp, static_cast<size_t>(n));
      }
      req.body = buf.substr(0, content_length);
      buf.erase(0, content_length);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(req);  // on arrival, so a handler that blocks is seen waiting
      }
      cv_.notify_all();
      FakeReply reply = handler_(req);
      if (reply.hold) {
        // Wait for the client to go away or the server to stop.
        while (WaitReadable(fd)) {
          if (recv(fd, tmp, sizeof tmp, 0) <= 0) return true;
        }
        return false;
      }
      for (size_t i = 0; i < reply.pieces.size(); ++i) {
        if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        const std::string& p = reply.pieces[i];
        for (size_t off = 0; off < p.size();) {
          ssize_t w = send(fd, p.data() + off, p.size() - off, MSG_NOSIGNAL);
          if (w <= 0) return true;
          off += static_cast<size_t>(w);
        }
      }
      if (reply.close_after) return true;
    }
  }

  Handler handler_;
  std::string unix_path_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};             // stops the accept loop
  int connection_stop_pipe_[2] = {-1, -1};  // then every connection
  uint16_t port_ = 0;
  std::atomic<int> connections_{0};
  int closed_connections_ = 0;  // guarded by mutex_
  std::thread thread_;
  std::list<std::thread> connection_threads_;  // joined at destruction
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<FakeRequest> requests_;
};

}  // namespace ephemera::shim::testing
