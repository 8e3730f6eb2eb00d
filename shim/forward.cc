// shim/forward.cc: see forward.h.
#include "shim/forward.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shim/modes.h"
#include "shim/signals.h"

namespace ephemera::shim {
namespace {

// Copies `from` to `to` until EOF or an error. EOF becomes a half-close of `to`; an error
// (or a stopping listener) shuts both sockets down so the other direction ends too.
void Copy(int from, int to, const TcpListener& listener) {
  char buf[64 * 1024];
  while (true) {
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && !listener.stopping()) {
      shutdown(to, SHUT_WR);
      return;
    }
    bool failed = n <= 0;
    for (ssize_t off = 0; !failed && off < n;) {
      ssize_t w = send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) failed = true;
      if (w > 0) off += w;
    }
    if (failed) {
      shutdown(from, SHUT_RDWR);
      shutdown(to, SHUT_RDWR);
      return;
    }
  }
}

}  // namespace

Status ParseForwardSpec(std::string_view spec, std::vector<ForwardRule>* rules) {
  rules->clear();
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string_view port_text = item.substr(0, eq);
    unsigned long port = 0;
    bool digits = !port_text.empty() && port_text.size() <= 5;
    for (char c : port_text) {
      if (c < '0' || c > '9') digits = false;
      port = port * 10 + static_cast<unsigned long>(c - '0');
    }
    if (eq == std::string_view::npos || !digits || port == 0 || port > 65535 ||
        item.size() < eq + 2 || item[eq + 1] != '/') {
      return Status::Error("EPHEMERA_FORWARD: '" + std::string(item) +
                           "' is not <port>=<absolute unix socket path>");
    }
    for (const auto& r : *rules) {
      if (r.port == port) {
        return Status::Error("EPHEMERA_FORWARD: port " + std::to_string(port) + " given twice");
      }
    }
    rules->push_back({static_cast<uint16_t>(port), std::string(item.substr(eq + 1))});
  }
  return Status::Ok();
}

Status PortForwarder::Start() {
  Endpoint address;
  address.host = "127.0.0.1";
  address.port = rule_.port;
  Status st = listener_.Listen(address);
  if (!st.ok()) return Status::Error("EPHEMERA_FORWARD: " + st.message());
  listener_.Serve([this](int fd) { Pipe(fd); });
  return Status::Ok();
}

void PortForwarder::Pipe(int tcp_fd) {
  Endpoint target;
  target.unix_path = rule_.unix_path;
  int err = 0;
  int unix_fd = ConnectEndpoint(target, &err);
  if (unix_fd < 0) {
    ShimLog("forward 127.0.0.1:" + std::to_string(rule_.port) + ": cannot connect to " +
            target.Describe() + ": " + strerror(err));
    return;  // the listener closes the TCP connection: the client sees EOF
  }
  std::thread back = StartThreadWithoutSignals([&] { Copy(unix_fd, tcp_fd, listener_); });
  Copy(tcp_fd, unix_fd, listener_);
  back.join();
  close(unix_fd);
}

}  // namespace ephemera::shim
