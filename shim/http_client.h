// shim/http_client.h: a tiny blocking HTTP/1.1 client over one keep-alive connection.
//
// Used by the shim for the Lambda Runtime API (long-polling GET /next, POST results) and,
// in http mode, to forward events to the wrapped web service. Blocking sockets are fine
// here: the shim does one thing at a time.
//
// - The peer is an Endpoint: TCP to an IPv4 literal ("127.0.0.1", or "localhost"; no
//   resolver, so the static binary needs no NSS), or a unix stream socket (the daemon's
//   EPHEMERA_RUNTIME_SOCKET). Both carry the same HTTP/1.1; over a unix socket the Host
//   header is "localhost".
// - Responses may be framed by Content-Length, chunked transfer coding, or connection
//   close; bodies may arrive in any number of reads. 1xx interim responses are skipped.
// - The connection is reused. If a reused connection turns out to be closed by the peer
//   (the write fails, or EOF arrives before any byte of the response), the client
//   reconnects once and resends; a fresh connection that fails is an error.
// - No timeouts: GET /next blocks for as long as the daemon wants. Reads wait on the
//   socket and the signal self-pipe (signals.h). A request sent as `abortable` fails as
//   soon as TerminationRequested() or the interrupt check (if set) returns true; http mode
//   uses the check to notice its service dying mid-poll. Other requests (posting a
//   result) run to completion regardless.
// - A ReadWatch (set_watch) is polled alongside every read: http mode uses it to keep an
//   eye on the idle Runtime API connection while the service handles an event.
// - CheckIdle() tells a connection the peer merely closed from one whose peer is gone:
//   on EOF it reconnects once; a refused connect means nobody listens.
// Errors are Status sentences naming the peer ("GET / to 127.0.0.1:8080: ...").
// Thread: one thread per client. Depends on: POSIX sockets, shim/signals.h.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shim/status.h"

namespace ephemera::shim {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Where an HTTP peer listens: a unix socket path, or an IPv4 host and port.
struct Endpoint {
  std::string host;       // TCP: an IPv4 literal or "localhost"
  uint16_t port = 0;      // TCP
  std::string unix_path;  // non-empty: a unix stream socket instead of TCP

  bool is_unix() const noexcept { return !unix_path.empty(); }
  // "127.0.0.1:9001" or "unix:/run/ephemera/runtime.sock", for messages.
  std::string Describe() const;
  // The Host header value: "host:port", or "localhost" for a unix socket.
  std::string HostHeader() const;
  // Parses "host:port" (as in AWS_LAMBDA_RUNTIME_API) into a TCP endpoint.
  static bool ParseHostPort(std::string_view spec, Endpoint* out);
};

// Opens a blocking, CLOEXEC stream socket connected to `endpoint` (TCP_NODELAY for TCP).
// Returns the fd, or -1 with *error_number set (EINVAL for an unusable address).
int ConnectEndpoint(const Endpoint& endpoint, int* error_number);

// True for connect() errors that mean nobody serves the endpoint any more (refused, no
// such socket file, reset, unreachable), as opposed to transient ones (EAGAIN, EINTR).
bool IsGoneError(int error_number) noexcept;

// Connects to `endpoint` and closes at once. 0 if the connection was accepted, else the
// connect() errno. Used to tell "the peer closed this connection" from "the peer is gone".
int ProbeEndpoint(const Endpoint& endpoint);

// Something to keep an eye on while a response is awaited: whenever `fd()` (if >= 0)
// polls readable or hung up, `check()` runs; false makes the request fail at once.
struct ReadWatch {
  std::function<int()> fd;
  std::function<bool()> check;
};

// Case-insensitive ASCII comparison, for header names.
bool EqualsIgnoreCase(std::string_view a, std::string_view b) noexcept;

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";  // origin-form: path plus optional ?query
  HttpHeaders headers;       // Host and Content-Length are added by the client
  std::string body;
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // in arrival order, names as sent
  std::string body;

  // The first header named `name` (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const noexcept;
};

class HttpClient {
 public:
  explicit HttpClient(Endpoint endpoint) : endpoint_(std::move(endpoint)) {}
  HttpClient(std::string host, uint16_t port) {
    endpoint_.host = std::move(host);
    endpoint_.port = port;
  }
  ~HttpClient() { Close(); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Parses "host:port" (as in AWS_LAMBDA_RUNTIME_API). False if malformed.
  static bool ParseHostPort(std::string_view spec, std::string* host, uint16_t* port);

  // Opens the connection now, retrying a refused connection (or, for a unix socket, a
  // socket file that does not exist yet) every `retry_interval_ms` for up to
  // `retry_for_ms`. Send() connects on demand without retrying.
  Status Connect(int retry_for_ms = 0, int retry_interval_ms = 1);

  // Sends one request and reads the whole response. See the file comment for `abortable`.
  Status Send(const HttpRequest& request, HttpResponse* response, bool abortable = false);

  // Sends `first` and `second` in one write (HTTP/1.1 pipelining) and reads both
  // responses in order; `abortable` applies to the wait for the second. A server that
  // closes after the first answer has not taken the second: it is sent again on a new
  // connection. If the first answer is not 2xx, the second is withdrawn (the connection is
  // closed) and second_response stays empty (status 0). Fails if an exchange fails, naming
  // the request.
  Status SendPipelined(const HttpRequest& first, HttpResponse* first_response,
                       const HttpRequest& second, HttpResponse* second_response,
                       bool abortable = false);

  void Close() noexcept;

  // For an idle connection that polled readable: false if the peer is gone. On EOF or an
  // error the connection is replaced by a new one, which stays open (so a watch goes on
  // watching it); only a connect that fails with IsGoneError() counts as gone. Stray bytes
  // from the peer close the connection for good (they could not answer anything). No
  // connection: true.
  bool CheckIdle();

  // Called when a blocking read is interrupted by a signal; true aborts the request.
  void set_interrupt_check(std::function<bool()> check) { interrupt_check_ = std::move(check); }
  // See ReadWatch. watch_failed() tells whether the last request failed because of it.
  void set_watch(ReadWatch watch) { watch_ = std::move(watch); }
  bool watch_failed() const noexcept { return watch_failed_; }
  bool connected() const noexcept { return fd_ >= 0; }
  // The connection's socket, or -1 (for polling an idle connection; do not read it).
  int fd() const noexcept { return fd_; }
  // Number of connections opened so far (tests check keep-alive reuse with it).
  int connections_opened() const noexcept { return connections_opened_; }
  const Endpoint& endpoint() const noexcept { return endpoint_; }
  const std::string& host() const noexcept { return endpoint_.host; }
  uint16_t port() const noexcept { return endpoint_.port; }

 private:
  enum class Attempt { kOk, kRetryOnFreshConnection, kFailed };
  Status OpenOnce(int* error_number);
  Attempt SendOnce(const HttpRequest& request, HttpResponse* response, std::string* error);
  // The request line and headers, with Host and Content-Length as the client sets them.
  std::string SerializeHead(const HttpRequest& request) const;
  // Reads one whole response (skipping 1xx ones); *close_after: the server will close.
  Attempt ReadResponse(const HttpRequest& request, HttpResponse* response, bool* close_after,
                       std::string* error);
  // Opens the connection unless it is open; *reused says it was.
  Status Open(bool* reused);
  // Closes the connection and names the request that failed.
  Status Failed(const HttpRequest& request, const std::string& error);
  // Reads more bytes into buffer_. Returns bytes read, 0 on EOF, -1 on error.
  long ReadMore(std::string* error);
  bool ReadHead(HttpResponse* response, bool* saw_any_byte, std::string* error);
  bool ReadBody(const HttpRequest& request, HttpResponse* response, bool* close_after,
                std::string* error);
  bool ReadChunked(std::string* body, std::string* error);

  Endpoint endpoint_;
  int fd_ = -1;
  int connections_opened_ = 0;
  std::string buffer_;        // bytes received but not yet consumed
  bool last_http10_ = false;  // the response being read said HTTP/1.0
  std::function<bool()> interrupt_check_;
  bool interrupted_ = false;  // the last read was aborted by a signal: do not resend
  bool abortable_ = false;    // the request in flight may be aborted by signals
  ReadWatch watch_;
  bool watch_failed_ = false;
};

}  // namespace ephemera::shim
