// Fuzz target: the shim's HTTP response reader (shim/http_client.h), over a
// real loopback connection: the fuzz input is what the peer (the daemon's
// Runtime API, or the wrapped web service in http mode) answers.
//
// Input: one control byte, then the response bytes. The control byte picks the
// request (GET, HEAD or POST with a body), so that HEAD's no-body framing is
// exercised too. A peer thread accepts the connection, writes the bytes, shuts
// its side down (so the client always sees EOF after them) and reads until the
// client closes. Properties (the target aborts if one fails): Send returns,
// a response it accepts is not 1xx and its body is no longer than the bytes
// sent, and after HEAD it has no body.
// Thread: libFuzzer's, plus the peer thread (blocking sockets). Depends on: shim.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "shim/http_client.h"

namespace {

namespace shim = ephemera::shim;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

// Answers every connection with the current payload.
class Peer {
 public:
  Peer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::perror("peer listen");
      std::abort();
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
    thread_.detach();  // lives as long as the process
  }

  uint16_t port() const { return port_; }

  void SetPayload(std::string_view bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    payload_.assign(bytes);
  }

 private:
  void Serve() {
    while (true) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::string payload;
      {
        std::lock_guard<std::mutex> lock(mu_);
        payload = payload_;
      }
      size_t off = 0;
      while (off < payload.size()) {
        ssize_t n = ::send(fd, payload.data() + off, payload.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::shutdown(fd, SHUT_WR);
      char buf[4096];
      while (::recv(fd, buf, sizeof buf, 0) > 0) {
      }
      ::close(fd);
    }
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::string payload_;
  std::thread thread_;
};

Peer& ThePeer() {
  static Peer* peer = new Peer;  // never destroyed: its thread runs until exit
  return *peer;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::signal(SIGPIPE, SIG_IGN);
  ThePeer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static bool initialised = (LLVMFuzzerInitialize(nullptr, nullptr), true);
  (void)initialised;
  const uint8_t control = data[0];
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  Peer& peer = ThePeer();
  peer.SetPayload(bytes);

  // Built whole rather than assigned member by member: GCC 12 at -O2 reports a
  // false -Wrestrict for `request.method = "HEAD"` over the default "GET".
  struct Kind {
    const char* method;
    const char* target;
    const char* body;
  };
  static const Kind kKinds[] = {
      {"GET", "/2018-06-01/runtime/invocation/next", ""},
      {"HEAD", "/", ""},
      {"POST", "/2018-06-01/runtime/invocation/abc/response", "{\"ok\":true}"},
  };
  const Kind& kind = kKinds[control % 3];
  shim::HttpRequest request{kind.method, kind.target, {}, kind.body};
  if (*kind.body != '\0') request.headers.emplace_back("Content-Type", "application/json");
  shim::HttpClient client("127.0.0.1", peer.port());
  shim::HttpResponse response;
  shim::Status st = client.Send(request, &response);
  if (st.ok()) {
    Check(response.status < 100 || response.status >= 200, "1xx responses are skipped");
    Check(response.body.size() <= bytes.size(), "the body is no longer than what was sent");
    if (request.method == "HEAD") Check(response.body.empty(), "a response to HEAD has no body");
  } else {
    Check(!st.message().empty(), "a failure says what failed");
  }
  client.Close();
  return 0;
}
