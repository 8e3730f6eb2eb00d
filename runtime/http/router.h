// runtime/http/router.h: a first-match route table, h2o style.
//
// Patterns are '/'-separated segments; "{}" matches exactly one non-empty
// segment and is handed to the handler as a parameter, in order. "{...}", only as
// the last segment of a pattern, matches the rest of the path, slashes included
// and possibly empty ("/a/{...}" matches "/a/", "/a/b" and "/a/b/c", not "/a"),
// and is handed over as one parameter. The first route
// whose method and pattern match wins. A path that matches some route but not
// with this method gives 405; nothing matching gives the fallback (404). A
// HEAD request is served by the first GET (or HEAD) route that matches; the
// server then sends the head of its reply only. Matching is on the decoded
// path, so "%2F" inside a segment splits it.
// Thread: the loop thread. Depends on: http_server.h.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/http/http_server.h"

namespace ephemera::http {

class Router {
 public:
  using Params = std::vector<std::string>;
  using RouteHandler = std::function<void(const std::shared_ptr<HttpExchange>&, const Params&)>;
  using Fallback = std::function<void(const std::shared_ptr<HttpExchange>&, int status)>;

  void Add(std::string method, std::string pattern, RouteHandler handler);
  // Called with 404 (no route) or 405 (wrong method). Without a fallback the
  // router replies itself, with an Allow header on 405.
  void SetFallback(Fallback fallback) { fallback_ = std::move(fallback); }

  void Dispatch(const std::shared_ptr<HttpExchange>& exchange) const;

  // Matches `path` against `pattern`, filling `params`. Exposed for tests.
  static bool Match(const std::string& pattern, const std::string& path, Params* params);

 private:
  struct Route {
    std::string method;
    std::string pattern;
    RouteHandler handler;
  };
  std::vector<Route> routes_;
  Fallback fallback_;
};

}  // namespace ephemera::http
