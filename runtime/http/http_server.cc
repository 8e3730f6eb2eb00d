#include "runtime/http/http_server.h"

#include <algorithm>
#include <cstring>

#include "runtime/core/log.h"

namespace ephemera::http {

// One accepted TCP connection. It frees itself in its close callback (STYLE.md
// rule 3), so nothing else may delete it; the server only asks it to close.
//
// The request path, top to bottom: OnRead buffers bytes → ProcessPending feeds
// the parser while no request is in flight → Dispatch hands the request to the
// handler → the handler's Reply() lands in Send → Write queues the bytes →
// OnWrite, and Send/OnWrite call Continue to take up the next buffered request.
class Connection {
 public:
  // Returns nullptr (and owns nothing) if the handle cannot be initialised.
  static Connection* Create(HttpServer* server, uv_loop_t* loop) {
    auto* conn = new Connection(server, loop);
    if (uv_tcp_init(loop, &conn->tcp_) < 0) {
      delete conn;  // never initialised, so never to be closed
      return nullptr;
    }
    conn->tcp_.data = conn;
    return conn;
  }

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  void Start() {
    uv_tcp_nodelay(&tcp_, 1);
    if (uv_read_start(stream(), &Connection::OnAlloc, &Connection::OnRead) < 0) Close();
  }

  // Detaches from the server (which may be going away), aborts the exchange in
  // flight and closes. Idempotent; the memory goes in the close callback.
  void Close() {
    if (closing_) return;
    closing_ = true;
    drain_timer_.Stop();
    uv_read_stop(stream());
    if (server_ != nullptr) server_->connections_.erase(this);
    server_ = nullptr;
    pending_.clear();
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_),
             [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
    // Last, so that an abort callback finds the connection already closed.
    if (auto ex = std::move(current_)) ex->Abort();
  }

  // The server is going away: nothing may reach it from here on.
  void DetachServer() { server_ = nullptr; }

  void Send(HttpExchange* exchange, HttpResponse response) {
    if (closing_ || current_.get() != exchange) return;
    bool keep_alive = exchange->request().keep_alive && !close_after_write_;
    bool head_only = exchange->request().method == "HEAD";
    // Serialized first: the head carries the length of the body moved below.
    std::string head = SerializeResponseHead(response, keep_alive);
    if (head_only || !StatusHasBody(response.status)) response.body.clear();
    Write(std::move(head), std::move(response.body));
    // This may drop the last reference to `exchange`, whose Reply() called us;
    // Reply() touches nothing after this returns.
    current_.reset();
    if (closing_) return;  // the write failed
    if (!keep_alive) {
      // Nothing more is read from a connection we are about to close.
      close_after_write_ = true;
      return;
    }
    Continue();
  }

 private:
  struct WriteReq {
    uv_write_t req;
    std::string head;
    std::string body;
    Connection* connection;
  };

  Connection(HttpServer* server, uv_loop_t* loop)
      : server_(server),
        parser_(server->options_.limits, server->options_.body_limit),
        drain_timer_(loop) {}

  static bool StatusHasBody(int status) {
    return status != 204 && status != 304 && !(status >= 100 && status < 200);
  }

  static void OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* self = static_cast<Connection*>(h->data);
    buf->base = self->read_buf_;
    buf->len = sizeof self->read_buf_;
  }

  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<Connection*>(s->data);
    if (nread == UV_EOF) {
      self->OnPeerFinished();
      return;
    }
    if (nread < 0) {
      self->Close();
      return;
    }
    if (nread == 0 || self->closing_) return;
    // After an error reply, or once a reply that ends the connection has been
    // sent, what the client still sends is read and dropped.
    if (self->draining_ || self->close_after_write_) return;
    self->pending_.append(buf->base, static_cast<size_t>(nread));
    self->ProcessPending();
  }

  // The client will send nothing more. An exchange still waiting for its reply
  // is aborted (this is how a client gives up); a reply still being written
  // is allowed to finish first.
  void OnPeerFinished() {
    peer_finished_ = true;
    uv_read_stop(stream());
    if (current_ != nullptr || writes_in_flight_ == 0) {
      Close();
      return;
    }
    close_after_write_ = true;
  }

  // Parses buffered bytes into requests, one at a time, while no request is in
  // flight. Re-entrant calls (a handler replying synchronously) fold into the loop.
  void ProcessPending() {
    if (processing_) return;
    processing_ = true;
    // Consumed bytes are dropped once at the end, not per request: a buffer of
    // many small pipelined requests would otherwise be moved once per request.
    size_t offset = 0;
    while (!closing_ && !close_after_write_ && current_ == nullptr && offset < pending_.size() &&
           !WriteBacklogged()) {
      size_t used = 0;
      auto result = parser_.Feed(pending_.data() + offset, pending_.size() - offset, &used);
      offset += used;
      if (result == RequestParser::Result::kNeedMore) {
        MaybeSendContinue();
        break;
      }
      if (result == RequestParser::Result::kError) {
        RejectMalformed();
        break;
      }
      continue_sent_ = false;
      Dispatch(parser_.TakeRequest());
    }
    // Close() and RejectMalformed() may have cleared the buffer meanwhile.
    pending_.erase(0, std::min(offset, pending_.size()));
    // Hold back a client that pipelines far ahead of us.
    if (!closing_ && !read_paused_ && pending_.size() > kMaxPendingBytes) {
      uv_read_stop(stream());
      read_paused_ = true;
    }
    processing_ = false;
  }

  // After a reply or a finished write: take up the next buffered request and
  // read again if we had stopped.
  void Continue() {
    if (closing_ || close_after_write_) return;
    ProcessPending();
    if (closing_ || close_after_write_ || !read_paused_ || pending_.size() > kMaxPendingBytes) {
      return;
    }
    read_paused_ = false;
    if (uv_read_start(stream(), &Connection::OnAlloc, &Connection::OnRead) < 0) Close();
  }

  // Responses the client has not read yet pile up in libuv's write queue; stop
  // answering pipelined requests until it drains.
  bool WriteBacklogged() { return stream()->write_queue_size > kMaxPendingBytes; }

  // A client that sent "Expect: 100-continue" waits (curl: one second) for
  // this before it sends the body.
  void MaybeSendContinue() {
    if (!parser_.expects_continue() || continue_sent_) return;
    continue_sent_ = true;
    Write("HTTP/1.1 100 Continue\r\n\r\n", std::string());
  }

  void Dispatch(HttpRequest request) {
    auto exchange = std::make_shared<HttpExchange>(std::move(request));
    exchange->connection_ = this;
    current_ = exchange;
    if (server_ == nullptr) return;
    ++server_->requests_;
    try {
      server_->handler_(exchange);
    } catch (const std::exception& e) {
      LOG_ERROR("http", "handler threw: %s", e.what());
      exchange->Reply(HttpResponse(500, std::string("internal error: ") + e.what() + "\n"));
    } catch (...) {
      LOG_ERROR("http", "handler threw a non-exception");
      exchange->Reply(HttpResponse(500, "internal error\n"));
    }
  }

  void RejectMalformed() {
    int status = parser_.error_status();
    const std::string& message = parser_.error_message();
    LOG_DEBUG("http", "refused a request: %d %s", status, message.c_str());
    HttpResponse response(status, message + "\n");
    if (server_ != nullptr && server_->options_.error_response) {
      try {
        response = server_->options_.error_response(status, message, parser_.partial());
      } catch (const std::exception& e) {
        LOG_ERROR("http", "error_response threw: %s", e.what());
      } catch (...) {
        LOG_ERROR("http", "error_response threw a non-exception");
      }
    }
    const char* method = parser_.headers_complete() ? parser_.partial().method.c_str() : "";
    std::string head = SerializeResponseHead(response, false);
    if (std::strcmp(method, "HEAD") == 0 || !StatusHasBody(response.status)) response.body.clear();
    Write(std::move(head), std::move(response.body));
    if (closing_) return;
    close_after_write_ = true;
    // Keep reading (and discarding) what the client still sends, so it gets to
    // read our answer instead of a reset; close when it is done or after a while.
    draining_ = true;
    pending_.clear();
    if (std::exchange(read_paused_, false) &&
        uv_read_start(stream(), &Connection::OnAlloc, &Connection::OnRead) < 0) {
      Close();
      return;
    }
    drain_timer_.Start(kDrainTimeoutMs, [this] { Close(); });
  }

  void Write(std::string head, std::string body) {
    auto* w = new WriteReq;
    w->head = std::move(head);
    w->body = std::move(body);
    w->connection = this;
    w->req.data = w;
    uv_buf_t bufs[2] = {uv_buf_init(w->head.data(), static_cast<unsigned>(w->head.size())),
                        uv_buf_init(w->body.data(), static_cast<unsigned>(w->body.size()))};
    ++writes_in_flight_;
    int rc = uv_write(&w->req, stream(), bufs, w->body.empty() ? 1 : 2, &Connection::OnWrite);
    if (rc < 0) {
      --writes_in_flight_;
      delete w;
      Close();
    }
  }

  // libuv runs this for every write, also with UV_ECANCELED when the handle is
  // closed under it, always before the close callback frees the connection.
  static void OnWrite(uv_write_t* req, int status) {
    auto* w = static_cast<WriteReq*>(req->data);
    Connection* self = w->connection;
    delete w;
    --self->writes_in_flight_;
    if (self->closing_) return;
    if (status < 0) {
      self->Close();
      return;
    }
    if (!self->close_after_write_) {
      self->Continue();  // the write queue may have drained below the limit
      return;
    }
    if (self->writes_in_flight_ > 0) return;
    if (!self->draining_ || self->peer_finished_) {
      self->Close();
      return;
    }
    // Send our FIN but keep discarding input until the client closes or the
    // drain timer fires.
    auto* sreq = new uv_shutdown_t;
    if (uv_shutdown(sreq, self->stream(), [](uv_shutdown_t* r, int) { delete r; }) < 0) {
      delete sreq;
      self->Close();
    }
  }

  static constexpr size_t kMaxPendingBytes = 1 << 20;
  static constexpr uint64_t kDrainTimeoutMs = 2000;

  uv_tcp_t tcp_{};
  HttpServer* server_;
  RequestParser parser_;
  std::string pending_;
  std::shared_ptr<HttpExchange> current_;
  Timer drain_timer_;
  bool processing_ = false;
  bool closing_ = false;
  bool close_after_write_ = false;
  bool draining_ = false;
  bool read_paused_ = false;
  bool peer_finished_ = false;
  bool continue_sent_ = false;
  int writes_in_flight_ = 0;
  char read_buf_[64 * 1024];
};

void HttpExchange::Reply(HttpResponse response) {
  if (replied_) return;
  replied_ = true;
  // Move everything out first: the abort callback may hold the last reference
  // to this exchange, and Send() or the sink may drop the connection's. Nothing
  // below touches a member.
  Connection* connection = std::exchange(connection_, nullptr);
  ReplySink sink = std::move(sink_);
  std::function<void()> dropped_abort = std::move(on_abort_);
  if (connection != nullptr) {
    connection->Send(this, std::move(response));
  } else if (sink) {
    sink(std::move(response));
  }
}

void HttpExchange::Abort() {
  connection_ = nullptr;
  if (replied_ || aborted_) return;
  aborted_ = true;
  // Moved out first: it may hold the last reference to this exchange.
  if (auto fn = std::move(on_abort_)) fn();
}

HttpServer::HttpServer(uv_loop_t* loop, Handler handler, Options options)
    : loop_(loop), handler_(std::move(handler)), options_(std::move(options)) {}

HttpServer::~HttpServer() {
  Close();
}

Status HttpServer::Listen(const std::string& host, int port) {
  sockaddr_storage addr{};
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) < 0) {
    if (int rc = uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)); rc < 0) {
      return InvalidArgument(options_.name + ": bad listen address " + host + ": " +
                             uv_strerror(rc));
    }
  }
  if (int rc = listener_.Init(loop_, uv_tcp_init); rc < 0) {
    return Internal(options_.name + ": uv_tcp_init: " + uv_strerror(rc));
  }
  listener_.get()->data = this;
  int rc = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_.get()), 511, &HttpServer::OnConnection);
  }
  if (rc < 0) {
    listener_.Close();
    return Unavailable(options_.name + ": cannot listen on " + host + ":" + std::to_string(port) +
                       ": " + uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  host_ = host;
  return Status::Ok();
}

void HttpServer::OnConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<HttpServer*>(listener->data);
  if (self == nullptr || status < 0) return;
  Connection* conn = Connection::Create(self, self->loop_);
  if (conn == nullptr) return;
  if (uv_accept(listener, conn->stream()) < 0) {
    conn->Close();
    return;
  }
  self->connections_.insert(conn);
  conn->Start();
}

void HttpServer::Close() {
  listener_.Close();
  // Every connection is detached before any is closed: closing one runs its
  // abort callback, which may destroy this server, so nothing here touches
  // `this` once the first Close() has been called.
  std::unordered_set<Connection*> conns;
  conns.swap(connections_);
  for (Connection* c : conns) c->DetachServer();
  for (Connection* c : conns) c->Close();
}

std::string SerializeResponseHead(const HttpResponse& response, bool keep_alive) {
  std::string head;
  head.reserve(256);
  head += "HTTP/1.1 ";
  head += std::to_string(response.status);
  head += ' ';
  head += ReasonPhrase(response.status);
  head += "\r\n";
  for (const auto& [k, v] : response.headers.items()) {
    if (EqualsIgnoreCase(k, "Content-Length") || EqualsIgnoreCase(k, "Connection")) continue;
    head += k;
    head += ": ";
    head += v;
    head += "\r\n";
  }
  bool no_body = response.status == 204 || response.status == 304 ||
                 (response.status >= 100 && response.status < 200);
  if (!no_body) {
    head += "Content-Length: ";
    head += std::to_string(response.body.size());
    head += "\r\n";
  }
  head += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return head;
}

}  // namespace ephemera::http
