#include "runtime/http/request_parser.h"

#include <cstdio>
#include <exception>

namespace ephemera::http {
namespace {

RequestParser* Self(llhttp_t* p) {
  return static_cast<RequestParser*>(p->data);
}

}  // namespace

RequestParser::RequestParser(Limits limits, BodyLimitFn body_limit)
    : limits_(limits), body_limit_fn_(std::move(body_limit)) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &RequestParser::OnMessageBegin;
  settings_.on_url = &RequestParser::OnUrl;
  settings_.on_header_field = &RequestParser::OnHeaderField;
  settings_.on_header_value = &RequestParser::OnHeaderValue;
  settings_.on_header_value_complete = &RequestParser::OnHeaderValueComplete;
  settings_.on_headers_complete = &RequestParser::OnHeadersComplete;
  settings_.on_body = &RequestParser::OnBody;
  settings_.on_message_complete = &RequestParser::OnMessageComplete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

RequestParser::Result RequestParser::Feed(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (error_status_ != 0) return Result::kError;
  if (len == 0) return Result::kNeedMore;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (err == HPE_OK) {
    *consumed = len;
    return Result::kNeedMore;
  }
  if (err == HPE_PAUSED && complete_) {
    // Paused at the end of one message: the rest belongs to the next request.
    *consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    return Result::kRequest;
  }
  if (error_status_ == 0) {
    const char* reason = llhttp_get_error_reason(&parser_);
    Fail(400,
         std::string("malformed HTTP request: ") + (reason != nullptr ? reason : "parse error"));
  }
  return Result::kError;
}

HttpRequest RequestParser::TakeRequest() {
  HttpRequest out = std::move(request_);
  request_ = HttpRequest{};
  complete_ = false;
  started_ = false;
  headers_done_ = false;
  expect_continue_ = false;
  header_bytes_ = 0;
  llhttp_resume(&parser_);
  return out;
}

int RequestParser::Fail(int status, std::string message) {
  error_status_ = status;
  error_message_ = std::move(message);
  expect_continue_ = false;
  return HPE_USER;
}

bool RequestParser::CountHeaderBytes(size_t len) {
  header_bytes_ += len;
  return header_bytes_ <= limits_.max_header_bytes;
}

// llhttp is C: nothing may be thrown through it (a std::bad_alloc while
// appending, or whatever the BodyLimitFn throws). Each callback body runs here.
template <typename Fn>
int RequestParser::Guard(llhttp_t* p, Fn&& fn) noexcept {
  RequestParser* self = Self(p);
  try {
    return fn(self);
  } catch (const std::exception& e) {
    return self->Fail(500, std::string("request parsing failed: ") + e.what());
  } catch (...) {
    return self->Fail(500, "request parsing failed");
  }
}

int RequestParser::OnMessageBegin(llhttp_t* p) {
  return Guard(p, [](RequestParser* self) {
    self->request_ = HttpRequest{};
    self->field_.clear();
    self->value_.clear();
    self->header_bytes_ = 0;
    self->started_ = true;
    self->headers_done_ = false;
    self->expect_continue_ = false;
    return 0;
  });
}

int RequestParser::OnUrl(llhttp_t* p, const char* at, size_t len) {
  return Guard(p, [&](RequestParser* self) {
    if (!self->CountHeaderBytes(len))
      return self->Fail(431, "request line and headers exceed the size limit");
    self->request_.target.append(at, len);
    return 0;
  });
}

// A header arrives as field bytes, value bytes (both possibly in several
// pieces) and then "value complete", which llhttp reports even for an empty
// value; that is where the pair is stored. The limit counts names, values and
// their separators (not the method and version). Trailers (after a chunked body)
// count against the header limit but are not kept.
int RequestParser::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  return Guard(p, [&](RequestParser* self) {
    if (!self->CountHeaderBytes(len))
      return self->Fail(431, "request headers exceed the size limit");
    if (!self->headers_done_) self->field_.append(at, len);
    return 0;
  });
}

int RequestParser::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  return Guard(p, [&](RequestParser* self) {
    if (!self->CountHeaderBytes(len))
      return self->Fail(431, "request headers exceed the size limit");
    if (!self->headers_done_) self->value_.append(at, len);
    return 0;
  });
}

int RequestParser::OnHeaderValueComplete(llhttp_t* p) {
  return Guard(p, [](RequestParser* self) {
    // ": " and CRLF, so that many tiny headers count for what they weigh.
    if (!self->CountHeaderBytes(4)) return self->Fail(431, "request headers exceed the size limit");
    if (!self->headers_done_) {
      self->request_.headers.Add(std::move(self->field_), std::move(self->value_));
    }
    self->field_.clear();
    self->value_.clear();
    return 0;
  });
}

int RequestParser::OnHeadersComplete(llhttp_t* p) {
  return Guard(p, [p](RequestParser* self) {
    HttpRequest& req = self->request_;
    req.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
    req.http_minor = p->http_minor;
    req.keep_alive = llhttp_should_keep_alive(p) != 0;
    // We speak HTTP/1.1 only. An "Upgrade: h2c" (curl --http2 on http://) is
    // answered as a plain request; without this llhttp would treat whatever
    // follows on the connection as another protocol and fail the next request.
    p->upgrade = 0;
    size_t q = req.target.find('?');
    std::string raw_path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    auto decoded = PercentDecode(raw_path);
    if (!decoded) return self->Fail(400, "malformed percent-encoding in the request path");
    req.path = std::move(*decoded);
    self->headers_done_ = true;

    self->body_limit_ =
        self->body_limit_fn_ ? self->body_limit_fn_(req) : self->limits_.max_body_bytes;
    // A declared length over the limit is refused before a byte of the body is read.
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > self->body_limit_) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "request body of %llu bytes exceeds the limit of %zu bytes",
                    static_cast<unsigned long long>(p->content_length), self->body_limit_);
      return self->Fail(413, msg);
    }
    bool has_body = (p->flags & F_CHUNKED) != 0 || p->content_length > 0;
    if (has_body && p->http_major == 1 && p->http_minor >= 1) {
      auto expect = req.headers.Get("Expect");
      self->expect_continue_ = expect && EqualsIgnoreCase(*expect, "100-continue");
    }
    if ((p->flags & F_CONTENT_LENGTH) != 0) req.body.reserve(p->content_length);
    return 0;
  });
}

int RequestParser::OnBody(llhttp_t* p, const char* at, size_t len) {
  return Guard(p, [&](RequestParser* self) {
    self->expect_continue_ = false;  // the client did not wait
    if (self->request_.body.size() + len > self->body_limit_) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes",
                    self->body_limit_);
      return self->Fail(413, msg);
    }
    self->request_.body.append(at, len);
    return 0;
  });
}

int RequestParser::OnMessageComplete(llhttp_t* p) {
  RequestParser* self = Self(p);
  self->complete_ = true;
  self->expect_continue_ = false;
  return HPE_PAUSED;
}

}  // namespace ephemera::http
