// runtime/sandbox/forwarder.h: one host service an isolated environment may reach.
//
// An isolated environment has only a loopback interface, so a function whose spec lists
// `forward: ["6379"]` reaches Redis through this: the daemon listens on a unix socket in
// the environment's own folder (fwd-6379.sock, bind-mounted into the container), and the
// shim inside listens on 127.0.0.1:6379 and relays each connection to that socket. Every
// connection accepted here is joined to a new TCP connection to host:port, bytes copied
// both ways until either side closes. Nothing but the ports the spec names is reachable.
//
// Backpressure: a side stops reading while more than 1 MB waits to be written to the
// other.
// Thread: the loop thread. Ownership: the Forwarder owns its listener and connections;
// destroying it closes everything (memory is freed in libuv's close callbacks).
// Depends on: libuv, core.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <unordered_set>

#include "runtime/core/status.h"

namespace ephemera::sandbox {

class Forwarder {
 public:
  explicit Forwarder(uv_loop_t* loop);
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Listens on `socket_path` (mode 0666) and forwards to host:port (an IPv4 address).
  Status Listen(const std::string& socket_path, const std::string& host, int port);
  size_t connections() const { return links_.size(); }

  struct Link;  // one accepted connection and its TCP peer (forwarder.cc)
  void Forget(Link* link) { links_.erase(link); }

 private:
  static void OnConnection(uv_stream_t* server, int status);

  uv_loop_t* loop_;
  uv_pipe_t* server_ = nullptr;
  std::string path_;
  sockaddr_in target_{};
  std::unordered_set<Link*> links_;
};

}  // namespace ephemera::sandbox
