#include "runtime/http/http_server.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "runtime/core/log.h"

namespace ephemera::http {

// One accepted TCP or unix-socket connection. It frees itself in its close
// callback (docs/style.md: memory of a handle goes in its close callback), so
// nothing else may delete it; the server only asks it to close.
//
// The request path, top to bottom: OnRead buffers bytes → ProcessPending feeds
// the parser while no request is in flight → Dispatch hands the request to the
// handler → the handler's Reply() lands in Send → Write queues the bytes →
// OnWrite, and Send/OnWrite call Continue to take up the next buffered request.
//
// One timer guards the connection; UpdateTimer() arms it for the phase the
// connection is in after every event (see Phase).
class Connection {
 public:
  // Returns nullptr (and owns nothing) if the handle cannot be initialised.
  static Connection* Create(HttpServer* server, uv_loop_t* loop, bool unix_socket) {
    auto* conn = new Connection(server, loop);
    conn->unix_socket_ = unix_socket;
    int rc = unix_socket ? uv_pipe_init(loop, &conn->handle_.pipe, 0)
                         : uv_tcp_init(loop, &conn->handle_.tcp);
    if (rc < 0) {
      delete conn;  // never initialised, so never to be closed
      return nullptr;
    }
    conn->handle_.base.data = conn;
    return conn;
  }

  uv_stream_t* stream() { return &handle_.stream; }

  void Start() {
    if (!unix_socket_) uv_tcp_nodelay(&handle_.tcp, 1);
    if (uv_read_start(stream(), &Connection::OnAlloc, &Connection::OnRead) < 0) {
      Close();
      return;
    }
    UpdateTimer();
  }

  // Starts a connection over the limit: it is answered `status` at once,
  // before anything is read, and closed (see Reject).
  void StartRefused(int status, const std::string& message) {
    Start();
    if (!closing_) Reject(status, message, true);
  }

  // Detaches from the server (which may be going away), aborts the exchange in
  // flight and closes. Idempotent; the memory goes in the close callback.
  void Close() {
    if (closing_) return;
    closing_ = true;
    timer_.Stop();
    hold_timer_.Stop();
    uv_read_stop(stream());
    if (server_ != nullptr) {
      server_->connections_.erase(this);
      server_->refusing_.erase(this);
    }
    server_ = nullptr;
    pending_.clear();
    uv_close(&handle_.base, [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
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
    if (response.may_wait_for_next && keep_alive && pending_.size() > consumed_ && held_.empty()) {
      // A request is pipelined behind this one: this reply goes out with its reply.
      held_ = std::move(head);
      held_ += response.body;
      hold_timer_.Start(HttpResponse::kHoldMs, [this] {
        if (!closing_ && !held_.empty()) Write(std::string(), std::string());
      });
      current_.reset();
      Continue();
      return;
    }
    Write(std::move(head), std::move(response.body));
    // This may drop the last reference to `exchange`, whose Reply() called us;
    // Reply() touches nothing after this returns.
    current_.reset();
    if (closing_) return;  // the write failed
    if (!keep_alive) {
      // Nothing more is read from a connection we are about to close.
      close_after_write_ = true;
      if (writes_in_flight_ == 0) {
        LastWriteDone();  // written already (Write)
        return;
      }
      UpdateTimer();
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

  // What the connection waits for, which decides its timer.
  enum class Phase {
    kNone,   // nothing to time here: closing, or a reply that ends it is being written
    kBusy,   // a request is with the handler: never timed out
    kHead,   // reading a request head (header_timeout_ms, not restarted by bytes)
    kBody,   // reading a body (body_timeout_ms, restarted by every read)
    kIdle,   // between requests (idle_timeout_ms, restarted by every completed write)
    kDrain,  // after an error reply: bounded by kDrainTimeoutMs
  };

  Connection(HttpServer* server, uv_loop_t* loop)
      : server_(server),
        parser_(server->options_.limits, server->options_.body_limit),
        timer_(loop),
        hold_timer_(loop) {}

  Phase CurrentPhase() const {
    if (closing_) return Phase::kNone;
    // The last reply is being written: a client that does not read it is idle.
    if (close_after_write_) return writes_in_flight_ > 0 ? Phase::kIdle : Phase::kNone;
    if (current_ != nullptr) return Phase::kBusy;
    if (parser_.message_started()) {
      return parser_.headers_complete() ? Phase::kBody : Phase::kHead;
    }
    // Unparsed bytes wait only while the client does not read our replies.
    if (!pending_.empty()) return Phase::kIdle;
    return requests_ == 0 ? Phase::kHead : Phase::kIdle;
  }

  // Arms the timer for the phase the connection is now in. `read_progress`:
  // bytes just arrived; `write_progress`: a write just completed.
  void UpdateTimer(bool read_progress = false, bool write_progress = false) {
    if (closing_ || phase_ == Phase::kDrain || server_ == nullptr) return;
    Phase want = CurrentPhase();
    bool restart = want != phase_ || (want == Phase::kBody && read_progress) ||
                   (want == Phase::kIdle && write_progress);
    if (!restart) return;
    phase_ = want;
    const HttpServer::Options& o = server_->options_;
    uint64_t ms = want == Phase::kHead   ? o.header_timeout_ms
                  : want == Phase::kBody ? o.body_timeout_ms
                  : want == Phase::kIdle ? o.idle_timeout_ms
                                         : 0;
    if (ms == 0) {
      timer_.Stop();
      return;
    }
    timer_.Start(ms, [this, want, ms] { OnTimeout(want, ms); });
  }

  void OnTimeout(Phase phase, uint64_t ms) {
    if (closing_ || server_ == nullptr) return;
    HttpServer::Stats& stats = server_->stats_;
    if (phase == Phase::kIdle) {
      ++stats.idle_timeouts;
      LOG_DEBUG("http", "%s: closing a connection idle for %llu ms", server_->options_.name.c_str(),
                static_cast<unsigned long long>(ms));
      Close();
      return;
    }
    if (phase == Phase::kHead) {
      ++stats.header_timeouts;
      if (!parser_.message_started() && pending_.empty()) {
        // Nothing was asked, so nothing is answered.
        LOG_DEBUG("http", "%s: closing a connection that sent no request in %llu ms",
                  server_->options_.name.c_str(), static_cast<unsigned long long>(ms));
        Close();
        return;
      }
      LOG_INFO("http", "%s: request head not complete after %llu ms; closing",
               server_->options_.name.c_str(), static_cast<unsigned long long>(ms));
      Reject(408, "request head not received within " + std::to_string(ms) + " ms", false);
      return;
    }
    ++stats.body_timeouts;
    LOG_INFO("http", "%s: no request body bytes for %llu ms; closing",
             server_->options_.name.c_str(), static_cast<unsigned long long>(ms));
    Reject(408, "no request body bytes received for " + std::to_string(ms) + " ms", false);
  }

  static bool StatusHasBody(int status) {
    return status != 204 && status != 304 && !(status >= 100 && status < 200);
  }

  // One read buffer per thread, shared by every connection of its loops: libuv
  // reads into it and calls OnRead at once, which copies the bytes out before
  // anything else can run. An idle connection then holds no 64 KB of its own.
  static void OnAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
    static thread_local char storage[64 * 1024];
    buf->base = storage;
    buf->len = sizeof storage;
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
    self->ProcessPending(/*read_progress=*/true);
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
  void ProcessPending(bool read_progress = false) {
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
      consumed_ = offset;
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
    // Close() and Reject() may have cleared the buffer meanwhile.
    pending_.erase(0, std::min(offset, pending_.size()));
    consumed_ = 0;
    // Hold back a client that pipelines far ahead of us.
    if (!closing_ && !read_paused_ && pending_.size() > kMaxPendingBytes) {
      uv_read_stop(stream());
      read_paused_ = true;
    }
    processing_ = false;
    UpdateTimer(read_progress);
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
    ++requests_;
    // Not timed while the handler works (a long invoke, a parked /next).
    UpdateTimer();
    if (server_ == nullptr) return;
    ++server_->stats_.requests;
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
    LOG_DEBUG("http", "refused a request: %d %s", parser_.error_status(),
              parser_.error_message().c_str());
    Reject(parser_.error_status(), parser_.error_message(), true);
  }

  // Sends an error reply and closes after it. With `drain`, what the client
  // still sends is read and dropped until it closes (or kDrainTimeoutMs), so it
  // gets to read the answer instead of a reset; without, the connection closes
  // as soon as the reply is written (a stalled client: nothing to wait for).
  void Reject(int status, const std::string& message, bool drain) {
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
    draining_ = drain;
    pending_.clear();
    if (std::exchange(read_paused_, false) &&
        uv_read_start(stream(), &Connection::OnAlloc, &Connection::OnRead) < 0) {
      Close();
      return;
    }
    // Bounds the drain, and the write of the reply to a client that reads nothing.
    phase_ = Phase::kDrain;
    timer_.Start(kDrainTimeoutMs, [this] { Close(); });
    if (writes_in_flight_ == 0) LastWriteDone();  // written already (Write)
  }

  // Writes at once what the socket takes (one writev, no libuv write request: a request's
  // completion re-arms the descriptor in epoll, one more system call per reply); what it
  // does not take goes to libuv's queue and completes in OnWrite. A reply written here is
  // done when Write returns, and OnWrite does not run for it: the callers do its part.
  void Write(std::string head, std::string body) {
    if (!held_.empty()) {  // a held reply goes first (see Send)
      hold_timer_.Stop();
      head.insert(0, held_);
      held_.clear();
    }
    if (writes_in_flight_ == 0 && stream()->write_queue_size == 0) {
      uv_buf_t now[2] = {uv_buf_init(head.data(), static_cast<unsigned>(head.size())),
                         uv_buf_init(body.data(), static_cast<unsigned>(body.size()))};
      int n = uv_try_write(stream(), now, body.empty() ? 1 : 2);
      if (n < 0 && n != UV_EAGAIN) {
        Close();
        return;
      }
      size_t written = n > 0 ? static_cast<size_t>(n) : 0;
      if (written == head.size() + body.size()) return;
      if (written >= head.size()) {
        body.erase(0, written - head.size());
        head.clear();
      } else {
        head.erase(0, written);
      }
    }
    auto* w = new WriteReq;
    if (head.empty()) {
      w->head = std::move(body);  // the rest of the body is all that is left
    } else {
      w->head = std::move(head);
      w->body = std::move(body);
    }
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
      if (!self->closing_) self->UpdateTimer(false, /*write_progress=*/true);
      return;
    }
    if (self->writes_in_flight_ > 0) return;
    self->LastWriteDone();
  }

  // The reply that ends the connection is written: close, or after an error reply
  // send our FIN but keep discarding input until the client closes or the drain
  // timer fires.
  void LastWriteDone() {
    if (!draining_ || peer_finished_) {
      Close();
      return;
    }
    auto* sreq = new uv_shutdown_t;
    if (uv_shutdown(sreq, stream(), [](uv_shutdown_t* r, int) { delete r; }) < 0) {
      delete sreq;
      Close();
    }
  }

  static constexpr size_t kMaxPendingBytes = 1 << 20;
  static constexpr uint64_t kDrainTimeoutMs = 2000;

  union Handle {
    uv_handle_t base;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  };

  Handle handle_{};
  bool unix_socket_ = false;
  HttpServer* server_;
  RequestParser parser_;
  std::string pending_;
  size_t consumed_ = 0;  // bytes of pending_ parsed while ProcessPending runs
  std::string held_;     // a reply waiting for the next one (may_wait_for_next)
  std::shared_ptr<HttpExchange> current_;
  Timer timer_;
  Timer hold_timer_;
  Phase phase_ = Phase::kNone;
  uint64_t requests_ = 0;  // dispatched on this connection
  bool processing_ = false;
  bool closing_ = false;
  bool close_after_write_ = false;
  bool draining_ = false;
  bool read_paused_ = false;
  bool peer_finished_ = false;
  bool continue_sent_ = false;
  int writes_in_flight_ = 0;
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

namespace {
// Refusals in progress at a time (each lasts at most Connection::kDrainTimeoutMs).
constexpr size_t kMaxRefusing = 64;
}  // namespace

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
  if (listener_) return InvalidArgument(options_.name + ": this server already listens on TCP");
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

Status HttpServer::ListenUnix(const std::string& path, int mode) {
  const std::string what = options_.name + ": unix socket " + path;
  if (pipe_listener_) return InvalidArgument(what + ": this server already listens on a socket");
  // libuv (1.44) would silently cut a longer path.
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return InvalidArgument(what + ": the path must be 1.." +
                           std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes long");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return InvalidArgument(what + ": a file that is not a socket is in the way");
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Unavailable(what + ": cannot remove the stale socket: " + std::strerror(errno));
    }
  }
  if (int rc = pipe_listener_.Init(loop_, uv_pipe_init, 0); rc < 0) {
    return Internal(what + ": uv_pipe_init: " + uv_strerror(rc));
  }
  pipe_listener_.get()->data = this;
  auto* stream = reinterpret_cast<uv_stream_t*>(pipe_listener_.get());
  int rc = uv_pipe_bind(pipe_listener_.get(), path.c_str());
  // A bind mount hands the socket to a container user that is not us: chmod
  // rather than umask, which is process-wide.
  if (rc == 0 && ::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) rc = -errno;
  if (rc == 0) rc = uv_listen(stream, 511, &HttpServer::OnConnection);
  if (rc < 0) {
    pipe_listener_.Close();  // libuv removes the file it bound
    return Unavailable(what + ": cannot listen: " + uv_strerror(rc));
  }
  unix_path_ = path;
  return Status::Ok();
}

void HttpServer::OnConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<HttpServer*>(listener->data);
  if (self == nullptr || status < 0) return;
  Connection* conn = Connection::Create(
      self, self->loop_,
      uv_handle_get_type(reinterpret_cast<uv_handle_t*>(listener)) == UV_NAMED_PIPE);
  if (conn == nullptr) return;
  if (uv_accept(listener, conn->stream()) < 0) {
    conn->Close();
    return;
  }
  size_t limit = self->options_.max_connections;
  if (limit != 0 && self->connections_.size() >= limit) {
    ++self->stats_.connections_refused;
    // Once per episode, not once per connection of a flood.
    if (!std::exchange(self->limit_logged_, true)) {
      LOG_WARN("http", "%s: connection limit of %zu reached; refusing new connections",
               self->options_.name.c_str(), limit);
    }
    if (self->refusing_.size() >= kMaxRefusing) {
      conn->Close();
      return;
    }
    self->refusing_.insert(conn);
    conn->StartRefused(
        503, "connection limit of " + std::to_string(limit) + " reached; try again later");
    return;
  }
  self->limit_logged_ = false;
  ++self->stats_.connections_accepted;
  self->connections_.insert(conn);
  conn->Start();
}

HttpServer::Stats HttpServer::stats() const {
  Stats s = stats_;
  s.connections_open = connections_.size();
  return s;
}

void HttpServer::Close() {
  listener_.Close();
  pipe_listener_.Close();  // libuv removes the socket file it bound
  // Every connection is detached before any is closed: closing one runs its
  // abort callback, which may destroy this server, so nothing here touches
  // `this` once the first Close() has been called.
  std::unordered_set<Connection*> conns;
  conns.swap(connections_);
  for (Connection* c : refusing_) conns.insert(c);
  refusing_.clear();
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
