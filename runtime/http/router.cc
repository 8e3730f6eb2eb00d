#include "runtime/http/router.h"

#include <string_view>

namespace ephemera::http {

void Router::Add(std::string method, std::string pattern, RouteHandler handler) {
  routes_.push_back({std::move(method), std::move(pattern), std::move(handler)});
}

bool Router::Match(const std::string& pattern, const std::string& path, Params* params) {
  params->clear();
  std::string_view pat = pattern, p = path;
  while (true) {
    size_t ps = pat.find('/'), xs = p.find('/');
    std::string_view pseg = pat.substr(0, ps), xseg = p.substr(0, xs);
    if (pseg == "{...}" && ps == std::string_view::npos) {
      params->emplace_back(p);  // the rest of the path, as it is
      return true;
    }
    if (pseg == "{}") {
      if (xseg.empty()) return false;
      params->emplace_back(xseg);
    } else if (pseg != xseg) {
      return false;
    }
    if (ps == std::string_view::npos || xs == std::string_view::npos) {
      return ps == std::string_view::npos && xs == std::string_view::npos;
    }
    pat = pat.substr(ps + 1);
    p = p.substr(xs + 1);
  }
}

void Router::Dispatch(const std::shared_ptr<HttpExchange>& exchange) const {
  const HttpRequest& req = exchange->request();
  std::string allowed;  // methods of routes whose pattern matched, for 405's Allow
  Params params;
  for (const auto& route : routes_) {
    if (!Match(route.pattern, req.path, &params)) continue;
    // HEAD is served by the GET route (the server sends the head only).
    bool method_ok = route.method == req.method || (req.method == "HEAD" && route.method == "GET");
    if (!method_ok) {
      if (!allowed.empty()) allowed += ", ";
      allowed += route.method;
      continue;
    }
    route.handler(exchange, params);
    return;
  }
  int status = allowed.empty() ? 404 : 405;
  if (fallback_) {
    fallback_(exchange, status);
    return;
  }
  HttpResponse response(status, std::string(ReasonPhrase(status)) + "\n");
  if (status == 405) response.headers.Set("Allow", std::move(allowed));
  exchange->Reply(std::move(response));
}

}  // namespace ephemera::http
