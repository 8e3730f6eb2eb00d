// tests/docker/fake_http_server.h: a scripted HTTP/1.1 peer on a temporary unix socket,
// served by the test's own libuv loop (uv_pipe_t), for unit tests of CurlMulti and
// DockerClient without dockerd.
//
// It listens on a unix socket by default, or on 127.0.0.1:<ephemeral port> (Transport::kTcp).
// For each complete request (head plus Content-Length body) the handler returns a script:
// chunks of bytes to write, each after an optional delay (a timer, never a sleep), and
// optionally a close. An empty script holds the request forever (a long poll). A step
// marked `stream` makes its connection a stream: Push() writes to every stream, and
// CloseStreams() cuts them (an engine that drops its event streams).
// Connections are kept alive between requests. Every handle is closed exactly once and
// freed in its close callback; Close() closes the listener and every connection.
// Thread: the loop thread only.
#pragma once

#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace ephemera::testing {

class FakeHttpServer {
 public:
  struct Step {
    std::string bytes;
    uint64_t delay_ms = 0;
    bool close_after = false;
    bool stream = false;  // from this step on, the connection is a stream (see Push)
  };
  using Handler = std::function<std::vector<Step>(const std::string& request)>;
  enum class Transport { kUnixSocket, kTcp };

  // `socket_path`: listen there instead of in a fresh temporary directory (to come back
  // at the same address after Close(), as a restarted engine does); the caller owns its
  // directory.
  FakeHttpServer(uv_loop_t* loop, Handler handler, Transport transport = Transport::kUnixSocket,
                 const std::string& socket_path = "")
      : loop_(loop), handler_(std::move(handler)), tcp_(transport == Transport::kTcp) {
    // A client that hangs up mid-script must not kill the test with SIGPIPE.
    signal(SIGPIPE, SIG_IGN);
    listener_ = new Stream;
    int rc = 0;
    if (tcp_) {
      uv_tcp_init(loop_, &listener_->tcp);
      sockaddr_in addr;
      uv_ip4_addr("127.0.0.1", 0, &addr);
      rc = uv_tcp_bind(&listener_->tcp, reinterpret_cast<const sockaddr*>(&addr), 0);
      sockaddr_in bound;
      int len = sizeof bound;
      uv_tcp_getsockname(&listener_->tcp, reinterpret_cast<sockaddr*>(&bound), &len);
      path_ = "tcp://127.0.0.1:" + std::to_string(ntohs(bound.sin_port));
    } else if (!socket_path.empty()) {
      path_ = socket_path;
      uv_pipe_init(loop_, &listener_->pipe, 0);
      rc = uv_pipe_bind(&listener_->pipe, path_.c_str());
    } else {
      char tmpl[] = "/tmp/ephemera-fake-XXXXXX";
      dir_ = mkdtemp(tmpl);
      path_ = dir_ + "/http.sock";
      uv_pipe_init(loop_, &listener_->pipe, 0);
      rc = uv_pipe_bind(&listener_->pipe, path_.c_str());
    }
    listener_->handle.data = this;
    if (rc != 0 || uv_listen(&listener_->stream, 16, &OnConnection) != 0) {
      std::fprintf(stderr, "fake server: cannot listen on %s\n", path_.c_str());
    }
  }
  ~FakeHttpServer() { Close(); }

  void Close() {
    if (listener_ != nullptr) {
      listener_->handle.data = nullptr;
      uv_close(&listener_->handle, [](uv_handle_t* h) { delete reinterpret_cast<Stream*>(h); });
      listener_ = nullptr;
      if (!tcp_) {
        unlink(path_.c_str());
        if (!dir_.empty()) rmdir(dir_.c_str());
      }
    }
    auto conns = conns_;
    for (Conn* c : conns) c->Close();
  }

  // The unix socket path, or "tcp://127.0.0.1:<port>": what DockerClient::Create takes.
  const std::string& path() const { return path_; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  int open_connections() const { return static_cast<int>(conns_.size()); }
  int open_streams() const {
    int n = 0;
    for (Conn* c : conns_) n += c->stream ? 1 : 0;
    return n;
  }

  // Writes `bytes` to every stream connection (see Step::stream).
  void Push(const std::string& bytes) {
    for (Conn* c : conns_) {
      if (c->stream) c->Write(bytes);
    }
  }
  // Closes every stream connection; the listener and other connections stay.
  void CloseStreams() {
    auto conns = conns_;
    for (Conn* c : conns) {
      if (c->stream) c->Close();
    }
  }

  // Helpers for scripts.
  static std::string Response(int status, const std::string& body,
                              const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers +
           "\r\n" + body;
  }
  static std::string Chunk(const std::string& data) {
    char size[20];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + data + "\r\n";
  }

 private:
  union Stream {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  };

  struct Conn {
    FakeHttpServer* server;
    Stream pipe;
    uv_timer_t timer;
    int open_handles = 0;
    bool closing = false;
    bool stream = false;
    std::string in;
    std::vector<Step> script;  // steps still to run for the current request
    size_t next_step = 0;

    void Close() {
      if (closing) return;
      closing = true;
      server->conns_.erase(this);
      auto on_close = [](uv_handle_t* h) {
        auto* c = static_cast<Conn*>(h->data);
        if (--c->open_handles == 0) delete c;
      };
      uv_close(&pipe.handle, on_close);
      uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_close);
    }

    // Runs the script from next_step: writes until a step with a delay, which arms the timer.
    void RunScript() {
      while (!closing && next_step < script.size()) {
        Step& s = script[next_step];
        if (s.delay_ms > 0) {
          uint64_t delay = s.delay_ms;
          s.delay_ms = 0;
          uv_timer_start(
              &timer, [](uv_timer_t* t) { static_cast<Conn*>(t->data)->RunScript(); }, delay, 0);
          return;
        }
        ++next_step;
        if (s.stream) stream = true;
        Write(s.bytes);
        if (s.close_after) return Close();
      }
      if (!closing && next_step >= script.size() && !script.empty()) {
        script.clear();
        next_step = 0;
        Serve();  // a pipelined request may be waiting
      }
    }

    void Write(const std::string& bytes) {
      if (bytes.empty()) return;
      struct WriteReq {
        uv_write_t req;
        std::string data;
      };
      auto* w = new WriteReq;
      w->data = bytes;
      uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
      if (uv_write(&w->req, &pipe.stream, &buf, 1,
                   [](uv_write_t* req, int) { delete reinterpret_cast<WriteReq*>(req); }) != 0) {
        delete w;
      }
    }

    // Takes one complete request off `in`, if there is one and no script is running.
    void Serve() {
      if (closing || !script.empty()) return;
      size_t head_end = in.find("\r\n\r\n");
      if (head_end == std::string::npos) return;
      size_t body_len = 0;
      std::string head = in.substr(0, head_end);
      for (const char* key : {"Content-Length: ", "content-length: "}) {
        if (size_t p = head.find(key); p != std::string::npos) {
          body_len = std::stoul(head.substr(p + std::strlen(key)));
        }
      }
      if (in.size() < head_end + 4 + body_len) return;
      std::string request = in.substr(0, head_end + 4 + body_len);
      in.erase(0, request.size());
      ++server->requests_;
      script = server->handler_(request);
      next_step = 0;
      if (script.empty()) return;  // held forever
      RunScript();
    }
  };

  static void OnConnection(uv_stream_t* listener, int status) {
    auto* self = static_cast<FakeHttpServer*>(listener->data);
    if (self == nullptr || status < 0) return;
    auto* c = new Conn;
    c->server = self;
    if (self->tcp_) {
      uv_tcp_init(self->loop_, &c->pipe.tcp);
    } else {
      uv_pipe_init(self->loop_, &c->pipe.pipe, 0);
    }
    uv_timer_init(self->loop_, &c->timer);
    c->pipe.handle.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    self->conns_.insert(c);
    if (uv_accept(listener, &c->pipe.stream) != 0) return c->Close();
    ++self->connections_;
    uv_read_start(
        &c->pipe.stream,
        [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
          buf->base = new char[suggested];
          buf->len = suggested;
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* c = static_cast<Conn*>(s->data);
          if (n > 0) c->in.append(buf->base, static_cast<size_t>(n));
          delete[] buf->base;
          if (n < 0) return c->Close();
          c->Serve();
        });
  }

  uv_loop_t* loop_;
  Handler handler_;
  bool tcp_;
  std::string dir_, path_;
  Stream* listener_ = nullptr;
  std::set<Conn*> conns_;
  int connections_ = 0;
  int requests_ = 0;
};

}  // namespace ephemera::testing
