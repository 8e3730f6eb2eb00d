#include "functions/orders/support/invoke.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ephemera::fn {
namespace {

int Connect(const std::string& endpoint, std::string* error) {
  int fd = -1;
  int rc = -1;
  if (endpoint.rfind("unix:", 0) == 0) {
    std::string path = endpoint.substr(5);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
      *error = "socket path too long: " + path;
      return -1;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    size_t colon = endpoint.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    std::string host = endpoint.substr(0, colon);
    if (host == "localhost") host = "127.0.0.1";
    if (colon == std::string::npos || inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
      *error = "EPHEMERA_INVOKE_ENDPOINT must be IPv4:port or unix:/path (got " + endpoint + ")";
      return -1;
    }
    addr.sin_port = htons(static_cast<uint16_t>(std::atoi(endpoint.c_str() + colon + 1)));
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (rc != 0) {
    *error = "cannot connect to the daemon at " + endpoint + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Decodes a chunked body; false if it is incomplete.
bool Dechunk(const std::string& in, std::string* out) {
  size_t pos = 0;
  out->clear();
  while (true) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string::npos) return false;
    size_t size = std::strtoul(in.substr(pos, eol - pos).c_str(), nullptr, 16);
    pos = eol + 2;
    if (size == 0) return true;
    if (pos + size + 2 > in.size()) return false;
    out->append(in, pos, size);
    pos += size + 2;
  }
}

}  // namespace

long long NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string PeerName(const std::string& name) {
  const char* prefix = std::getenv("PEER_PREFIX");
  return std::string(prefix != nullptr ? prefix : "") + name;
}

InvokeResult Invoke(const std::string& function, const std::string& payload, bool async,
                    int timeout_ms) {
  InvokeResult result;
  const char* endpoint = std::getenv("EPHEMERA_INVOKE_ENDPOINT");
  if (endpoint == nullptr || *endpoint == '\0') {
    result.error =
        "EPHEMERA_INVOKE_ENDPOINT is not set (this function's network cannot reach "
        "the daemon)";
    return result;
  }
  int fd = Connect(endpoint, &result.error);
  if (fd < 0) return result;
  std::string request = "POST /2015-03-31/functions/" + function +
                        "/invocations HTTP/1.1\r\nHost: localhost\r\n"
                        "Content-Type: application/json\r\nConnection: close\r\n"
                        "X-Amz-Invocation-Type: " +
                        std::string(async ? "Event" : "RequestResponse") +
                        "\r\nContent-Length: " + std::to_string(payload.size()) + "\r\n\r\n" +
                        payload;
  if (!WriteAll(fd, request)) {
    result.error = "sending the invoke of " + function + ": " + std::strerror(errno);
    close(fd);
    return result;
  }
  // Read until the whole answer is in: Content-Length, chunked, or the peer closing.
  std::string in;
  size_t header_end = std::string::npos;
  long content_length = -1;
  bool chunked = false;
  long long deadline = NowMs() + timeout_ms;
  char buf[16384];
  while (true) {
    if (header_end != std::string::npos) {
      size_t have = in.size() - header_end;
      if (content_length >= 0 && have >= static_cast<size_t>(content_length)) break;
      std::string body;
      if (chunked && Dechunk(in.substr(header_end), &body)) break;
    }
    long long left = deadline - NowMs();
    if (left <= 0) {
      result.error = "no complete answer to the invoke of " + function + " within " +
                     std::to_string(timeout_ms) + " ms";
      close(fd);
      return result;
    }
    pollfd p{fd, POLLIN, 0};
    int pr = poll(&p, 1, static_cast<int>(left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed: what we have is the answer
    in.append(buf, static_cast<size_t>(n));
    if (header_end == std::string::npos) {
      size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      header_end = end + 4;
      std::string head = in.substr(0, end);
      size_t sp = head.find(' ');
      result.status = sp == std::string::npos ? 0 : std::atoi(head.c_str() + sp + 1);
      size_t line = head.find("\r\n");
      while (line != std::string::npos) {
        size_t next = head.find("\r\n", line + 2);
        std::string h = head.substr(line + 2, next == std::string::npos ? next : next - line - 2);
        size_t colon = h.find(':');
        if (colon != std::string::npos) {
          std::string name = Lower(h.substr(0, colon));
          std::string value = h.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          if (name == "content-length") content_length = std::atol(value.c_str());
          if (name == "transfer-encoding" && Lower(value) == "chunked") chunked = true;
          if (name == "x-amz-function-error") result.function_error = value;
        }
        line = next;
      }
    }
  }
  close(fd);
  if (header_end == std::string::npos) {
    result.error = "the daemon closed the connection before answering the invoke of " + function;
    return result;
  }
  std::string body = in.substr(header_end);
  if (chunked) {
    std::string decoded;
    Dechunk(body, &decoded);
    body = decoded;
  } else if (content_length >= 0 && body.size() > static_cast<size_t>(content_length)) {
    body.resize(static_cast<size_t>(content_length));
  }
  result.body = std::move(body);
  return result;
}

}  // namespace ephemera::fn
