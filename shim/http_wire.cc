// shim/http_wire.cc: see http_wire.h.
#include "shim/http_wire.h"

#include <cstdlib>

namespace ephemera::shim {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Parses a Content-Length value: digits only (a list of equal values is not accepted).
bool ParseLength(const std::string& value, unsigned long long* length) {
  if (value.empty()) return false;
  unsigned long long n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    if (n > (~0ULL) / 10 - 10) return false;
    n = n * 10 + static_cast<unsigned long long>(c - '0');
  }
  *length = n;
  return true;
}

// Framing shared by requests and responses once "no body" cases are ruled out.
bool LengthOrChunked(const WireHead& head, BodyFraming* framing, bool* found) {
  *found = true;
  if (head.HeaderHasToken("Transfer-Encoding", "chunked")) {
    framing->kind = BodyFraming::Kind::kChunked;
    return true;
  }
  if (const std::string* cl = head.Header("Content-Length")) {
    framing->kind = BodyFraming::Kind::kLength;
    return ParseLength(*cl, &framing->length);
  }
  *found = false;
  return true;
}

}  // namespace

const std::string* WireHead::Header(std::string_view name) const noexcept {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

bool WireHead::HeaderHasToken(std::string_view name, std::string_view token) const {
  for (const auto& [key, value] : headers) {
    if (!EqualsIgnoreCase(key, name)) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      if (EqualsIgnoreCase(Trim(rest.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

WireParse ParseWireHead(std::string_view buffer, bool response, WireHead* head,
                        std::string* error) {
  // Tolerate empty lines before a request (RFC 9112 section 2.2).
  size_t start = 0;
  if (!response) {
    while (buffer.substr(start, 2) == "\r\n") start += 2;
  }
  size_t end = buffer.find("\r\n\r\n", start);
  if (end == std::string_view::npos) {
    if (buffer.size() > kMaxWireHeadBytes) {
      *error = "message head larger than 64 KiB";
      return WireParse::kMalformed;
    }
    return WireParse::kIncomplete;
  }
  if (end + 4 > kMaxWireHeadBytes) {
    *error = "message head larger than 64 KiB";
    return WireParse::kMalformed;
  }
  *head = WireHead();
  head->size = end + 4;
  std::string_view text = buffer.substr(start, end - start);
  size_t line_end = text.find("\r\n");
  std::string_view first = text.substr(0, line_end);
  if (response) {
    // "HTTP/1.1 200 OK"
    if (first.size() < 12 || first.substr(0, 5) != "HTTP/" || first[8] != ' ') {
      *error = "malformed status line";
      return WireParse::kMalformed;
    }
    for (size_t i = 9; i < 12; ++i) {
      if (first[i] < '0' || first[i] > '9') {
        *error = "malformed status code";
        return WireParse::kMalformed;
      }
      head->status = head->status * 10 + (first[i] - '0');
    }
    head->http10 = first.substr(0, 8) == "HTTP/1.0";
  } else {
    // "GET /path HTTP/1.1"
    size_t sp1 = first.find(' ');
    size_t sp2 = first.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1 || first.substr(sp2 + 1, 5) != "HTTP/") {
      *error = "malformed request line";
      return WireParse::kMalformed;
    }
    head->method.assign(first.substr(0, sp1));
    head->target.assign(first.substr(sp1 + 1, sp2 - sp1 - 1));
    head->http10 = first.substr(sp2 + 1) == "HTTP/1.0";
  }
  size_t pos = line_end == std::string_view::npos ? text.size() : line_end + 2;
  while (pos < text.size()) {
    size_t eol = text.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      head->headers.emplace_back(std::string(Trim(line.substr(0, colon))),
                                 std::string(Trim(line.substr(colon + 1))));
    }
    pos = eol + 2;
  }
  head->size = end + 4;
  return WireParse::kDone;
}

bool RequestFraming(const WireHead& head, BodyFraming* framing) {
  *framing = BodyFraming();
  bool found = false;
  return LengthOrChunked(head, framing, &found);  // neither: no body
}

bool ResponseFraming(const WireHead& head, std::string_view request_method, BodyFraming* framing) {
  *framing = BodyFraming();
  if (request_method == "HEAD" || (head.status >= 100 && head.status < 200) || head.status == 204 ||
      head.status == 304) {
    return true;
  }
  bool found = false;
  if (!LengthOrChunked(head, framing, &found)) return false;
  if (!found) framing->kind = BodyFraming::Kind::kUntilClose;
  return true;
}

bool ConnectionCloses(const WireHead& head) {
  if (head.HeaderHasToken("Connection", "close")) return true;
  return head.http10 && !head.HeaderHasToken("Connection", "keep-alive");
}

WireParse ChunkedScanner::Scan(std::string_view buffer, size_t* end, std::string* error) {
  while (true) {
    switch (state_) {
      case State::kSizeLine: {
        size_t eol = buffer.find("\r\n", pos_);
        if (eol == std::string_view::npos) {
          if (buffer.size() - pos_ > 4096) {
            *error = "chunk size line too long";
            return WireParse::kMalformed;
          }
          return WireParse::kIncomplete;
        }
        unsigned long long size = 0;
        size_t digits = 0;
        for (size_t i = pos_; i < eol; ++i) {
          char c = buffer[i];
          int v;
          if (c >= '0' && c <= '9') {
            v = c - '0';
          } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;
          } else if (c >= 'A' && c <= 'F') {
            v = c - 'A' + 10;
          } else {
            break;  // chunk extensions (";...") and whitespace
          }
          if (size > (~0ULL >> 8)) {
            *error = "chunk size overflow";
            return WireParse::kMalformed;
          }
          size = size * 16 + static_cast<unsigned long long>(v);
          ++digits;
        }
        if (digits == 0) {
          *error = "malformed chunk size";
          return WireParse::kMalformed;
        }
        pos_ = eol + 2;
        if (size == 0) {
          state_ = State::kTrailers;
        } else {
          data_left_ = static_cast<size_t>(size) + 2;
          state_ = State::kData;
        }
        break;
      }
      case State::kData: {
        size_t available = buffer.size() - pos_;
        if (available < data_left_) {
          pos_ += available;
          data_left_ -= available;
          return WireParse::kIncomplete;
        }
        pos_ += data_left_;
        data_left_ = 0;
        state_ = State::kSizeLine;
        break;
      }
      case State::kTrailers: {
        size_t eol = buffer.find("\r\n", pos_);
        if (eol == std::string_view::npos) return WireParse::kIncomplete;
        bool blank = eol == pos_;
        pos_ = eol + 2;
        if (blank) {
          *end = pos_;
          return WireParse::kDone;
        }
        break;
      }
    }
  }
}

}  // namespace ephemera::shim
