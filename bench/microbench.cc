// ephemera-microbench: the daemon's own cost without Docker, on one core (Google Benchmark).
//
//   BM_HttpParseRoute         an aws-cli Invoke request parsed (RequestParser) and routed
//                             (Router) to a handler that replies; no sockets.
//   BM_HttpServerLoopback     the whole HTTP layer: HttpServer on 127.0.0.1 and a keep-alive
//                             client on the same libuv loop, one request after another. This
//                             items/s is per CPU-second of that one thread (client included).
//   BM_HttpServerOneCore      the HTTP layer alone: the server's loop on this thread, the load
//                             from another thread, timed by the server thread's CPU time. This
//                             is the "HTTP layer > 50k requests/s on one core" target.
//   BM_InvokeRoundTrip        Invoke -> Runtime API -> response through the loop: a client
//                             POSTs an invoke to a front HttpServer, which Delivers the event
//                             to a RuntimeApiServer; an in-process runtime client (same loop)
//                             takes it with GET /next and POSTs /response; the front replies.
//                             Three HTTP exchanges per item, everything on one thread.
//   BM_JsonParseEvent         an API Gateway-style event (about 1 KB) parsed with cJSON and
//                             three fields read.
//   BM_JsonFunctionConfiguration  the Lambda FunctionConfiguration of a spec built and printed.
// Every benchmark runs on the calling thread only, so items/s is per core.
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "registry/registry.h"
#include "runtime/http/http_server.h"
#include "runtime/http/request_parser.h"
#include "runtime/http/router.h"
#include "runtime/json/json.h"
#include "runtime/runtime_api/runtime_api_server.h"

namespace {

using ephemera::http::HttpExchange;
using ephemera::http::HttpRequest;
using ephemera::http::HttpResponse;
using ephemera::http::HttpServer;
using ephemera::http::RequestParser;
using ephemera::http::Router;

// What aws-cli sends for `aws lambda invoke` (docs/protocols.md section 2), with a small payload.
const std::string kInvokeRequest =
    "POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\n"
    "Host: 127.0.0.1:9000\r\n"
    "Accept-Encoding: identity\r\n"
    "User-Agent: aws-cli/1.45.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.1 md/arch#x86_64 "
    "lang/python#3.11.2 md/pyimpl#CPython cfg/retry-mode#legacy botocore/1.43.11\r\n"
    "X-Amz-Date: 20261123T050410Z\r\n"
    "Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261123/us-east-1/lambda/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef"
    "0123456789abcdef\r\n"
    "amz-sdk-invocation-id: 8476a536-e9f4-41e8-9739-2dfe598c3fcd\r\n"
    "amz-sdk-request: attempt=1\r\n"
    "Content-Length: 17\r\n"
    "\r\n"
    "{\"hello\":\"bench\"}";

void AddRoutes(Router& router) {
  // A table shaped like the daemon's (lambda_api.h), so the match walks realistic routes.
  auto reply = [](const std::shared_ptr<HttpExchange>& ex, const Router::Params&) {
    HttpResponse r(200, "{\"ok\":true}", "application/json");
    r.headers.Set("x-amzn-RequestId", "8476a536-e9f4-41e8-9739-2dfe598c3fcd");
    ex->Reply(std::move(r));
  };
  router.Add("POST", "/2015-03-31/functions/{}/invocations", reply);
  router.Add("POST", "/function/{}", reply);
  router.Add("POST", "/2015-03-31/functions", reply);
  router.Add("GET", "/2015-03-31/functions", reply);
  router.Add("GET", "/2015-03-31/functions/{}", reply);
  router.Add("GET", "/2015-03-31/functions/{}/configuration", reply);
  router.Add("DELETE", "/2015-03-31/functions/{}", reply);
  router.Add("GET", "/healthz", reply);
  router.Add("GET", "/metrics", reply);
}

void BM_HttpParseRoute(benchmark::State& state) {
  Router router;
  AddRoutes(router);
  RequestParser parser(RequestParser::Limits{}, nullptr);
  size_t replied = 0;
  for (auto _ : state) {
    size_t consumed = 0;
    if (parser.Feed(kInvokeRequest.data(), kInvokeRequest.size(), &consumed) !=
        RequestParser::Result::kRequest) {
      state.SkipWithError("parser did not produce a request");
      break;
    }
    auto ex = std::make_shared<HttpExchange>(parser.TakeRequest(), [&](HttpResponse r) {
      std::string head = ephemera::http::SerializeResponseHead(r, true);
      replied += head.size() + r.body.size();
    });
    router.Dispatch(ex);
  }
  benchmark::DoNotOptimize(replied);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("request parsed + routed + response head serialized");
}
BENCHMARK(BM_HttpParseRoute);

// ---- A minimal keep-alive HTTP client on the same loop (responses carry Content-Length) ----

struct Response {
  int status = 0;
  std::string head;
  std::string body;
  std::string Header(const char* name) const {
    size_t n = std::strlen(name);
    size_t pos = 0;
    while ((pos = head.find("\r\n", pos)) != std::string::npos) {
      pos += 2;
      if (head.size() >= pos + n + 1 && strncasecmp(head.data() + pos, name, n) == 0 &&
          head[pos + n] == ':') {
        size_t b = head.find_first_not_of(' ', pos + n + 1);
        size_t e = head.find("\r\n", b);
        return head.substr(b, e - b);
      }
    }
    return "";
  }
};

class LoopClient {
 public:
  LoopClient(uv_loop_t* loop, int port) {
    uv_tcp_init(loop, &tcp_);
    tcp_.data = this;
    uv_tcp_nodelay(&tcp_, 1);
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", port, &addr);
    connect_.data = this;
    uv_tcp_connect(&connect_, &tcp_, reinterpret_cast<sockaddr*>(&addr),
                   [](uv_connect_t* c, int status) {
                     auto* self = static_cast<LoopClient*>(c->data);
                     self->connected_ = status == 0 ? 1 : -1;
                     if (status == 0) {
                       uv_read_start(
                           reinterpret_cast<uv_stream_t*>(&self->tcp_),
                           [](uv_handle_t* h, size_t, uv_buf_t* b) {
                             auto* s = static_cast<LoopClient*>(h->data);
                             b->base = s->read_buf_;
                             b->len = sizeof s->read_buf_;
                           },
                           [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
                             auto* self = static_cast<LoopClient*>(s->data);
                             if (n < 0) {
                               self->broken_ = true;
                               return;
                             }
                             self->in_.append(b->base, static_cast<size_t>(n));
                             self->TryParse();
                           });
                     }
                   });
    while (connected_ == 0) uv_run(loop, UV_RUN_ONCE);
  }
  // Closes the socket; the memory is freed in the close callback.
  static void Destroy(LoopClient* c) {
    c->tcp_.data = c;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp_),
             [](uv_handle_t* h) { delete static_cast<LoopClient*>(h->data); });
  }
  bool ok() const { return connected_ == 1 && !broken_; }

  void Send(std::string bytes, std::function<void(Response)> on_response) {
    out_ = std::move(bytes);
    on_response_ = std::move(on_response);
    uv_buf_t buf = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
    write_.data = this;
    uv_write(&write_, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
             [](uv_write_t* w, int status) {
               if (status < 0) static_cast<LoopClient*>(w->data)->broken_ = true;
             });
  }

 private:
  void TryParse() {
    size_t end = in_.find("\r\n\r\n");
    if (end == std::string::npos) return;
    Response r;
    r.head = in_.substr(0, end + 2);
    r.status = std::atoi(r.head.c_str() + 9);
    size_t len = static_cast<size_t>(std::atol(r.Header("Content-Length").c_str()));
    if (in_.size() < end + 4 + len) return;
    r.body = in_.substr(end + 4, len);
    in_.erase(0, end + 4 + len);
    auto cb = std::move(on_response_);
    on_response_ = nullptr;
    if (cb) cb(std::move(r));
  }

  uv_tcp_t tcp_{};
  uv_connect_t connect_{};
  uv_write_t write_{};
  int connected_ = 0;
  bool broken_ = false;
  char read_buf_[64 * 1024];
  std::string in_, out_;
  std::function<void(Response)> on_response_;
};

// Runs the loop until every handle is closed, then closes it.
void CloseLoop(uv_loop_t* loop, benchmark::State& state) {
  uv_run(loop, UV_RUN_DEFAULT);
  if (uv_loop_close(loop) != 0) state.SkipWithError("loop did not close");
}

void BM_HttpServerLoopback(benchmark::State& state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Router router;
    AddRoutes(router);
    HttpServer server(&loop, [&](std::shared_ptr<HttpExchange> ex) { router.Dispatch(ex); }, {});
    if (!server.Listen("127.0.0.1", 0).ok()) {
      state.SkipWithError("listen failed");
      return;
    }
    auto* client = new LoopClient(&loop, server.port());
    for (auto _ : state) {
      bool done = false;
      client->Send(kInvokeRequest, [&](Response r) {
        done = true;
        benchmark::DoNotOptimize(r.status);
      });
      while (!done && client->ok()) uv_run(&loop, UV_RUN_ONCE);
      if (!client->ok()) {
        state.SkipWithError("connection broke");
        break;
      }
    }
    LoopClient::Destroy(client);
    server.Close();
  }
  CloseLoop(&loop, state);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(
      "keep-alive request -> response over loopback; client and server share one thread's CPU");
}
BENCHMARK(BM_HttpServerLoopback);

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// A blocking client on its own thread: `connections` keep-alive sockets, each sending the
// next request as soon as its response is complete, until told to stop.
class ThreadClient {
 public:
  ThreadClient(int port, int connections) {
    for (int i = 0; i < connections; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(port));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      fds_.push_back(fd);
      pending_.push_back(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a));
    }
  }
  ~ThreadClient() {
    Stop();
    for (int fd : fds_) ::close(fd);
  }
  bool connected() const {
    for (int rc : pending_) {
      if (rc != 0) return false;
    }
    return true;
  }
  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() {
    stop_ = true;
    // The thread may be blocked in recv() for a response the stopped server never sends.
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
  }
  bool failed() const { return failed_; }

 private:
  void Loop() {
    std::vector<std::string> in(fds_.size());
    for (int fd : fds_) Write(fd);
    char buf[16384];
    while (!stop_ && !failed_) {
      for (size_t i = 0; i < fds_.size() && !stop_; ++i) {
        // One complete response per connection, then the next request on it.
        while (!Complete(in[i])) {
          ssize_t n = ::recv(fds_[i], buf, sizeof buf, 0);
          if (n <= 0) {
            failed_ = !stop_;
            return;
          }
          in[i].append(buf, static_cast<size_t>(n));
        }
        Write(fds_[i]);
      }
    }
  }
  // Consumes one response from `in` if it is all there.
  static bool Complete(std::string& in) {
    size_t end = in.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    size_t cl = in.find("Content-Length:");
    size_t len = cl < end ? static_cast<size_t>(std::atol(in.c_str() + cl + 15)) : 0;
    if (in.size() < end + 4 + len) return false;
    in.erase(0, end + 4 + len);
    return true;
  }
  void Write(int fd) {
    if (::send(fd, kInvokeRequest.data(), kInvokeRequest.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(kInvokeRequest.size())) {
      failed_ = true;
    }
  }
  std::vector<int> fds_;
  std::vector<int> pending_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
};

// The HTTP layer alone: the server's loop runs on the benchmark thread, the load comes from
// another thread (4 keep-alive connections), and each batch of requests is timed with the
// server thread's CPU time. So the result is what one core spends per request in
// HttpServer + RequestParser + Router + reply (syscalls included), whatever else runs.
void BM_HttpServerOneCore(benchmark::State& state) {
  constexpr uint64_t kBatch = 500;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Router router;
    AddRoutes(router);
    HttpServer server(&loop, [&](std::shared_ptr<HttpExchange> ex) { router.Dispatch(ex); }, {});
    if (!server.Listen("127.0.0.1", 0).ok()) {
      state.SkipWithError("listen failed");
      return;
    }
    ThreadClient client(server.port(), 4);
    // Accept the connections before measuring.
    while (server.connection_count() < 4) uv_run(&loop, UV_RUN_ONCE);
    client.Start();
    for (auto _ : state) {
      uint64_t target = server.requests_served() + kBatch;
      double t0 = ThreadCpuSeconds();
      while (server.requests_served() < target && !client.failed()) uv_run(&loop, UV_RUN_ONCE);
      state.SetIterationTime(ThreadCpuSeconds() - t0);
      if (client.failed()) {
        state.SkipWithError("client failed");
        break;
      }
    }
    client.Stop();
    server.Close();
  }
  CloseLoop(&loop, state);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
  state.SetLabel("requests per CPU-second of the server thread (client on another thread)");
}
BENCHMARK(BM_HttpServerOneCore)->UseManualTime();

void BM_InvokeRoundTrip(benchmark::State& state) {
  using ephemera::runtime_api::Event;
  using ephemera::runtime_api::RuntimeApiServer;
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    std::map<std::string, std::shared_ptr<HttpExchange>> waiting;  // request id -> invoke
    RuntimeApiServer::Callbacks cb;
    cb.on_response = [&](const std::string& id, std::string body, std::string type) {
      auto it = waiting.find(id);
      if (it == waiting.end()) return;
      it->second->Reply(HttpResponse(200, std::move(body), type));
      waiting.erase(it);
    };
    RuntimeApiServer runtime_api(&loop, cb);
    if (!runtime_api.Listen("127.0.0.1").ok()) {
      state.SkipWithError("runtime api listen failed");
      return;
    }
    uint64_t next_id = 0;
    Router router;
    router.Add("POST", "/2015-03-31/functions/{}/invocations",
               [&](const std::shared_ptr<HttpExchange>& ex, const Router::Params&) {
                 Event e;
                 e.request_id = "req-" + std::to_string(++next_id);
                 e.payload = ex->request().body;
                 e.function_arn = "arn:aws:lambda:us-east-1:000000000000:function:echo";
                 waiting[e.request_id] = ex;
                 runtime_api.Deliver(std::move(e));
               });
    HttpServer front(&loop, [&](std::shared_ptr<HttpExchange> ex) { router.Dispatch(ex); }, {});
    if (!front.Listen("127.0.0.1", 0).ok()) {
      state.SkipWithError("front listen failed");
      return;
    }
    // The in-process runtime: GET /next, echo the event to /response, repeat.
    auto* runtime = new LoopClient(&loop, runtime_api.port());
    std::function<void()> next = [&] {
      runtime->Send("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n",
                    [&](Response r) {
                      std::string id = r.Header("Lambda-Runtime-Aws-Request-Id");
                      runtime->Send("POST /2018-06-01/runtime/invocation/" + id +
                                        "/response HTTP/1.1\r\nHost: rt\r\nContent-Type: "
                                        "application/json\r\nContent-Length: " +
                                        std::to_string(r.body.size()) + "\r\n\r\n" + r.body,
                                    [&](Response) { next(); });
                    });
    };
    next();
    auto* client = new LoopClient(&loop, front.port());
    for (auto _ : state) {
      bool done = false;
      client->Send(kInvokeRequest, [&](Response r) {
        done = r.status == 200;
        if (!done) client = nullptr;
      });
      while (!done && client != nullptr && client->ok()) uv_run(&loop, UV_RUN_ONCE);
      if (client == nullptr || !client->ok()) {
        state.SkipWithError("round trip failed");
        return;
      }
    }
    LoopClient::Destroy(client);
    LoopClient::Destroy(runtime);
    front.Close();
    runtime_api.Close();
  }
  CloseLoop(&loop, state);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("invoke -> /next -> /response -> reply, 3 HTTP exchanges, one loop");
}
BENCHMARK(BM_InvokeRoundTrip);

const std::string kApiGatewayEvent = R"({
  "version": "2.0", "routeKey": "$default", "rawPath": "/orders/42", "rawQueryString": "expand=items&limit=10",
  "headers": {"accept": "application/json", "content-type": "application/json", "host": "abc.execute-api.us-east-1.amazonaws.com",
    "user-agent": "curl/7.88.1", "x-amzn-trace-id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700", "x-forwarded-for": "203.0.113.7"},
  "queryStringParameters": {"expand": "items", "limit": "10"},
  "requestContext": {"accountId": "123456789012", "apiId": "abc", "domainName": "abc.execute-api.us-east-1.amazonaws.com",
    "http": {"method": "POST", "path": "/orders/42", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "curl/7.88.1"},
    "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "routeKey": "$default", "stage": "$default", "time": "23/Nov/2026:05:40:01 +0000", "timeEpoch": 1795410001000},
  "body": "{\"item\":\"book\",\"quantity\":3,\"notes\":\"leave at the door, ring twice\"}", "isBase64Encoded": false
})";

void BM_JsonParseEvent(benchmark::State& state) {
  for (auto _ : state) {
    ephemera::json::Json j = ephemera::json::Parse(kApiGatewayEvent);
    auto path = ephemera::json::GetString(j.get(), "rawPath");
    auto body = ephemera::json::GetString(j.get(), "body");
    auto b64 = ephemera::json::GetBool(j.get(), "isBase64Encoded");
    benchmark::DoNotOptimize(path);
    benchmark::DoNotOptimize(body);
    benchmark::DoNotOptimize(b64);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kApiGatewayEvent.size()));
  state.SetLabel("1 KB API Gateway event parsed, 3 fields read");
}
BENCHMARK(BM_JsonParseEvent);

void BM_JsonFunctionConfiguration(benchmark::State& state) {
  ephemera::registry::FunctionSpec spec;
  spec.name = "echo";
  spec.image = "ephemera/echo:latest";
  spec.mode = ephemera::registry::ShimMode::kNative;
  spec.environment = {{"GREETING", "hello"}, {"LEVEL", "debug"}};
  spec.description = "Returns the event unchanged";
  for (auto _ : state) {
    ephemera::json::Json j = ephemera::registry::FunctionConfiguration(spec);
    std::string text = ephemera::json::Print(j.get());
    benchmark::DoNotOptimize(text);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("FunctionConfiguration built and printed");
}
BENCHMARK(BM_JsonFunctionConfiguration);

}  // namespace

BENCHMARK_MAIN();
