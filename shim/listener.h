// shim/listener.h: a TCP listener that serves each accepted connection on its own thread.
//
// Used by the Runtime API proxy (proxy.h) and the host service forwards (forward.h): few
// connections, each mostly blocked in poll(), so a thread per connection is the simplest
// correct shape. Listen() binds an IPv4 address (port 0 picks a free one); Serve() starts
// the accept thread; every accepted socket is handed to the handler on a new thread and
// shut down when the handler returns (closed, and the thread joined, at the next accept or
// at Stop()). Threads run with all signals blocked.
//
// Stop() (also the destructor) closes the listener, shuts down every open connection so
// blocked handlers wake up (they see EOF or a hang-up; stopping() tells them why), and
// joins every thread. The shim itself never stops its listeners: they live until exit.
// Errors: Listen() fails with a sentence naming the address.
// Thread: Listen/Serve/Stop from one owner thread; stopping() from any.
// Depends on: POSIX sockets, shim/http_client.h (Endpoint), shim/signals.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

#include "shim/http_client.h"
#include "shim/status.h"

namespace ephemera::shim {

class TcpListener {
 public:
  using Handler = std::function<void(int fd)>;

  TcpListener() = default;
  ~TcpListener() { Stop(); }
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // Binds and listens on `address` (a TCP Endpoint; host an IPv4 literal or "localhost").
  Status Listen(const Endpoint& address);
  // Starts accepting; `handler` runs once per connection, on that connection's thread.
  void Serve(Handler handler);
  void Stop();

  uint16_t port() const noexcept { return port_; }
  bool stopping() const noexcept { return stopping_; }

 private:
  struct Connection {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void AcceptLoop();
  void ReapFinished();  // joins handler threads that have returned; caller holds mutex_

  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  Handler handler_;
  std::thread accept_thread_;
  std::mutex mutex_;
  std::list<Connection> connections_;
};

}  // namespace ephemera::shim
