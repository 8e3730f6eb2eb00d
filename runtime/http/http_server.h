// runtime/http/http_server.h: an HTTP/1.1 server on one libuv loop.
//
// What it does: accepts TCP connections (Listen) and/or unix-socket connections
// (ListenUnix), parses requests with RequestParser, hands each complete request
// to the handler as an HttpExchange, and writes the reply. Both kinds of
// connection behave identically. Keep-alive is the default; pipelined requests
// are answered strictly in order because a connection parses its next request
// only after the current one has been replied to. Malformed or oversized
// requests get an error response (shaped by Options::error_response) and the
// connection is closed after it; until then what the client still sends is
// read and dropped, so it can read the answer (a 413 arrives while a too-large
// body is still being sent). A request with "Expect: 100-continue" gets
// "100 Continue" once its head is accepted. Responses to HEAD and 1xx/204/304
// carry no body.
//
// Clients that misbehave (all limits in Options, 0 disables one):
//   - header_timeout_ms (10 s): a request head must be complete within this
//     long. For the first request of a connection the clock starts at accept;
//     for later ones, at the first byte of the request (before that byte the
//     connection is idle, below). Trickling bytes does not extend it. A client
//     that sent part of a head gets 408 (through error_response) and the
//     connection is closed; one that sent nothing is closed without an answer.
//   - body_timeout_ms (10 s): while a body is owed, the connection is closed
//     (after a 408) once no byte has arrived for this long. Every read restarts
//     it, so a slow but steady upload is fine.
//   - idle_timeout_ms (60 s): a keep-alive connection with no request in
//     flight and no byte of a next request is closed (without an answer) after
//     this long. The clock starts when the reply is handed over and restarts
//     whenever a write completes, so a client that does not read its reply is
//     idle too.
//   - max_connections (4096): a connection accepted while this many are open is
//     refused: it gets a 503 (through error_response, message "connection limit
//     of N reached") at once, without its request being read, then the server
//     sends FIN and closes on EOF or after 2 s. At most 64 refusals are in
//     progress at a time; beyond that a connection is closed at accept with no
//     answer. Refused connections do not count as open.
// None of these timers runs while a request is with its handler: a long invoke
// or a parked Runtime API /next is never timed out here, only reading a request
// and idling between requests are. stats() counts opens, refusals and timeouts.
//
// Memory: an idle connection holds about 1.5 kB (the 64 KB read buffer is one
// per thread, shared by all connections).
//
// Backpressure: a connection stops reading while more than 1 MB of pipelined
// input waits behind the request in flight, and stops answering pipelined
// requests while more than 1 MB of replies wait for the client to read them.
//
// Thread: the loop thread only; nothing blocks (ListenUnix makes a few quick
// file-system calls: lstat, unlink, chmod).
// Ownership: the server owns its connections. A handler may keep the exchange
// (shared_ptr) and reply later, from any later loop callback. If the connection
// closes first (the client closes or resets it, or sends EOF while the
// exchange waits), the exchange's abort callback runs once, from the loop, and
// Reply() becomes a no-op. Exceptions thrown by a handler become a 500.
// Destroying (or Close()-ing) the server closes every connection at once: the
// waiting exchanges are aborted, replies still queued in libuv are dropped,
// and all memory is released in libuv close callbacks. Abort callbacks may
// close or destroy the server; a handler may close it but not destroy it (that
// would destroy the handler while it runs).
// Callbacks: the handler runs once per request; error_response once per
// refused request or connection; body_limit once per request head.
// Depends on: libuv, llhttp (through RequestParser).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>

#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"
#include "runtime/http/http_message.h"
#include "runtime/http/request_parser.h"

namespace ephemera::http {

class Connection;

class HttpExchange {
 public:
  // Receives the reply of an exchange that belongs to no connection.
  using ReplySink = std::function<void(HttpResponse)>;

  explicit HttpExchange(HttpRequest request) : request_(std::move(request)) {}
  // An exchange without a connection (unit tests, in-process calls): the first
  // Reply() hands the response to `sink`, synchronously. It is never aborted.
  HttpExchange(HttpRequest request, ReplySink sink)
      : request_(std::move(request)), sink_(std::move(sink)) {}
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  const HttpRequest& request() const { return request_; }
  HttpRequest& mutable_request() { return request_; }

  // Sends the response. Only the first call counts; after the connection has
  // gone it does nothing. The connection may drop its reference to this
  // exchange inside the call, so a caller that holds only a raw pointer must
  // not touch the exchange afterwards (Reply() itself touches nothing).
  void Reply(HttpResponse response);
  bool replied() const { return replied_; }
  // True while the client is still connected and no reply has been sent.
  bool waiting() const { return (connection_ != nullptr || sink_ != nullptr) && !replied_; }
  // True once the connection closed before a reply was sent.
  bool aborted() const { return aborted_; }

  // Runs once, from the loop, if the connection closes before Reply(). Set it
  // before returning from the handler: if the exchange was already aborted it
  // never runs (check aborted()). Replying from inside it is a no-op.
  void SetOnAbort(std::function<void()> fn) { on_abort_ = std::move(fn); }

 private:
  friend class Connection;
  void Abort();

  HttpRequest request_;
  Connection* connection_ = nullptr;
  ReplySink sink_;
  bool replied_ = false;
  bool aborted_ = false;
  std::function<void()> on_abort_;
};

class HttpServer {
 public:
  using Handler = std::function<void(std::shared_ptr<HttpExchange>)>;
  // Shapes the response for a request the parser refused (400, 413, 431, or
  // 500 if parsing itself failed), for a request that timed out while being
  // read (408), and for a connection over max_connections (503, with an empty
  // head). `head` holds whatever was parsed (method, path and headers once they
  // are complete). If it throws, the plain-text response is sent instead.
  using ErrorResponseFn =
      std::function<HttpResponse(int status, const std::string& message, const HttpRequest& head)>;

  struct Options {
    RequestParser::Limits limits;
    RequestParser::BodyLimitFn body_limit;  // per-request body limit; null = limits.max_body_bytes
    ErrorResponseFn error_response;         // null = plain text
    std::string name = "http";              // for logs
    // Misbehaving clients (see the file comment); 0 disables each.
    uint64_t header_timeout_ms = 10'000;
    uint64_t body_timeout_ms = 10'000;
    uint64_t idle_timeout_ms = 60'000;
    size_t max_connections = 4096;
  };

  // Counters since construction, for /metrics.
  struct Stats {
    uint64_t connections_open = 0;      // now (refusals in progress not included)
    uint64_t connections_accepted = 0;  // total served (not refused)
    uint64_t connections_refused = 0;   // over max_connections
    uint64_t header_timeouts = 0;       // closed: head not complete in time
    uint64_t body_timeouts = 0;         // closed: body stalled
    uint64_t idle_timeouts = 0;         // closed: keep-alive connection idle
    uint64_t requests = 0;              // handed to the handler
  };

  HttpServer(uv_loop_t* loop, Handler handler, Options options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens on host:port; host is a numeric IPv4 or IPv6 address
  // (names are not resolved). Port 0 picks a free one; see port(). At most once.
  Status Listen(const std::string& host, int port);
  int port() const { return port_; }
  const std::string& host() const { return host_; }

  // Listens on a unix socket at `path` (shorter than 108 bytes). A socket file
  // already there is removed first (a stale one from an earlier run; a live
  // one is replaced too); any other kind of file is an error. The socket is
  // chmod-ed to `mode` (not subject to the umask), so that with 0666 a
  // container's non-root user can connect through a bind mount. Close()
  // removes the file at `path` (libuv does, as it closes the listener), even
  // if another server has replaced it since: give each server its own path.
  // At most once; may be combined with Listen() on the same server.
  Status ListenUnix(const std::string& path, int mode = 0666);
  const std::string& unix_path() const { return unix_path_; }

  // Stops accepting and closes every connection (see above). Idempotent.
  void Close();

  size_t connection_count() const { return connections_.size(); }
  uint64_t requests_served() const { return stats_.requests; }
  Stats stats() const;

 private:
  friend class Connection;
  static void OnConnection(uv_stream_t* listener, int status);

  uv_loop_t* loop_;
  Handler handler_;
  Options options_;
  UvHandle<uv_tcp_t> listener_;
  UvHandle<uv_pipe_t> pipe_listener_;
  std::string host_;
  int port_ = 0;
  std::string unix_path_;
  std::unordered_set<Connection*> connections_;
  std::unordered_set<Connection*> refusing_;  // answering 503, then closing
  bool limit_logged_ = false;
  Stats stats_;
};

// Serializes a response head (status line and headers, with Content-Length and
// Connection added). Exposed for tests and for the microbenchmarks.
std::string SerializeResponseHead(const HttpResponse& response, bool keep_alive);

}  // namespace ephemera::http
