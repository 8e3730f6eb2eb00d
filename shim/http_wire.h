// shim/http_wire.h: where an HTTP/1.1 message ends in a byte stream, without changing it.
//
// The proxy (proxy.h) relays requests and responses byte for byte, so unlike the client in
// http_client.h it never re-frames a body: it only needs to know where each message ends.
// ParseHead() reads the start line and headers at the front of a buffer; RequestFraming()
// and ResponseFraming() say how the body is delimited (RFC 9112 section 6.3: no body,
// Content-Length, chunked, or until the connection closes); ChunkedScanner finds the end
// of a chunked body incrementally as bytes arrive. Limits: a head is at most 64 KiB.
// Errors: kMalformed with a short sentence in *error; nothing is thrown.
// Ownership: callers own the buffers; nothing here keeps a pointer into them.
// Thread: any; no shared state. Depends on: shim/http_client.h (HttpHeaders).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "shim/http_client.h"

namespace ephemera::shim {

inline constexpr size_t kMaxWireHeadBytes = 64 * 1024;

enum class WireParse { kIncomplete, kDone, kMalformed };

struct WireHead {
  std::string method;  // requests
  std::string target;  // requests
  int status = 0;      // responses
  bool http10 = false;
  HttpHeaders headers;  // names as sent, values trimmed
  size_t size = 0;      // bytes of the head, including the blank line

  const std::string* Header(std::string_view name) const noexcept;
  // True if a comma-separated header `name` contains `token` (case-insensitive).
  bool HeaderHasToken(std::string_view name, std::string_view token) const;
};

// Parses the head at the start of `buffer` (a request unless `response`). kIncomplete
// until the blank line has arrived; kMalformed (with *error) for a bad start line or a
// head over kMaxWireHeadBytes.
WireParse ParseWireHead(std::string_view buffer, bool response, WireHead* head, std::string* error);

struct BodyFraming {
  enum class Kind { kNone, kLength, kChunked, kUntilClose };
  Kind kind = Kind::kNone;
  unsigned long long length = 0;  // kLength
};

// A request has a chunked body, a Content-Length body, or none. False if Content-Length
// is malformed.
bool RequestFraming(const WireHead& head, BodyFraming* framing);
// A response to `request_method`: none for HEAD, 1xx, 204 and 304; else chunked,
// Content-Length, or until close. False if Content-Length is malformed.
bool ResponseFraming(const WireHead& head, std::string_view request_method, BodyFraming* framing);

// True if the connection cannot carry another message after this one: HTTP/1.0 without
// keep-alive, or "Connection: close".
bool ConnectionCloses(const WireHead& head);

// Finds the end of a chunked body (last chunk and trailers) in a growing buffer. Feed it
// the same buffer, longer each time; it remembers how far it got.
class ChunkedScanner {
 public:
  // `start`: where the body begins in the buffer. On kDone, *end is one past the body.
  explicit ChunkedScanner(size_t start) : pos_(start) {}
  WireParse Scan(std::string_view buffer, size_t* end, std::string* error);

 private:
  enum class State { kSizeLine, kData, kTrailers };
  State state_ = State::kSizeLine;
  size_t pos_;            // the next byte to look at
  size_t data_left_ = 0;  // kData: chunk bytes plus its CRLF still to skip
};

}  // namespace ephemera::shim
