// bench/loadgen.cc: the closed-loop HTTP/1.1 load generator (loadgen.h).
#include "bench/loadgen.h"

#include <strings.h>

#include <cstdlib>
#include <cstring>

#include "runtime/core/clock.h"

namespace ephemera::bench {

std::string HttpPost(const std::string& host_port, const std::string& path, const std::string& body,
                     const std::string& extra_headers) {
  return "POST " + path + " HTTP/1.1\r\nHost: " + host_port +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra_headers + "\r\n" + body;
}

struct LoadGenerator::Conn {
  uv_tcp_t tcp{};
  uv_connect_t connect{};
  uv_write_t write{};
  LoadGenerator* owner = nullptr;  // null once the generator is gone
  std::string rx;
  char buf[65536];
  double t_sent = 0;
  int sent = 0;
  bool busy = false;     // a request is out
  bool writing = false;  // `write` is in use
  bool send_pending = false;
  bool closing = false;
};

namespace {

// The status and the header `name` of a response head ("" if absent).
int StatusOf(std::string_view head) {
  size_t sp = head.find(' ');
  if (sp == std::string_view::npos) return 0;
  return std::atoi(std::string(head.substr(sp + 1, 3)).c_str());
}

std::string_view HeaderOf(std::string_view head, std::string_view name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t start = pos + 2;
    size_t end = head.find("\r\n", start);
    std::string_view line = head.substr(start, end == std::string_view::npos ? end : end - start);
    size_t colon = line.find(':');
    if (colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return v;
    }
    pos = end;
  }
  return {};
}

}  // namespace

LoadGenerator::LoadGenerator(uv_loop_t* loop, LoadOptions options)
    : loop_(loop), o_(std::move(options)) {}

LoadGenerator::~LoadGenerator() {
  done_ = nullptr;
  for (Conn* c : conns_) {
    c->owner = nullptr;
    if (!c->closing) {
      c->closing = true;
      uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
               [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
    }
  }
}

void LoadGenerator::Run(std::function<void(LoadResult)> done) {
  done_ = std::move(done);
  sockaddr_in addr{};
  uv_ip4_addr(o_.host.c_str(), o_.port, &addr);
  for (int i = 0; i < o_.connections; ++i) {
    auto* c = new Conn;
    c->owner = this;
    c->tcp.data = c;
    c->connect.data = c;
    c->write.data = c;
    uv_tcp_init(loop_, &c->tcp);
    uv_tcp_nodelay(&c->tcp, 1);
    conns_.push_back(c);
    ++open_;
    int rc = uv_tcp_connect(
        &c->connect, &c->tcp, reinterpret_cast<const sockaddr*>(&addr),
        [](uv_connect_t* req, int status) {
          auto* c = static_cast<Conn*>(req->data);
          if (c->owner == nullptr || c->closing) return;
          if (status < 0) {
            c->owner->OnError(c, std::string("connect: ") + uv_strerror(status));
            return;
          }
          uv_read_start(
              reinterpret_cast<uv_stream_t*>(&c->tcp),
              [](uv_handle_t* h, size_t, uv_buf_t* b) {
                auto* c = static_cast<Conn*>(h->data);
                *b = uv_buf_init(c->buf, sizeof c->buf);
              },
              [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
                auto* c = static_cast<Conn*>(s->data);
                if (c->owner == nullptr || c->closing) return;
                if (n < 0) {
                  c->owner->OnError(c, std::string("read: ") + uv_strerror(static_cast<int>(n)));
                  return;
                }
                c->rx.append(c->buf, static_cast<size_t>(n));
                // Whole replies, one after another.
                while (c->owner != nullptr && !c->closing) {
                  size_t end = c->rx.find("\r\n\r\n");
                  if (end == std::string::npos) break;
                  std::string_view head(c->rx.data(), end);
                  std::string_view cl = HeaderOf(head, "Content-Length");
                  size_t body =
                      cl.empty()
                          ? 0
                          : static_cast<size_t>(std::strtoul(std::string(cl).c_str(), nullptr, 10));
                  if (c->rx.size() < end + 4 + body) break;
                  int status = StatusOf(head);
                  LoadGenerator* g = c->owner;
                  bool matched = g->o_.expect_header.empty() ||
                                 HeaderOf(head, g->o_.expect_header) == g->o_.expect_value;
                  double latency = MonotonicMs() - c->t_sent;
                  // What went wrong, said in the result: the error's type and the start of
                  // its body, or the header's value when it was not the expected one.
                  std::string detail;
                  if (status != g->o_.expect_status) {
                    std::string_view type = HeaderOf(head, "X-Amzn-ErrorType");
                    detail = "HTTP " + std::to_string(status) +
                             (type.empty() ? "" : " " + std::string(type)) + ": " +
                             c->rx.substr(end + 4, std::min<size_t>(body, 200));
                  } else if (!matched) {
                    std::string_view got = HeaderOf(head, g->o_.expect_header);
                    detail = g->o_.expect_header + ": " +
                             (got.empty() ? std::string("(absent)") : std::string(got));
                  }
                  c->rx.erase(0, end + 4 + body);
                  g->OnReply(c, status, matched, latency, std::move(detail));
                }
              });
          c->owner->Send(c);
        });
    if (rc < 0) OnError(c, std::string("connect: ") + uv_strerror(rc));
  }
  timer_ = std::make_unique<Timer>(loop_);
  if (o_.warmup_ms > 0) {
    timer_->Start(static_cast<uint64_t>(o_.warmup_ms), [this] { WindowStart(); });
  } else {
    WindowStart();
  }
  if (open_ == 0) Stop();
}

void LoadGenerator::WindowStart() {
  window_open_ = true;
  window_t0_ = MonotonicMs();
  if (o_.on_window_start) o_.on_window_start();
  if (o_.duration_ms > 0) {
    timer_->Start(static_cast<uint64_t>(o_.duration_ms), [this] {
      WindowEnd();
      Stop();
    });
  }
}

void LoadGenerator::WindowEnd() {
  if (!window_open_ || window_done_) return;
  window_open_ = false;
  window_done_ = true;
  result_.window_ms = MonotonicMs() - window_t0_;
  if (o_.on_window_end) o_.on_window_end();
}

void LoadGenerator::Send(Conn* c) {
  if (stopping_ || c->closing) return;
  if (o_.requests_per_connection > 0 && c->sent >= o_.requests_per_connection) return;
  if (c->writing) {  // the previous write's callback has not run yet: `write` is busy
    c->send_pending = true;
    return;
  }
  ++c->sent;
  c->writing = true;
  c->busy = true;
  c->t_sent = MonotonicMs();
  uv_buf_t b = uv_buf_init(o_.request.data(), static_cast<unsigned>(o_.request.size()));
  int rc = uv_write(&c->write, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1,
                    [](uv_write_t* req, int status) {
                      auto* c = static_cast<Conn*>(req->data);
                      c->writing = false;
                      if (c->owner == nullptr || c->closing) return;
                      if (status < 0) {
                        c->owner->OnError(c, std::string("write: ") + uv_strerror(status));
                        return;
                      }
                      ++c->owner->result_.sent;
                      if (c->send_pending) {
                        c->send_pending = false;
                        c->owner->Send(c);
                      }
                    });
  if (rc < 0) OnError(c, std::string("write: ") + uv_strerror(rc));
}

void LoadGenerator::OnReply(Conn* c, int status, bool matched, double latency_ms,
                            std::string detail) {
  c->busy = false;
  ++result_.answered;
  if (status != o_.expect_status) {
    ++result_.errors;
    if (result_.messages.size() < 5) result_.messages.push_back(std::move(detail));
  } else if (InWindow()) {
    if (matched) {
      ++result_.completed;
      result_.latencies.push_back(latency_ms);
    } else {
      ++result_.mismatched;
      if (result_.mismatches.size() < 5) result_.mismatches.push_back(std::move(detail));
    }
  }
  if (o_.close_when_done && o_.requests_per_connection > 0 &&
      c->sent >= o_.requests_per_connection) {
    CloseConn(c);
    return;
  }
  Send(c);
}

void LoadGenerator::OnError(Conn* c, std::string why) {
  ++result_.errors;
  if (result_.messages.size() < 5) result_.messages.push_back(std::move(why));
  CloseConn(c);
}

void LoadGenerator::CloseConn(Conn* c) {
  if (c->closing) return;
  c->closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), [](uv_handle_t* h) {
    auto* c = static_cast<Conn*>(h->data);
    if (c->owner != nullptr) c->owner->OnClosed(c);
    delete c;
  });
}

void LoadGenerator::OnClosed(Conn* c) {
  for (auto it = conns_.begin(); it != conns_.end(); ++it) {
    if (*it == c) {
      conns_.erase(it);
      break;
    }
  }
  if (--open_ > 0) return;
  WindowEnd();
  if (timer_) timer_->Stop();
  if (auto done = std::move(done_)) done(std::move(result_));
}

void LoadGenerator::Stop() {
  if (stopping_) return;
  stopping_ = true;
  WindowEnd();
  if (timer_) timer_->Stop();
  if (open_ == 0) {
    // Nothing to close: finish on the next turn, never from inside Run().
    timer_->Start(0, [this] {
      if (auto done = std::move(done_)) done(std::move(result_));
    });
    return;
  }
  std::vector<Conn*> all = conns_;
  for (Conn* c : all) CloseConn(c);
}

}  // namespace ephemera::bench
