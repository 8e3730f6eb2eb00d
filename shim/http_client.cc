// shim/http_client.cc: see http_client.h.
#include "shim/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "shim/signals.h"

namespace ephemera::shim {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxHeadBytes = 64 * 1024;

char Lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

bool ContainsTokenIgnoreCase(std::string_view value, std::string_view token) {
  if (token.size() > value.size()) return false;
  for (size_t i = 0; i + token.size() <= value.size(); ++i) {
    if (EqualsIgnoreCase(value.substr(i, token.size()), token)) return true;
  }
  return false;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

void SleepMs(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !TerminationRequested()) {
  }
}

long long NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// Writes all of `parts`, resuming after partial writes and EINTR.
bool WriteAll(int fd, struct iovec* parts, int count, std::string* error) {
  while (count > 0) {
    struct msghdr msg = {};
    msg.msg_iov = parts;
    msg.msg_iovlen = static_cast<size_t>(count);
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;  // writes to the daemon finish quickly
      *error = std::string("write failed: ") + strerror(errno);
      return false;
    }
    size_t left = static_cast<size_t>(n);
    while (count > 0 && left >= parts->iov_len) {
      left -= parts->iov_len;
      ++parts;
      --count;
    }
    if (count > 0) {
      parts->iov_base = static_cast<char*>(parts->iov_base) + left;
      parts->iov_len -= left;
    }
  }
  return true;
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

const std::string* HttpResponse::Header(std::string_view name) const noexcept {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

std::string Endpoint::Describe() const {
  return is_unix() ? "unix:" + unix_path : host + ":" + std::to_string(port);
}

std::string Endpoint::HostHeader() const {
  return is_unix() ? std::string("localhost") : host + ":" + std::to_string(port);
}

bool Endpoint::ParseHostPort(std::string_view spec, Endpoint* out) {
  Endpoint parsed;
  if (!HttpClient::ParseHostPort(spec, &parsed.host, &parsed.port)) return false;
  *out = std::move(parsed);
  return true;
}

int ConnectEndpoint(const Endpoint& endpoint, int* error_number) {
  *error_number = 0;
  struct sockaddr_storage storage = {};
  socklen_t length = 0;
  if (endpoint.is_unix()) {
    auto* addr = reinterpret_cast<struct sockaddr_un*>(&storage);
    addr->sun_family = AF_UNIX;
    if (endpoint.unix_path.size() >= sizeof addr->sun_path) {
      *error_number = ENAMETOOLONG;
      return -1;
    }
    memcpy(addr->sun_path, endpoint.unix_path.c_str(), endpoint.unix_path.size() + 1);
    length = sizeof *addr;
  } else {
    auto* addr = reinterpret_cast<struct sockaddr_in*>(&storage);
    addr->sin_family = AF_INET;
    addr->sin_port = htons(endpoint.port);
    const char* ip = endpoint.host == "localhost" ? "127.0.0.1" : endpoint.host.c_str();
    if (inet_pton(AF_INET, ip, &addr->sin_addr) != 1) {
      *error_number = EINVAL;
      return -1;
    }
    length = sizeof *addr;
  }
  int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error_number = errno;
    return -1;
  }
  if (!endpoint.is_unix()) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int rc;
  do {
    rc = connect(fd, reinterpret_cast<struct sockaddr*>(&storage), length);
  } while (rc != 0 && errno == EINTR && !TerminationRequested());
  if (rc != 0) {
    *error_number = errno;
    close(fd);
    return -1;
  }
  return fd;
}

bool IsGoneError(int error_number) noexcept {
  return error_number != 0 && error_number != EAGAIN && error_number != EINTR &&
         error_number != EMFILE && error_number != ENFILE && error_number != ENOBUFS &&
         error_number != ENOMEM;
}

int ProbeEndpoint(const Endpoint& endpoint) {
  int err = 0;
  int fd = ConnectEndpoint(endpoint, &err);
  if (fd >= 0) close(fd);
  return fd >= 0 ? 0 : err;
}

bool HttpClient::ParseHostPort(std::string_view spec, std::string* host, uint16_t* port) {
  size_t colon = spec.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= spec.size()) return false;
  unsigned long value = 0;
  for (char c : spec.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned long>(c - '0');
    if (value > 65535) return false;
  }
  if (value == 0) return false;
  host->assign(spec.substr(0, colon));
  *port = static_cast<uint16_t>(value);
  return true;
}

Status HttpClient::OpenOnce(int* error_number) {
  int fd = ConnectEndpoint(endpoint_, error_number);
  if (fd < 0) {
    return Status::Error("cannot connect to " + endpoint_.Describe() + ": " +
                         (*error_number == EINVAL && !endpoint_.is_unix()
                              ? std::string("not an IPv4 address")
                              : std::string(strerror(*error_number))));
  }
  fd_ = fd;
  ++connections_opened_;
  buffer_.clear();
  return Status::Ok();
}

Status HttpClient::Connect(int retry_for_ms, int retry_interval_ms) {
  Close();
  long long give_up = NowMs() + retry_for_ms;
  while (true) {
    int err = 0;
    Status st = OpenOnce(&err);
    if (st.ok()) return st;
    // A unix socket's file appears when the daemon binds it, possibly a moment late.
    bool retriable = err == ECONNREFUSED || err == ECONNRESET || err == EAGAIN ||
                     (endpoint_.is_unix() && err == ENOENT);
    if (!retriable || NowMs() >= give_up || TerminationRequested()) return st;
    SleepMs(retry_interval_ms);
  }
}

void HttpClient::Close() noexcept {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buffer_.clear();
}

bool HttpClient::CheckIdle() {
  if (fd_ < 0) return true;
  char byte;
  ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;  // a spurious wake-up
  // EOF, an error, or bytes nobody asked for: this connection is done either way.
  Close();
  if (n > 0) return true;
  // The peer closed it: an idle timeout, or the peer died. A new connection tells which.
  // It is kept (and so watched in turn): a dying peer may still have accepted it in the
  // instant before its listener closed, and then it resets it a moment later.
  int err = 0;
  Status st = OpenOnce(&err);
  return st.ok() || !IsGoneError(err);
}

long HttpClient::ReadMore(std::string* error) {
  size_t old = buffer_.size();
  buffer_.resize(old + kReadChunk);
  // Servers that write the head and the body separately without TCP_NODELAY (Python's
  // http.server, for one) would otherwise stall 40 ms on Nagle vs. our delayed ACK.
  // Linux clears quick-ACK mode by itself, so it is re-armed before every read.
  if (!endpoint_.is_unix()) {
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
  }
  auto fail = [&](int err) {
    buffer_.resize(old);
    interrupted_ = err == EINTR;
    *error =
        interrupted_ ? "interrupted by a signal" : std::string("read failed: ") + strerror(err);
    return -1L;
  };
  // A signal drained from the self-pipe by an earlier read that could not be aborted (the
  // first answer of SendPipelined) must still end this one.
  if (abortable_ && (TerminationRequested() || (interrupt_check_ && interrupt_check_()))) {
    return fail(EINTR);
  }
  while (true) {
    // Wait on the socket and the signal self-pipe together: a SIGTERM that lands just
    // before a long-polling read must still end it (EINTR alone would miss it).
    struct pollfd fds[3] = {{fd_, POLLIN, 0}, {-1, POLLIN, 0}, {-1, POLLIN, 0}};
    int count = 1, signal_index = -1, watch_index = -1;
    if (SignalPipeFd() >= 0) {
      signal_index = count;
      fds[count++].fd = SignalPipeFd();
    }
    int watch_fd = watch_.fd ? watch_.fd() : -1;
    if (watch_fd >= 0) {
      watch_index = count;
      fds[count++].fd = watch_fd;
    }
    int ready = poll(fds, static_cast<nfds_t>(count), -1);
    if (ready < 0 && errno != EINTR) return fail(errno);
    if (watch_index >= 0 && ready > 0 && fds[watch_index].revents != 0 && !watch_.check()) {
      buffer_.resize(old);
      watch_failed_ = true;
      *error = "aborted: the watched connection's peer is gone";
      return -1L;
    }
    if (ready < 0 || (signal_index >= 0 && fds[signal_index].revents != 0)) {
      DrainSignalPipe();
      if (abortable_ && (TerminationRequested() || (interrupt_check_ && interrupt_check_()))) {
        return fail(EINTR);
      }
    }
    if (ready < 0 || fds[0].revents == 0) continue;
    ssize_t n = recv(fd_, buffer_.data() + old, kReadChunk, MSG_DONTWAIT);
    if (n >= 0) {
      buffer_.resize(old + static_cast<size_t>(n));
      return static_cast<long>(n);
    }
    if (errno == EINTR || errno == EAGAIN) continue;
    return fail(errno);
  }
}

bool HttpClient::ReadHead(HttpResponse* response, bool* saw_any_byte, std::string* error) {
  size_t end;
  size_t searched = 0;
  while ((end = buffer_.find("\r\n\r\n", searched)) == std::string::npos) {
    if (buffer_.size() > kMaxHeadBytes) {
      *error = "response head larger than 64 KiB";
      return false;
    }
    searched = buffer_.size() >= 3 ? buffer_.size() - 3 : 0;
    long n = ReadMore(error);
    if (n < 0) return false;
    if (n == 0) {
      *error = buffer_.empty() ? "connection closed before a response"
                               : "connection closed inside the response head";
      return false;
    }
    *saw_any_byte = true;
  }
  *saw_any_byte = true;
  std::string_view head(buffer_.data(), end);
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.1 200 OK"
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") {
    *error = "malformed status line";
    return false;
  }
  size_t sp = status_line.find(' ');
  if (sp == std::string_view::npos || sp + 4 > status_line.size()) {
    *error = "malformed status line";
    return false;
  }
  int status = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    char c = status_line[i];
    if (c < '0' || c > '9') {
      *error = "malformed status code";
      return false;
    }
    status = status * 10 + (c - '0');
  }
  response->status = status;
  response->headers.clear();
  last_http10_ = status_line.substr(0, 8) == "HTTP/1.0";
  size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = head.size();
    std::string_view line = head.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      response->headers.emplace_back(std::string(Trim(line.substr(0, colon))),
                                     std::string(Trim(line.substr(colon + 1))));
    }
    pos = eol + 2;
  }
  buffer_.erase(0, end + 4);
  return true;
}

bool HttpClient::ReadChunked(std::string* body, std::string* error) {
  size_t pos = 0;
  auto need = [&](size_t bytes) {
    while (buffer_.size() - pos < bytes) {
      long n = ReadMore(error);
      if (n < 0) return false;
      if (n == 0) {
        *error = "connection closed inside a chunked body";
        return false;
      }
    }
    return true;
  };
  auto read_line = [&](std::string_view* line) {
    size_t eol;
    while ((eol = buffer_.find("\r\n", pos)) == std::string::npos) {
      if (buffer_.size() - pos > 4096) {
        *error = "chunk line too long";
        return false;
      }
      if (!need(buffer_.size() - pos + 1)) return false;
    }
    *line = std::string_view(buffer_).substr(pos, eol - pos);
    pos = eol + 2;
    return true;
  };
  while (true) {
    std::string_view line;
    if (!read_line(&line)) return false;
    size_t size = 0;
    size_t digits = 0;
    for (char c : line) {
      int v;
      if (c >= '0' && c <= '9')
        v = c - '0';
      else if (c >= 'a' && c <= 'f')
        v = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v = c - 'A' + 10;
      else
        break;  // chunk extensions (";...") and whitespace are ignored
      if (size > (SIZE_MAX >> 4)) {
        *error = "chunk size overflow";
        return false;
      }
      size = size * 16 + static_cast<size_t>(v);
      ++digits;
    }
    if (digits == 0) {
      *error = "malformed chunk size";
      return false;
    }
    if (size == 0) break;
    if (!need(size + 2)) return false;
    body->append(buffer_, pos, size);
    pos += size + 2;
    // Drop consumed bytes now and then so a large body does not keep two copies.
    if (pos > 1024 * 1024) {
      buffer_.erase(0, pos);
      pos = 0;
    }
  }
  // Trailers end with an empty line.
  while (true) {
    std::string_view line;
    if (!read_line(&line)) return false;
    if (line.empty()) break;
  }
  buffer_.erase(0, pos);
  return true;
}

bool HttpClient::ReadBody(const HttpRequest& request, HttpResponse* response, bool* close_after,
                          std::string* error) {
  const std::string* connection = response->Header("Connection");
  if (last_http10_) {
    *close_after = connection == nullptr || !ContainsTokenIgnoreCase(*connection, "keep-alive");
  } else {
    *close_after = connection != nullptr && ContainsTokenIgnoreCase(*connection, "close");
  }
  response->body.clear();
  int status = response->status;
  if (request.method == "HEAD" || status == 204 || status == 304 ||
      (status >= 100 && status < 200)) {
    return true;
  }
  const std::string* te = response->Header("Transfer-Encoding");
  if (te != nullptr && ContainsTokenIgnoreCase(*te, "chunked")) {
    return ReadChunked(&response->body, error);
  }
  const std::string* cl = response->Header("Content-Length");
  if (cl != nullptr) {
    char* end = nullptr;
    unsigned long long length = strtoull(cl->c_str(), &end, 10);
    if (end == cl->c_str()) {
      *error = "malformed Content-Length";
      return false;
    }
    while (buffer_.size() < length) {
      long n = ReadMore(error);
      if (n < 0) return false;
      if (n == 0) {
        *error = "connection closed after " + std::to_string(buffer_.size()) + " of " +
                 std::to_string(length) + " body bytes";
        return false;
      }
    }
    response->body.assign(buffer_, 0, length);
    buffer_.erase(0, length);
    return true;
  }
  // No framing: the body runs until the server closes the connection.
  while (true) {
    long n = ReadMore(error);
    if (n < 0) return false;
    if (n == 0) break;
  }
  response->body.swap(buffer_);
  buffer_.clear();
  *close_after = true;
  return true;
}

std::string HttpClient::SerializeHead(const HttpRequest& request) const {
  std::string head;
  head.reserve(256);
  head.append(request.method).append(" ").append(request.target).append(" HTTP/1.1\r\n");
  bool has_host = false;
  for (const auto& [name, value] : request.headers) {
    if (EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding")) {
      continue;  // the client frames the body itself
    }
    if (EqualsIgnoreCase(name, "Host")) has_host = true;
    head.append(name).append(": ").append(value).append("\r\n");
  }
  if (!has_host) head.append("Host: ").append(endpoint_.HostHeader()).append("\r\n");
  if (!request.body.empty() || (request.method != "GET" && request.method != "HEAD")) {
    head.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  }
  head.append("\r\n");
  return head;
}

HttpClient::Attempt HttpClient::ReadResponse(const HttpRequest& request, HttpResponse* response,
                                             bool* close_after, std::string* error) {
  bool saw_any_byte = false;
  interrupted_ = false;
  do {
    if (!ReadHead(response, &saw_any_byte, error)) {
      return saw_any_byte || interrupted_ ? Attempt::kFailed : Attempt::kRetryOnFreshConnection;
    }
  } while (response->status >= 100 && response->status < 200);
  if (!ReadBody(request, response, close_after, error)) return Attempt::kFailed;
  return Attempt::kOk;
}

HttpClient::Attempt HttpClient::SendOnce(const HttpRequest& request, HttpResponse* response,
                                         std::string* error) {
  std::string head = SerializeHead(request);
  struct iovec parts[2];
  parts[0].iov_base = head.data();
  parts[0].iov_len = head.size();
  parts[1].iov_base = const_cast<char*>(request.body.data());
  parts[1].iov_len = request.body.size();
  if (!WriteAll(fd_, parts, request.body.empty() ? 1 : 2, error)) {
    return errno == EINTR ? Attempt::kFailed : Attempt::kRetryOnFreshConnection;
  }
  bool close_after = false;
  Attempt attempt = ReadResponse(request, response, &close_after, error);
  if (attempt == Attempt::kOk && close_after) Close();
  return attempt;
}

Status HttpClient::Open(bool* reused) {
  *reused = fd_ >= 0;
  if (*reused) return Status::Ok();
  int err = 0;
  return OpenOnce(&err);
}

Status HttpClient::Failed(const HttpRequest& request, const std::string& error) {
  Close();
  return Status::Error(request.method + " " + request.target + " to " + endpoint_.Describe() +
                       ": " + error);
}

Status HttpClient::Send(const HttpRequest& request, HttpResponse* response, bool abortable) {
  abortable_ = abortable;
  watch_failed_ = false;
  bool reused = false;
  if (Status st = Open(&reused); !st.ok()) return st;
  std::string error;
  Attempt attempt = SendOnce(request, response, &error);
  if (attempt == Attempt::kRetryOnFreshConnection && reused && !watch_failed_) {
    // The peer closed the idle keep-alive connection; one fresh try.
    Close();
    if (Status st = Open(&reused); !st.ok()) return st;
    error.clear();
    attempt = SendOnce(request, response, &error);
  }
  if (attempt == Attempt::kOk) return Status::Ok();
  return Failed(request, error);
}

Status HttpClient::SendPipelined(const HttpRequest& first, HttpResponse* first_response,
                                 const HttpRequest& second, HttpResponse* second_response,
                                 bool abortable) {
  abortable_ = false;
  watch_failed_ = false;
  bool reused = false;
  if (Status st = Open(&reused); !st.ok()) return st;
  std::string head1 = SerializeHead(first);
  std::string head2 = SerializeHead(second);
  std::string error;
  Attempt attempt = Attempt::kRetryOnFreshConnection;
  bool close_after = false;
  for (int attempt_no = 0; attempt_no < 2; ++attempt_no) {
    struct iovec parts[4];
    int n = 0;
    auto add = [&](const std::string& s) {
      if (s.empty()) return;
      parts[n].iov_base = const_cast<char*>(s.data());
      parts[n].iov_len = s.size();
      ++n;
    };
    add(head1);
    add(first.body);
    add(head2);
    add(second.body);
    error.clear();
    if (!WriteAll(fd_, parts, n, &error)) {
      attempt = errno == EINTR ? Attempt::kFailed : Attempt::kRetryOnFreshConnection;
    } else {
      attempt = ReadResponse(first, first_response, &close_after, &error);
    }
    // Retried only when nothing came back on a kept connection the peer had closed.
    if (attempt != Attempt::kRetryOnFreshConnection || !reused || watch_failed_) break;
    Close();
    if (Status st = Open(&reused); !st.ok()) return st;
  }
  if (attempt != Attempt::kOk) return Failed(first, error);
  if (first_response->status < 200 || first_response->status > 299) {
    // The first was refused: the second is not waited for (it was asked on the strength
    // of the first); closing the connection withdraws it.
    Close();
    return Status::Ok();
  }
  if (close_after) {
    // The server answered the first and closed: it did not take the second.
    Close();
    return Send(second, second_response, abortable);
  }
  abortable_ = abortable;
  bool close_after_second = false;
  attempt = ReadResponse(second, second_response, &close_after_second, &error);
  if (attempt == Attempt::kRetryOnFreshConnection && !watch_failed_) {
    // Closed before a byte of the second answer: the server did not take it.
    Close();
    return Send(second, second_response, abortable);
  }
  if (attempt != Attempt::kOk) return Failed(second, error);
  if (close_after_second) Close();
  return Status::Ok();
}

}  // namespace ephemera::shim
