// shim/http_client.h: a tiny blocking HTTP/1.1 client over one keep-alive TCP connection.
//
// Used by the shim for the Lambda Runtime API (long-polling GET /next, POST results) and,
// in http mode, to forward events to the wrapped web service. Blocking sockets are fine
// here: the shim does one thing at a time.
//
// - IPv4 literal hosts only ("127.0.0.1", or "localhost"): no resolver, so the static
//   binary needs no NSS.
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
  HttpClient(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}
  ~HttpClient() { Close(); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Parses "host:port" (as in AWS_LAMBDA_RUNTIME_API). False if malformed.
  static bool ParseHostPort(std::string_view spec, std::string* host, uint16_t* port);

  // Opens the connection now, retrying a refused connection every `retry_interval_ms`
  // for up to `retry_for_ms`. Send() connects on demand without retrying.
  Status Connect(int retry_for_ms = 0, int retry_interval_ms = 1);

  // Sends one request and reads the whole response. See the file comment for `abortable`.
  Status Send(const HttpRequest& request, HttpResponse* response, bool abortable = false);

  void Close() noexcept;
  // Called when a blocking read is interrupted by a signal; true aborts the request.
  void set_interrupt_check(std::function<bool()> check) { interrupt_check_ = std::move(check); }
  bool connected() const noexcept { return fd_ >= 0; }
  // Number of TCP connections opened so far (tests check keep-alive reuse with it).
  int connections_opened() const noexcept { return connections_opened_; }
  const std::string& host() const noexcept { return host_; }
  uint16_t port() const noexcept { return port_; }

 private:
  enum class Attempt { kOk, kRetryOnFreshConnection, kFailed };
  Status OpenOnce(int* error_number);
  Attempt SendOnce(const HttpRequest& request, HttpResponse* response, std::string* error);
  // Reads more bytes into buffer_. Returns bytes read, 0 on EOF, -1 on error.
  long ReadMore(std::string* error);
  bool ReadHead(HttpResponse* response, bool* saw_any_byte, std::string* error);
  bool ReadBody(const HttpRequest& request, HttpResponse* response, bool* close_after,
                std::string* error);
  bool ReadChunked(std::string* body, std::string* error);

  std::string host_;
  uint16_t port_;
  int fd_ = -1;
  int connections_opened_ = 0;
  std::string buffer_;        // bytes received but not yet consumed
  bool last_http10_ = false;  // the response being read said HTTP/1.0
  std::function<bool()> interrupt_check_;
  bool interrupted_ = false;  // the last read was aborted by a signal: do not resend
  bool abortable_ = false;    // the request in flight may be aborted by signals
};

}  // namespace ephemera::shim
