// shim/forward.h: host services forwarded into the container (EPHEMERA_FORWARD).
//
// EPHEMERA_FORWARD=6379=/run/ephemera/fwd-6379.sock[,5432=/path2] makes the shim listen on
// 127.0.0.1:<port> inside the container for each pair, and pipe every accepted TCP
// connection to a new connection on the unix socket (which the daemon bind-mounts and
// serves, e.g. by connecting it to Redis on the host). Bytes flow both ways unchanged, one
// thread per direction with blocking I/O, so neither direction can stall the other. An
// EOF in one direction is passed on as a half-close (shutdown(SHUT_WR)) so request/response
// protocols that half-close still work; once both directions ended, or on any error, both
// sockets are closed. A unix socket that cannot be reached closes the TCP connection at
// once (the client sees EOF).
// Errors: ParseForwardSpec and PortForwarder::Start fail with sentences naming the pair; a
// failed unix connect is logged ("ephemera-shim: forward 127.0.0.1:<port>: ...").
// Ownership: a forwarder owns its listener and threads; destroying it stops them.
// Thread: one thread per connection plus one per direction; Start/Stop from the owner.
// Depends on: shim/listener.h, shim/http_client.h (ConnectEndpoint).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shim/listener.h"
#include "shim/status.h"

namespace ephemera::shim {

struct ForwardRule {
  uint16_t port = 0;      // listened on at 127.0.0.1 inside the container
  std::string unix_path;  // where each connection is piped to
};

// Parses "port=/path[,port=/path...]" (ports 1-65535, absolute paths, no port twice).
Status ParseForwardSpec(std::string_view spec, std::vector<ForwardRule>* rules);

class PortForwarder {
 public:
  explicit PortForwarder(ForwardRule rule) : rule_(std::move(rule)) {}
  ~PortForwarder() { Stop(); }
  PortForwarder(const PortForwarder&) = delete;
  PortForwarder& operator=(const PortForwarder&) = delete;

  // Listens on 127.0.0.1:<rule.port> (0: a free port, for tests) and starts forwarding.
  Status Start();
  void Stop() { listener_.Stop(); }
  uint16_t port() const noexcept { return listener_.port(); }

 private:
  void Pipe(int tcp_fd);

  ForwardRule rule_;
  TcpListener listener_;
};

}  // namespace ephemera::shim
