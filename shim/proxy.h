// shim/proxy.h: a local HTTP proxy in front of the daemon's Runtime API.
//
// Programs in a network namespace that only has loopback cannot reach the daemon, so the
// shim listens inside it (EPHEMERA_PROXY_LISTEN, the program's AWS_LAMBDA_RUNTIME_API) and
// relays every request to the upstream: the daemon's unix socket (EPHEMERA_RUNTIME_SOCKET)
// or TCP listener. Runtime API calls (including the long-polling GET /next) and Lambda
// Invoke calls (/2015-03-31/functions/{name}/invocations) go through alike.
//
// Faithfulness: requests are forwarded byte for byte, except that "Expect: 100-continue"
// is answered by the proxy itself and removed (the proxy reads a whole request before
// forwarding it). Responses, interim 1xx ones included, come back byte for byte: status
// line, headers, body and its framing. Each client connection gets its own upstream
// keep-alive connection, opened on its first request, so concurrent clients (a runtime's
// /next plus the function's own Invoke call) never wait for each other. When the
// upstream closes a connection the client's connection is closed too, as if direct; when
// the client hangs up mid-request (a half-close counts) the upstream connection is dropped,
// so the daemon sees the abort. A request sent on a reused upstream connection that closes before
// any byte of the answer is resent once on a fresh connection (the same rule as http_client.h).
// Limits: heads 64 KiB, bodies 64 MiB (answered 431/413 by the proxy itself).
//
// Hooks (all optional, run on the connection's thread):
//   on_request   before forwarding; may answer locally instead (auto mode hands the
//                runtime the event it already fetched)
//   on_response  after the upstream's final answer, before it is relayed (deadlines)
//   on_upstream_gone  a connect failed with IsGoneError(), or a connection closed under a
//                request or while idle and a probe connect then failed. The shim exits
//                from it; a hook that returns leaves the client connection closed.
// Errors: Start() fails with a sentence naming the address. Per request, what the proxy
// cannot relay becomes its own answer (400, 413, 431, or 502 when the upstream cannot be
// reached or answers garbage), with Connection: close.
// Ownership: the proxy owns its listener and threads; destroying it stops them (Stop()).
// Thread: one thread per client connection (listener.h); hooks must be thread-safe.
// Depends on: shim/listener.h, shim/http_wire.h, shim/http_client.h.
#pragma once

#include <functional>
#include <string>

#include "shim/http_client.h"
#include "shim/http_wire.h"
#include "shim/listener.h"
#include "shim/status.h"

namespace ephemera::shim {

struct ProxyHooks {
  std::function<bool(const WireHead& request, std::string* local_response)> on_request;
  std::function<void(const WireHead& request, const WireHead& response)> on_response;
  std::function<void(const std::string& why)> on_upstream_gone;
};

class RuntimeApiProxy {
 public:
  RuntimeApiProxy(Endpoint upstream, ProxyHooks hooks)
      : upstream_(std::move(upstream)), hooks_(std::move(hooks)) {}
  ~RuntimeApiProxy() { Stop(); }
  RuntimeApiProxy(const RuntimeApiProxy&) = delete;
  RuntimeApiProxy& operator=(const RuntimeApiProxy&) = delete;

  // Listens on `address` (port 0: a free one) and starts serving.
  Status Start(const Endpoint& address);
  // Stops listening and ends every connection (see listener.h). The shim never calls it.
  void Stop() { listener_.Stop(); }

  // "127.0.0.1:<port>" as listened, the value for the program's AWS_LAMBDA_RUNTIME_API.
  const std::string& address() const noexcept { return address_; }
  uint16_t port() const noexcept { return listener_.port(); }
  const Endpoint& upstream() const noexcept { return upstream_; }

 private:
  struct Session;
  void ServeClient(int client_fd);
  bool ReadRequest(Session* s, WireHead* head, size_t* size);
  bool ReadFromClient(Session* s);
  void CheckIdleUpstream(Session* s);
  bool Forward(Session* s, const WireHead& request, const std::string& raw);
  void UpstreamLost(const std::string& what);

  Endpoint upstream_;
  ProxyHooks hooks_;
  TcpListener listener_;
  std::string address_;
};

}  // namespace ephemera::shim
