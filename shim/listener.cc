// shim/listener.cc: see listener.h.
#include "shim/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shim/signals.h"

namespace ephemera::shim {

Status TcpListener::Listen(const Endpoint& address) {
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(address.port);
  const char* ip = address.host == "localhost" ? "127.0.0.1" : address.host.c_str();
  if (address.is_unix() || inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
    return Status::Error("cannot listen on " + address.Describe() + ": not an IPv4 address");
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Error(std::string("socket: ") + strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return Status::Error("cannot listen on " + address.Describe() + ": " + strerror(e));
  }
  socklen_t length = sizeof addr;
  getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &length);
  port_ = ntohs(addr.sin_port);
  if (pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    int e = errno;
    close(fd);
    return Status::Error(std::string("pipe: ") + strerror(e));
  }
  listen_fd_ = fd;
  return Status::Ok();
}

void TcpListener::Serve(Handler handler) {
  handler_ = std::move(handler);
  accept_thread_ = StartThreadWithoutSignals([this] { AcceptLoop(); });
}

void TcpListener::AcceptLoop() {
  while (!stopping_) {
    struct pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;  // signals are blocked here; EINTR is not expected
    if (fds[1].revents != 0) break;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the peer went away before accept, or out of fds for a moment
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard<std::mutex> lock(mutex_);
    ReapFinished();
    if (stopping_) {
      close(fd);
      break;
    }
    Connection& c = connections_.emplace_back();
    c.fd = fd;
    c.thread = StartThreadWithoutSignals([this, &c] {
      handler_(c.fd);
      // The peer sees the end now; close() waits for the reaper, so that Stop() never
      // shuts down a number the kernel has already handed to another socket.
      shutdown(c.fd, SHUT_RDWR);
      c.done = true;
    });
  }
}

void TcpListener::ReapFinished() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (it->done) {
      it->thread.join();
      close(it->fd);
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void TcpListener::Stop() {
  if (listen_fd_ < 0) return;
  stopping_ = true;
  char byte = 1;
  ssize_t ignored = write(stop_pipe_[1], &byte, 1);
  (void)ignored;
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Wake every handler: its socket now reads EOF and polls as hung up.
    for (auto& c : connections_) shutdown(c.fd, SHUT_RDWR);
  }
  // No new connection can appear (the accept thread is gone), so joining without the
  // lock is safe and lets a handler finish whatever it does on the way out.
  for (auto& c : connections_) {
    c.thread.join();
    close(c.fd);
  }
  connections_.clear();
  close(listen_fd_);
  close(stop_pipe_[0]);
  close(stop_pipe_[1]);
  listen_fd_ = stop_pipe_[0] = stop_pipe_[1] = -1;
}

}  // namespace ephemera::shim
