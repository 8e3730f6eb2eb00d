// Fuzz target: the Runtime API server's request handling
// (runtime/runtime_api/runtime_api_server.h) behind the HTTP server, as a
// runtime in a container talks to it: real connections on a private loop.
//
// Input: one control byte, then what runtimes send. The bytes are cut at each
// "\n--conn--\n" into what up to three connections send (each then half-closes);
// the control byte says how many events the owner delivers before (bits 0-1),
// whether it delivers the next event from inside on_response / on_error (bit
// 2, as the daemon would for a warm environment), and whether the second
// connection starts only after the first has finished (bit 3). Event request
// ids are "id-0", "id-1", ... so seeds can answer them.
// Properties (the target aborts if one fails): every connection is closed by
// the server after the client half-closes (nothing hangs; bounded by a 5 s
// loop-time watchdog), every answer is a well-formed HTTP/1.1 response, only an
// id that was handed out is ever reported answered, and each at most once.
// The loop is closed (uv_loop_close() == 0) after every input.
// Thread: libFuzzer's. Depends on: runtime_api, http, libuv.
#include <uv.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/log.h"
#include "runtime/runtime_api/runtime_api_server.h"

namespace {

namespace rapi = ephemera::runtime_api;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

// One client connection on the loop: sends its bytes, half-closes, collects.
// Requests are heap objects freed in their callbacks, which libuv always runs
// (with UV_ECANCELED if the handle closes first), so they may outlive the Client.
class Client {
 public:
  Client(uv_loop_t* loop, int port, std::string bytes) : bytes_(std::move(bytes)) {
    tcp_ = new uv_tcp_t;
    Check(uv_tcp_init(loop, tcp_) == 0, "uv_tcp_init");
    tcp_->data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", port, &addr);
    auto* connect = new uv_connect_t;
    Check(uv_tcp_connect(connect, tcp_, reinterpret_cast<const sockaddr*>(&addr), OnConnect) == 0,
          "uv_tcp_connect");
  }
  ~Client() {
    tcp_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  }
  bool done() const { return done_; }
  const std::string& received() const { return received_; }
  const std::string& sent() const { return bytes_; }

 private:
  struct WriteReq {
    uv_write_t req;
    std::string data;
  };

  static void OnConnect(uv_connect_t* req, int status) {
    auto* self = static_cast<Client*>(req->handle->data);
    delete req;
    if (self == nullptr) return;  // closed before it connected
    if (status < 0) {
      self->done_ = true;
      return;
    }
    auto* stream = reinterpret_cast<uv_stream_t*>(self->tcp_);
    uv_read_start(
        stream,
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char storage[64 * 1024];
          *buf = uv_buf_init(storage, sizeof storage);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* c = static_cast<Client*>(s->data);
          if (c == nullptr) return;
          if (n > 0) c->received_.append(buf->base, static_cast<size_t>(n));
          if (n < 0) {
            c->done_ = true;
            uv_read_stop(s);
          }
        });
    if (!self->bytes_.empty()) {
      auto* w = new WriteReq{{}, self->bytes_};
      uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
      if (uv_write(&w->req, stream, &buf, 1,
                   [](uv_write_t* r, int) { delete reinterpret_cast<WriteReq*>(r); }) != 0) {
        delete w;
      }
    }
    auto* sd = new uv_shutdown_t;
    if (uv_shutdown(sd, stream, [](uv_shutdown_t* r, int) { delete r; }) != 0) delete sd;
  }

  std::string bytes_;
  uv_tcp_t* tcp_ = nullptr;
  bool done_ = false;
  std::string received_;
};

// Every response in `wire` starts with a status line and has a parsable length.
void CheckResponses(const std::string& wire) {
  size_t pos = 0;
  while (pos < wire.size()) {
    Check(wire.compare(pos, 9, "HTTP/1.1 ") == 0, "a response starts with HTTP/1.1");
    size_t end = wire.find("\r\n\r\n", pos);
    Check(end != std::string::npos, "a response head is complete");
    std::string head = wire.substr(pos, end - pos);
    int status = std::atoi(head.c_str() + 9);
    Check(status >= 100 && status <= 599, "a status in 100..599");
    size_t length = 0;
    size_t cl = head.find("\r\nContent-Length: ");
    if (cl != std::string::npos) length = std::strtoul(head.c_str() + cl + 18, nullptr, 10);
    Check(status == 100 || cl != std::string::npos || status == 204 || status == 304,
          "a response with a body says its length");
    pos = end + 4 + length;
    Check(pos <= wire.size(), "a response body is complete");
  }
}

rapi::Event MakeEvent(int n) {
  rapi::Event e;
  e.request_id = "id-" + std::to_string(n);
  e.payload = "{\"n\":" + std::to_string(n) + "}";
  e.function_arn = "arn:aws:lambda:us-east-1:000000000000:function:fuzz";
  e.trace_id = n % 2 ? "Root=1-5e1b4151-5ac6c58f0e5e2c3b0b6a0fd8" : "";
  e.client_context = n % 3 ? "{\"custom\":{}}" : "";
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ephemera::SetLogLevel(ephemera::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> parts;
  static constexpr std::string_view kSep = "\n--conn--\n";
  while (parts.size() < 2) {
    size_t at = rest.find(kSep);
    if (at == std::string_view::npos) break;
    parts.emplace_back(rest.substr(0, at));
    rest.remove_prefix(at + kSep.size());
  }
  parts.emplace_back(rest);

  uv_loop_t loop;
  Check(uv_loop_init(&loop) == 0, "uv_loop_init");
  int delivered = 0;
  std::set<std::string> handed_out, answered;
  rapi::RuntimeApiServer* server_ptr = nullptr;
  const bool redeliver = (control & 4) != 0;
  auto answer = [&](const std::string& id) {
    Check(handed_out.count(id) == 1, "only an id that was handed out is answered");
    Check(answered.insert(id).second, "an id is answered at most once");
    if (redeliver && delivered < 8) server_ptr->Deliver(MakeEvent(delivered++));
  };
  rapi::RuntimeApiServer::Callbacks callbacks;
  callbacks.on_next = [&](const rapi::Event* e) {
    if (e != nullptr) handed_out.insert(e->request_id);
  };
  callbacks.on_response = [&](const std::string& id, std::string, std::string) { answer(id); };
  callbacks.on_error = [&](const std::string& id, rapi::RuntimeError err) {
    Check(!err.error_type.empty(), "an error has a type");
    answer(id);
  };
  callbacks.on_init_error = [&](rapi::RuntimeError err) {
    Check(!err.error_type.empty(), "an init error has a type");
  };
  {
    rapi::RuntimeApiServer server(&loop, callbacks);
    server_ptr = &server;
    Check(server.Listen("127.0.0.1").ok(), "listen");
    for (int i = 0; i < (control & 3); ++i) server.Deliver(MakeEvent(delivered++));

    bool timed_out = false;
    uv_timer_t watchdog;
    uv_timer_init(&loop, &watchdog);
    watchdog.data = &timed_out;
    uv_timer_start(
        &watchdog, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, 5000, 0);

    std::vector<std::unique_ptr<Client>> clients;
    const bool sequential = (control & 8) != 0;
    auto all_done = [&] {
      for (const auto& c : clients) {
        if (!c->done()) return false;
      }
      return true;
    };
    for (auto& part : parts) {
      clients.push_back(std::make_unique<Client>(&loop, server.port(), std::move(part)));
      while (sequential && !all_done() && !timed_out) uv_run(&loop, UV_RUN_ONCE);
    }
    while (!all_done() && !timed_out) uv_run(&loop, UV_RUN_ONCE);
    if (timed_out) {
      std::fprintf(stderr, "a connection was not closed after the client half-closed\n");
      std::abort();
    }
    for (const auto& c : clients) {
      // Answers to HEAD carry a length but no body: not framed by length alone.
      if (c->sent().find("HEAD") == std::string::npos) CheckResponses(c->received());
    }
    clients.clear();
    uv_close(reinterpret_cast<uv_handle_t*>(&watchdog), nullptr);
    server_ptr = nullptr;
  }  // the server closes its listener and connections
  for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++i) {
  }
  Check(uv_loop_close(&loop) == 0, "every handle is closed");
  return 0;
}
