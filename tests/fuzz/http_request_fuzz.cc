// Fuzz target: the HTTP request parser (runtime/http/request_parser.h) and the
// router (runtime/http/router.h), as a connection uses them.
//
// Input: one control byte, then the bytes a client sends. The control byte picks
// the limits (defaults or tiny ones, a per-route body limit or none) and how the
// bytes arrive (in pieces of 1..64 bytes). The stream is parsed twice, in those
// pieces and all at once, the way Connection::ProcessPending does (a request at a
// time, the rest kept for the next); both must yield the same requests and
// both end in an error or neither, or the target aborts. Each request is routed through an
// in-process HttpExchange; its reply must serialize to a well-formed head.
// Thread: libFuzzer's. Depends on: http.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/log.h"
#include "runtime/http/http_server.h"
#include "runtime/http/request_parser.h"
#include "runtime/http/router.h"

namespace {

using ephemera::http::HttpExchange;
using ephemera::http::HttpRequest;
using ephemera::http::HttpResponse;
using ephemera::http::RequestParser;
using ephemera::http::Router;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

// What a parse produced, comparable between two ways of feeding it. Only
// whether it ended in an error is compared, not which: llhttp reports a header
// or body span before it has seen the byte that makes it invalid, so a request
// both malformed and over a limit is refused with 400 when it arrives at once
// and with 431 (or 413) when the limit is crossed by an earlier piece.
struct Outcome {
  std::vector<std::string> requests;  // a summary of each request
  int error_status = 0;
  std::string error_message;
  bool operator==(const Outcome& o) const {
    return requests == o.requests && (error_status != 0) == (o.error_status != 0);
  }
};

std::string Summary(const HttpRequest& r) {
  std::string s = r.method + " " + r.target + " path=" + r.path + " query=" + r.query +
                  " minor=" + std::to_string(r.http_minor) + (r.keep_alive ? " ka" : " close");
  for (const auto& [k, v] : r.headers.items()) s += "\n" + k + ": " + v;
  s += "\nbody=" + r.body;
  return s;
}

const Router& TheRouter() {
  static const Router* router = [] {
    auto* r = new Router;
    auto reply = [](int status) {
      return [status](const std::shared_ptr<HttpExchange>& ex, const Router::Params& params) {
        std::string body;
        for (const auto& p : params) body += p + "\n";
        ex->Reply(HttpResponse(status, body));
      };
    };
    r->Add("GET", "/2015-03-31/functions", reply(200));
    r->Add("POST", "/2015-03-31/functions", reply(201));
    r->Add("GET", "/2015-03-31/functions/{}", reply(200));
    r->Add("DELETE", "/2015-03-31/functions/{}", reply(204));
    r->Add("GET", "/2015-03-31/functions/{}/configuration", reply(200));
    r->Add("POST", "/2015-03-31/functions/{}/invocations", reply(200));
    r->Add("GET", "/2018-06-01/runtime/invocation/next", reply(200));
    r->Add("POST", "/2018-06-01/runtime/invocation/{}/response", reply(202));
    r->Add("POST", "/2018-06-01/runtime/invocation/{}/error", reply(202));
    r->Add("POST", "/2018-06-01/runtime/init/error", reply(202));
    r->Add("GET", "/{}/{}/{}", reply(200));
    r->Add("GET", "/", reply(200));
    return r;
  }();
  return *router;
}

void Route(HttpRequest request) {
  // Exercised on every request the parser hands out.
  (void)request.QueryParam("Qualifier");
  (void)request.QueryParam("");
  (void)request.headers.Get("Content-Type");
  bool head = request.method == "HEAD";
  HttpResponse reply;
  bool replied = false;
  auto ex = std::make_shared<HttpExchange>(std::move(request), [&](HttpResponse r) {
    replied = true;
    reply = std::move(r);
  });
  TheRouter().Dispatch(ex);
  Check(replied, "the router answers every request");
  Check(reply.status >= 100 && reply.status <= 599, "a status in 100..599");
  std::string wire = ephemera::http::SerializeResponseHead(reply, !head);
  Check(wire.size() >= 4 && wire.compare(wire.size() - 4, 4, "\r\n\r\n") == 0,
        "the head ends with a blank line");
  Check(wire.find("\r\n\r\n") == wire.size() - 4, "exactly one blank line in the head");
}

// Feeds `in` in pieces of `piece` bytes (0: all at once) the way a connection does.
Outcome Parse(std::string_view in, size_t piece, RequestParser::Limits limits,
              const RequestParser::BodyLimitFn& body_limit, bool route) {
  Outcome out;
  RequestParser parser(limits, body_limit);
  std::string pending;
  size_t fed = 0;
  while (fed < in.size()) {
    size_t n = piece == 0 ? in.size() - fed : std::min(piece, in.size() - fed);
    pending.append(in.data() + fed, n);
    fed += n;
    size_t offset = 0;
    while (offset < pending.size()) {
      size_t used = 0;
      auto result = parser.Feed(pending.data() + offset, pending.size() - offset, &used);
      Check(used <= pending.size() - offset, "consumed no more than it was given");
      offset += used;
      if (result == RequestParser::Result::kNeedMore) {
        Check(offset == pending.size(), "kNeedMore consumes everything");
        break;
      }
      if (result == RequestParser::Result::kError) {
        out.error_status = parser.error_status();
        out.error_message = parser.error_message();
        Check(out.error_status == 400 || out.error_status == 413 || out.error_status == 431 ||
                  out.error_status == 500,
              "errors are 400, 413, 431 or 500");
        return out;
      }
      Check(!parser.expects_continue(), "no 100-continue pending once a request is complete");
      HttpRequest request = parser.TakeRequest();
      out.requests.push_back(Summary(request));
      if (route) Route(std::move(request));
      if (out.requests.size() > 1000) return out;
    }
    pending.erase(0, offset);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ephemera::SetLogLevel(ephemera::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  RequestParser::Limits limits;
  if (control & 1) {
    limits.max_header_bytes = 200;
    limits.max_body_bytes = 50;
  }
  RequestParser::BodyLimitFn body_limit;
  if (control & 2) {
    // A per-route limit, as the Lambda API sets one for asynchronous invokes.
    body_limit = [](const HttpRequest& head) -> size_t {
      return head.path.find("invocations") != std::string::npos ? 100 : 20;
    };
  }
  const size_t piece = static_cast<size_t>(control >> 2) + 1;  // 1..64

  Outcome whole = Parse(in, 0, limits, body_limit, /*route=*/true);
  Outcome pieces = Parse(in, piece, limits, body_limit, /*route=*/false);
  if (!(whole == pieces)) {
    std::fprintf(stderr, "parsing in pieces of %zu differs from parsing at once\n", piece);
    std::fprintf(stderr, "at once: %zu requests, error %d %s\n", whole.requests.size(),
                 whole.error_status, whole.error_message.c_str());
    std::fprintf(stderr, "pieces:  %zu requests, error %d %s\n", pieces.requests.size(),
                 pieces.error_status, pieces.error_message.c_str());
    std::abort();
  }

  // The matcher alone, on a pattern and a path cut from the input.
  size_t cut = in.find('\n');
  if (cut != std::string_view::npos) {
    Router::Params params;
    std::string pattern(in.substr(0, cut)), path(in.substr(cut + 1));
    if (Router::Match(pattern, path, &params)) {
      // A "{...}" last segment takes the rest of the path, which may be empty
      // (runtime/http/router.h); every "{}" parameter is one segment, never empty.
      const bool rest =
          pattern == "{...}" ||
          (pattern.size() > 5 && pattern.compare(pattern.size() - 6, 6, "/{...}") == 0);
      for (size_t i = 0; i < params.size(); ++i) {
        if (rest && i + 1 == params.size()) {
          Check(path.size() >= params[i].size() &&
                    path.compare(path.size() - params[i].size(), params[i].size(), params[i]) == 0,
                "a {...} parameter is the end of the path");
        } else {
          Check(!params[i].empty(), "a {} parameter is never empty");
        }
      }
    }
  }
  return 0;
}
