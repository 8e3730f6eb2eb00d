// shim/proxy.cc: see proxy.h.
#include "shim/proxy.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shim/json.h"

namespace ephemera::shim {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxBodyBytes = 64u << 20;

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// A response the proxy makes up itself; the connection closes after it.
std::string ProxyAnswer(int status, std::string_view reason, std::string_view message) {
  std::string body = "{\"errorMessage\":" + JsonQuote(message) + ",\"errorType\":\"Proxy." +
                     std::string(reason) + "\"}";
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Rewrites the head at the front of `buffer` without its `name` header lines; returns
// how many bytes shorter the head got.
size_t DropHeaderLines(std::string* buffer, size_t head_size, std::string_view name) {
  std::string head;
  size_t pos = 0;
  size_t removed = 0;
  while (pos < head_size) {
    size_t eol = buffer->find("\r\n", pos);
    if (eol == std::string::npos || eol + 2 > head_size) eol = head_size - 2;
    std::string_view line(buffer->data() + pos, eol + 2 - pos);
    size_t colon = line.find(':');
    std::string_view key =
        colon == std::string_view::npos ? std::string_view() : line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
    if (pos > 0 && EqualsIgnoreCase(key, name)) {
      removed += line.size();
    } else {
      head.append(line);
    }
    pos = eol + 2;
  }
  buffer->replace(0, head_size, head);
  return removed;
}

}  // namespace

// One client connection and the upstream connection that serves it.
struct RuntimeApiProxy::Session {
  int client = -1;
  std::string from_client;  // received, not yet forwarded
  int upstream = -1;
  std::string from_upstream;  // received, not yet relayed

  void CloseUpstream() {
    if (upstream >= 0) close(upstream);
    upstream = -1;
    from_upstream.clear();
  }
};

Status RuntimeApiProxy::Start(const Endpoint& address) {
  Status st = listener_.Listen(address);
  if (!st.ok()) return st;
  address_ = (address.host == "localhost" ? std::string("127.0.0.1") : address.host) + ":" +
             std::to_string(listener_.port());
  listener_.Serve([this](int fd) { ServeClient(fd); });
  return Status::Ok();
}

void RuntimeApiProxy::ServeClient(int client_fd) {
  Session s;
  s.client = client_fd;
  while (!listener_.stopping()) {
    WireHead request;
    size_t size = 0;
    if (!ReadRequest(&s, &request, &size)) break;
    std::string raw = s.from_client.substr(0, size);
    s.from_client.erase(0, size);
    // A client that asked to close (Connection: close, or HTTP/1.0 without keep-alive)
    // gets its answer and then the close, whatever the upstream's answer said.
    bool client_closes = ConnectionCloses(request);
    std::string local;
    if (hooks_.on_request && hooks_.on_request(request, &local)) {
      if (!SendAll(s.client, local) || client_closes) break;
      continue;
    }
    if (!Forward(&s, request, raw) || client_closes) break;
  }
  s.CloseUpstream();
}

void RuntimeApiProxy::UpstreamLost(const std::string& what) {
  int err = ProbeEndpoint(upstream_);
  if (IsGoneError(err) && hooks_.on_upstream_gone) {
    hooks_.on_upstream_gone(what + ", and a new connection failed: " + strerror(err));
  }
}

void RuntimeApiProxy::CheckIdleUpstream(Session* s) {
  char byte;
  ssize_t n = recv(s->upstream, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  // Closed by the daemon (an idle timeout, or it died), or bytes nobody asked for: drop
  // it. After a close, a new connection tells the two apart, and is kept for the next
  // request and watched in turn (a dying daemon may accept it just before its listener
  // closes, and reset it a moment later).
  s->CloseUpstream();
  if (n > 0) return;
  int err = 0;
  s->upstream = ConnectEndpoint(upstream_, &err);
  if (s->upstream < 0 && IsGoneError(err) && hooks_.on_upstream_gone) {
    hooks_.on_upstream_gone(std::string("the idle upstream connection closed, and a new "
                                        "connection failed: ") +
                            strerror(err));
  }
}

bool RuntimeApiProxy::ReadFromClient(Session* s) {
  while (true) {
    struct pollfd fds[2] = {{s->client, POLLIN, 0}, {s->upstream, POLLIN, 0}};
    int count = s->upstream >= 0 ? 2 : 1;
    if (poll(fds, static_cast<nfds_t>(count), -1) < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (count == 2 && fds[1].revents != 0) CheckIdleUpstream(s);
    if (fds[0].revents == 0) continue;
    char buf[kReadChunk];
    ssize_t n = recv(s->client, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    s->from_client.append(buf, static_cast<size_t>(n));
    return true;
  }
}

bool RuntimeApiProxy::ReadRequest(Session* s, WireHead* head, size_t* size) {
  std::string error;
  while (true) {
    WireParse parsed = ParseWireHead(s->from_client, false, head, &error);
    if (parsed == WireParse::kDone) break;
    if (parsed == WireParse::kMalformed) {
      bool too_large = s->from_client.size() > kMaxWireHeadBytes;
      SendAll(s->client, too_large ? ProxyAnswer(431, "RequestHeaderFieldsTooLarge", error)
                                   : ProxyAnswer(400, "BadRequest", error));
      return false;
    }
    if (!ReadFromClient(s)) return false;
  }
  BodyFraming framing;
  if (!RequestFraming(*head, &framing)) {
    SendAll(s->client, ProxyAnswer(400, "BadRequest", "malformed Content-Length"));
    return false;
  }
  if (framing.kind == BodyFraming::Kind::kLength && framing.length > kMaxBodyBytes) {
    SendAll(s->client, ProxyAnswer(413, "RequestEntityTooLarge", "request body over 64 MiB"));
    return false;
  }
  if (head->HeaderHasToken("Expect", "100-continue")) {
    // The client waits for this before sending its body (curl: up to 1 s); the upstream
    // never sees the Expect, since it gets the body together with the head.
    head->size -= DropHeaderLines(&s->from_client, head->size, "Expect");
    if (!SendAll(s->client, "HTTP/1.1 100 Continue\r\n\r\n")) return false;
  }
  size_t end = head->size;
  if (framing.kind == BodyFraming::Kind::kLength) {
    end += static_cast<size_t>(framing.length);
    while (s->from_client.size() < end) {
      if (!ReadFromClient(s)) return false;
    }
  } else if (framing.kind == BodyFraming::Kind::kChunked) {
    ChunkedScanner scanner(head->size);
    while (true) {
      WireParse parsed = scanner.Scan(s->from_client, &end, &error);
      if (parsed == WireParse::kDone) break;
      if (parsed == WireParse::kMalformed || s->from_client.size() > kMaxBodyBytes) {
        SendAll(s->client,
                parsed == WireParse::kMalformed
                    ? ProxyAnswer(400, "BadRequest", error)
                    : ProxyAnswer(413, "RequestEntityTooLarge", "request body over 64 MiB"));
        return false;
      }
      if (!ReadFromClient(s)) return false;
    }
  }
  *size = end;
  return true;
}

bool RuntimeApiProxy::Forward(Session* s, const WireHead& request, const std::string& raw) {
  enum class Read { kOk, kUpstreamClosed, kClientGone, kMalformed };
  for (int attempt = 0;; ++attempt) {
    bool reused = s->upstream >= 0;
    if (!reused) {
      int err = 0;
      s->upstream = ConnectEndpoint(upstream_, &err);
      if (s->upstream < 0) {
        if (IsGoneError(err) && hooks_.on_upstream_gone) {
          hooks_.on_upstream_gone(std::string("connect failed: ") + strerror(err));
        }
        SendAll(s->client,
                ProxyAnswer(502, "BadGateway",
                            "cannot connect to " + upstream_.Describe() + ": " + strerror(err)));
        return false;
      }
    }
    bool any_byte = false;
    // Reads what the upstream sent next, watching the client for a hang-up meanwhile
    // (POLLRDHUP only: bytes the client pipelines wait in the kernel until their turn).
    auto read_more = [&]() -> Read {
      while (true) {
        struct pollfd fds[2] = {{s->upstream, POLLIN, 0}, {s->client, POLLRDHUP, 0}};
        if (poll(fds, 2, -1) < 0) {
          if (errno == EINTR) continue;
          return Read::kUpstreamClosed;
        }
        if (fds[1].revents != 0) return Read::kClientGone;
        if (fds[0].revents == 0) continue;
        char buf[kReadChunk];
        ssize_t n = recv(s->upstream, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return Read::kUpstreamClosed;
        any_byte = true;
        s->from_upstream.append(buf, static_cast<size_t>(n));
        return Read::kOk;
      }
    };
    Read result = SendAll(s->upstream, raw) ? Read::kOk : Read::kUpstreamClosed;
    WireHead response;
    size_t end = 0;
    bool until_close = false;
    std::string error;
    while (result == Read::kOk) {
      WireParse parsed = ParseWireHead(s->from_upstream, true, &response, &error);
      if (parsed == WireParse::kMalformed) {
        result = Read::kMalformed;
        break;
      }
      if (parsed == WireParse::kIncomplete) {
        result = read_more();
        continue;
      }
      if (response.status >= 100 && response.status < 200 && response.status != 101) {
        // An interim answer: relay it now, the final one follows on the same connection.
        if (!SendAll(s->client, std::string_view(s->from_upstream).substr(0, response.size))) {
          result = Read::kClientGone;
          break;
        }
        s->from_upstream.erase(0, response.size);
        continue;
      }
      BodyFraming framing;
      if (!ResponseFraming(response, request.method, &framing)) {
        result = Read::kMalformed;
        error = "malformed Content-Length";
        break;
      }
      end = response.size;
      if (framing.kind == BodyFraming::Kind::kLength) {
        end += static_cast<size_t>(framing.length);
        while (result == Read::kOk && s->from_upstream.size() < end) result = read_more();
      } else if (framing.kind == BodyFraming::Kind::kChunked) {
        ChunkedScanner scanner(response.size);
        while (result == Read::kOk) {
          parsed = scanner.Scan(s->from_upstream, &end, &error);
          if (parsed == WireParse::kDone) break;
          result = parsed == WireParse::kMalformed ? Read::kMalformed : read_more();
        }
      } else if (framing.kind == BodyFraming::Kind::kUntilClose) {
        until_close = true;
        while (result == Read::kOk) result = read_more();
        if (result == Read::kUpstreamClosed) {
          result = Read::kOk;  // the close is the end of this body
          end = s->from_upstream.size();
        }
      }
      break;
    }
    if (result == Read::kClientGone) {
      s->CloseUpstream();  // the daemon sees the abort
      return false;
    }
    if (result == Read::kMalformed) {
      s->CloseUpstream();
      SendAll(s->client, ProxyAnswer(502, "BadGateway", "malformed upstream answer: " + error));
      return false;
    }
    if (result == Read::kUpstreamClosed) {
      s->CloseUpstream();
      if (reused && !any_byte && attempt == 0) continue;  // a stale keep-alive connection
      UpstreamLost("the upstream connection closed under " + request.method + " " + request.target);
      return false;  // close the client's connection too, as the upstream did
    }
    if (hooks_.on_response) hooks_.on_response(request, response);
    bool closes = until_close || ConnectionCloses(response);
    bool sent = SendAll(s->client, std::string_view(s->from_upstream).substr(0, end));
    s->from_upstream.erase(0, end);
    if (closes) s->CloseUpstream();
    return sent && !closes;
  }
}

}  // namespace ephemera::shim
