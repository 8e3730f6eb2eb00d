// runtime/http/request_parser.h: HTTP/1.1 request parsing on llhttp, one request
// at a time.
//
// Feed() consumes bytes up to the end of at most one request and stops there, so
// a connection can hold pipelined requests back until the current one has been
// answered (responses must go out in request order). Limits are enforced while
// bytes arrive: a header block over max_header_bytes is refused with 431 and a
// body over the limit with 413 as soon as Content-Length announces it, or as
// soon as chunked data crosses it, never after buffering the whole body. An
// "Upgrade" request is parsed as a plain HTTP/1.1 request (we never switch
// protocols). Nothing is thrown through llhttp: an exception while parsing
// (std::bad_alloc, or from the BodyLimitFn) refuses the request with 500.
// Thread: whichever owns it. Depends on: llhttp.
#pragma once

#include <llhttp.h>

#include <functional>
#include <string>

#include "runtime/http/http_message.h"

namespace ephemera::http {

class RequestParser {
 public:
  struct Limits {
    // Counts the target, header names and values and 4 bytes per header for
    // ": " and CRLF (not the method and version).
    size_t max_header_bytes = 64 * 1024;
    size_t max_body_bytes = 6 * 1024 * 1024;
  };
  // Called once the head of a request is parsed (method, target, headers; no
  // body yet). Returns the body limit for this request, so a route can allow
  // more or less than the default (e.g. 1 MB for asynchronous invokes).
  using BodyLimitFn = std::function<size_t(const HttpRequest& head)>;

  enum class Result {
    kNeedMore,  // every byte was consumed; the request is not complete yet
    kRequest,   // a whole request is ready for TakeRequest(); bytes after it were not consumed
    kError,     // malformed or over a limit: see error_status() / error_message()
  };

  RequestParser(Limits limits, BodyLimitFn body_limit);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses from `data`; sets *consumed to the bytes used. After kRequest call
  // TakeRequest() before feeding more. After kError the parser is dead.
  Result Feed(const char* data, size_t len, size_t* consumed);

  // Moves the completed request out and readies the parser for the next one.
  HttpRequest TakeRequest();

  // The head of the request being parsed (valid once headers are complete), so
  // an error response can still be shaped by what was asked.
  const HttpRequest& partial() const { return request_; }
  // True from the first byte of a request (not counting the blank lines llhttp
  // skips between requests) until TakeRequest().
  bool message_started() const { return started_; }
  bool headers_complete() const { return headers_done_; }
  // True once the head of an HTTP/1.1 request with "Expect: 100-continue" has
  // been accepted (within limits) and its body has not been read yet: the
  // server should send "100 Continue" so the client stops waiting for it.
  bool expects_continue() const { return expect_continue_; }

  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }

 private:
  static int OnMessageBegin(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValueComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t len);
  static int OnMessageComplete(llhttp_t* p);

  template <typename Fn>
  static int Guard(llhttp_t* p, Fn&& fn) noexcept;
  int Fail(int status, std::string message);
  bool CountHeaderBytes(size_t len);

  Limits limits_;
  BodyLimitFn body_limit_fn_;
  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  HttpRequest request_;
  std::string field_;
  std::string value_;
  size_t header_bytes_ = 0;
  size_t body_limit_ = 0;
  bool started_ = false;
  bool headers_done_ = false;
  bool expect_continue_ = false;
  bool complete_ = false;
  int error_status_ = 0;
  std::string error_message_;
};

}  // namespace ephemera::http
