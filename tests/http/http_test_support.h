// tests/http/http_test_support.h: what the HttpServer tests share: a client on
// the test loop (TCP or unix socket), a response splitter, and a fixture that
// owns the loop, runs it until a condition holds (bounded by a watchdog timer,
// never a sleep) and checks at tear-down that every handle was closed and
// uv_loop_close() succeeds.
// Thread: the test thread, which runs the loop. Depends on: gtest, libuv, http.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <uv.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/http/http_server.h"

namespace ephemera::http::testing {

// One response as the client saw it.
struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;
};

// Splits the bytes a client received into responses (Content-Length framing;
// no body for 1xx, 204, 304 and answers to HEAD). Stops at an incomplete one.
inline std::vector<ClientResponse> ParseResponses(const std::string& wire, size_t* used = nullptr,
                                                  bool head_request = false) {
  std::vector<ClientResponse> out;
  size_t pos = 0;
  while (true) {
    size_t end = wire.find("\r\n\r\n", pos);
    if (end == std::string::npos) break;
    ClientResponse r;
    std::string head = wire.substr(pos, end - pos);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0) break;
    r.status = std::stoi(status_line.substr(9, 3));
    size_t p = line_end;
    while (p != std::string::npos && p < head.size()) {
      size_t next = head.find("\r\n", p + 2);
      std::string line = head.substr(p + 2, next == std::string::npos ? next : next - p - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t v = line.find_first_not_of(' ', colon + 1);
        r.headers.Add(line.substr(0, colon), v == std::string::npos ? "" : line.substr(v));
      }
      p = next;
    }
    size_t body_start = end + 4;
    size_t length = 0;
    bool has_body = !head_request && r.status >= 200 && r.status != 204 && r.status != 304;
    if (has_body) {
      if (auto cl = r.headers.Get("Content-Length")) length = std::stoul(std::string(*cl));
    }
    if (wire.size() - body_start < length) break;
    r.body = wire.substr(body_start, length);
    pos = body_start + length;
    out.push_back(std::move(r));
  }
  if (used != nullptr) *used = pos;
  return out;
}

// A TCP (127.0.0.1:port) or unix-socket client on the test loop. It connects
// at once, queues writes (libuv holds them until the connection is up) and
// collects what arrives.
class TestClient {
 public:
  TestClient(uv_loop_t* loop, int port, bool start_reading = true) {
    tcp_ = new Handle{};
    EXPECT_EQ(uv_tcp_init(loop, &tcp_->tcp), 0);
    tcp_->base.data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", port, &addr);
    connect_.data = this;
    start_reading_ = start_reading;
    EXPECT_EQ(uv_tcp_connect(&connect_, &tcp_->tcp, reinterpret_cast<const sockaddr*>(&addr),
                             &TestClient::OnConnect),
              0);
  }
  TestClient(uv_loop_t* loop, const std::string& unix_path, bool start_reading = true) {
    tcp_ = new Handle{};
    unix_ = true;
    EXPECT_EQ(uv_pipe_init(loop, &tcp_->pipe, 0), 0);
    tcp_->base.data = this;
    connect_.data = this;
    start_reading_ = start_reading;
    uv_pipe_connect(&connect_, &tcp_->pipe, unix_path.c_str(), &TestClient::OnConnect);
  }
  ~TestClient() { Close(); }
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  void Send(std::string data) {
    ASSERT_NE(tcp_, nullptr);
    auto* w = new Write{{}, std::move(data)};
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    ++writes_pending_;
    ASSERT_EQ(uv_write(&w->req, Stream(), &buf, 1, &TestClient::OnWrite), 0);
  }

  void StartReading() {
    start_reading_ = true;
    if (connected_) uv_read_start(Stream(), &TestClient::OnAlloc, &TestClient::OnRead);
  }

  void Shutdown() {
    auto* req = new uv_shutdown_t;
    ASSERT_EQ(uv_shutdown(req, Stream(), [](uv_shutdown_t* r, int) { delete r; }), 0);
  }

  // Closes with FIN (or with RST if `reset`). The handle memory goes in the
  // close callback; nothing reaches this object afterwards.
  void Close(bool reset = false) {
    if (tcp_ == nullptr) return;
    auto* h = std::exchange(tcp_, nullptr);
    h->base.data = nullptr;
    auto on_close = [](uv_handle_t* handle) { delete reinterpret_cast<Handle*>(handle); };
    if (reset && connected_ && !unix_) {
      uv_tcp_close_reset(&h->tcp, on_close);
    } else {
      uv_close(&h->base, on_close);
    }
  }
  bool closed() const { return tcp_ == nullptr; }

  std::vector<ClientResponse> Responses(bool head_request = false) const {
    return ParseResponses(received_, nullptr, head_request);
  }
  const std::string& received() const { return received_; }
  bool connected() const { return connected_; }
  bool eof() const { return eof_; }
  int read_error() const { return read_error_; }
  int write_error() const { return write_error_; }
  int writes_pending() const { return writes_pending_; }
  int reads() const { return reads_; }  // reads that brought bytes

 private:
  struct Write {
    uv_write_t req;
    std::string data;
  };
  union Handle {
    uv_handle_t base;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  };

  uv_stream_t* Stream() { return &tcp_->stream; }

  static void OnConnect(uv_connect_t* req, int status) {
    auto* self = static_cast<TestClient*>(req->data);
    if (status == UV_ECANCELED) return;  // closed before it connected
    if (status < 0) {
      self->read_error_ = status;  // e.g. refused: reported like a read error
      return;
    }
    self->connected_ = true;
    if (!self->unix_) uv_tcp_nodelay(&self->tcp_->tcp, 1);  // small writes go out as they are made
    if (self->start_reading_) self->StartReading();
  }

  static void OnWrite(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<Write*>(req);
    auto* self = static_cast<TestClient*>(req->handle->data);
    delete w;
    if (self == nullptr) return;  // cancelled by Close()
    --self->writes_pending_;
    if (status < 0) self->write_error_ = status;
  }

  static void OnAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
    static char storage[64 * 1024];
    *buf = uv_buf_init(storage, sizeof storage);
  }

  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<TestClient*>(s->data);
    if (self == nullptr) return;
    if (nread == UV_EOF) {
      self->eof_ = true;
      uv_read_stop(s);
    } else if (nread < 0) {
      self->read_error_ = static_cast<int>(nread);
      uv_read_stop(s);
    } else {
      if (nread > 0) ++self->reads_;
      self->received_.append(buf->base, static_cast<size_t>(nread));
    }
  }

  Handle* tcp_ = nullptr;
  bool unix_ = false;
  uv_connect_t connect_{};
  bool start_reading_ = true;
  bool connected_ = false;
  int reads_ = 0;
  bool eof_ = false;
  int read_error_ = 0;
  int write_error_ = 0;
  int writes_pending_ = 0;
  std::string received_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    ASSERT_EQ(uv_timer_init(&loop_, &watchdog_), 0);
    ASSERT_EQ(uv_timer_init(&loop_, &alarm_), 0);
    alarm_.data = this;
  }

  void TearDown() override {
    server_.reset();
    clients_.clear();
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&alarm_), nullptr);
    // Everything left must close within a few loop turns, without a timer.
    for (int i = 0; i < 100 && uv_run(&loop_, UV_RUN_NOWAIT) != 0; ++i) {
    }
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          ADD_FAILURE() << "handle still open: " << uv_handle_type_name(uv_handle_get_type(h))
                        << (uv_is_closing(h) ? " (closing)" : "");
        },
        nullptr);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    if (!temp_dir_.empty()) std::filesystem::remove_all(temp_dir_);
  }

  // Listens on 127.0.0.1, or on a unix socket in a fresh directory when
  // `unix_socket`; Connect() then uses the same transport.
  void StartServer(HttpServer::Handler handler, HttpServer::Options options = {},
                   bool unix_socket = false) {
    server_ = std::make_unique<HttpServer>(&loop_, std::move(handler), std::move(options));
    if (unix_socket) {
      socket_path_ = TempDir() + "/http.sock";
      Status st = server_->ListenUnix(socket_path_);
      ASSERT_TRUE(st.ok()) << st.message();
      return;
    }
    Status st = server_->Listen("127.0.0.1", 0);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_GT(server_->port(), 0);
  }

  TestClient& Connect(bool start_reading = true) {
    if (!socket_path_.empty()) {
      clients_.push_back(std::make_unique<TestClient>(&loop_, socket_path_, start_reading));
    } else {
      clients_.push_back(std::make_unique<TestClient>(&loop_, server_->port(), start_reading));
    }
    return *clients_.back();
  }

  // A directory of this test's own, removed (with what is in it) at tear-down.
  const std::string& TempDir() {
    if (temp_dir_.empty()) {
      std::string tmpl = ::testing::TempDir() + "ephemera-http-XXXXXX";
      EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
      temp_dir_ = tmpl;
    }
    return temp_dir_;
  }

  // Loop time in ms (uv_now after an update), for elapsed-time checks.
  uint64_t Now() {
    uv_update_time(&loop_);
    return uv_now(&loop_);
  }

  // Runs the loop until `done` holds; fails the test after `timeout_ms`.
  bool RunUntil(const std::function<bool()>& done, uint64_t timeout_ms = 10000) {
    bool timed_out = false;
    watchdog_.data = &timed_out;
    uv_timer_start(
        &watchdog_, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, timeout_ms, 0);
    while (!done() && !timed_out) uv_run(&loop_, UV_RUN_ONCE);
    uv_timer_stop(&watchdog_);
    EXPECT_FALSE(timed_out) << "timed out waiting";
    return !timed_out;
  }

  // Runs the loop for `ms` (> 0) of loop time (a timer, not a sleep), for
  // checks that something does NOT happen.
  void RunFor(uint64_t ms) {
    ASSERT_GT(ms, 0u) << "a 0 ms timer fires before the poll, which then blocks";
    bool fired = false;
    alarm_.data = &fired;
    uv_timer_start(
        &alarm_, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, ms, 0);
    while (!fired) uv_run(&loop_, UV_RUN_ONCE);
  }

  // Calls `fn` from a loop callback after `ms`.
  void After(uint64_t ms, std::function<void()> fn) {
    auto* t = new uv_timer_t;
    uv_timer_init(&loop_, t);
    t->data = new std::function<void()>(std::move(fn));
    uv_timer_start(
        t,
        [](uv_timer_t* timer) {
          auto* f = static_cast<std::function<void()>*>(timer->data);
          (*f)();
          delete f;
          uv_close(reinterpret_cast<uv_handle_t*>(timer),
                   [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
        },
        ms, 0);
  }

  uv_loop_t loop_{};
  uv_timer_t watchdog_{};
  uv_timer_t alarm_{};
  std::unique_ptr<HttpServer> server_;
  std::vector<std::unique_ptr<TestClient>> clients_;
  std::string temp_dir_;
  std::string socket_path_;
};

// Open file descriptors of this process, as "fd -> target" lines (from
// /proc/self/fd, without the one the listing itself uses).
inline std::vector<std::string> OpenFds() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (ec) continue;
    if (target.string().find("/fd") != std::string::npos) continue;  // the listing itself
    out.push_back(e.path().filename().string() + " -> " + target.string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline int CountOpenFds() {
  return static_cast<int>(OpenFds().size());
}

inline void EchoPath(std::shared_ptr<HttpExchange> ex) {
  ex->Reply(HttpResponse(200, "path=" + ex->request().path + " body=" + ex->request().body));
}

}  // namespace ephemera::http::testing
