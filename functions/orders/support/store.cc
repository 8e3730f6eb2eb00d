#include "functions/orders/support/store.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runtime/redis/hiredis_reply.h"

namespace ephemera::fn {
namespace {

Reply Convert(const redisReply* r) {
  return redis::CopyHiredisReply<Reply>(r);
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

struct Url {
  std::string host;
  int port = 6379;
  std::string unix_path;
  std::string user, password;
  int db = 0;
};

bool ParseUrl(const std::string& text, Url* u, std::string* error) {
  std::string rest;
  bool is_unix = false;
  if (text.rfind("redis://", 0) == 0) {
    rest = text.substr(8);
  } else if (text.rfind("unix://", 0) == 0) {
    rest = text.substr(7);
    is_unix = true;
  } else {
    *error = "EPHEMERA_STORE_URL must start with redis:// or unix://";
    return false;
  }
  if (size_t at = rest.rfind('@'); at != std::string::npos) {
    std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = cred.find(':');
    u->user = PercentDecode(cred.substr(0, colon));
    if (colon != std::string::npos) u->password = PercentDecode(cred.substr(colon + 1));
  }
  if (is_unix) {
    size_t q = rest.find("?db=");
    u->unix_path = rest.substr(0, q);
    if (q != std::string::npos) u->db = std::atoi(rest.c_str() + q + 4);
    if (u->unix_path.empty() || u->unix_path[0] != '/') {
      *error = "EPHEMERA_STORE_URL: a unix:// URL needs an absolute socket path";
      return false;
    }
    return true;
  }
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    u->db = std::atoi(rest.c_str() + slash + 1);
    rest = rest.substr(0, slash);
  }
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) {
      *error = "EPHEMERA_STORE_URL: unterminated [IPv6] host";
      return false;
    }
    u->host = rest.substr(1, close - 1);
    if (close + 2 <= rest.size() && rest[close + 1] == ':')
      u->port = std::atoi(rest.c_str() + close + 2);
  } else {
    size_t colon = rest.rfind(':');
    u->host = rest.substr(0, colon);
    if (colon != std::string::npos) u->port = std::atoi(rest.c_str() + colon + 1);
  }
  if (u->host == "localhost") u->host = "127.0.0.1";
  return true;
}

// A connected stream socket, or -1 with *error set. No name lookups: the static binary
// has no resolver, and the daemon always passes an address.
int ConnectSocket(const Url& u, std::string* error) {
  int fd = -1;
  int rc = -1;
  if (!u.unix_path.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (u.unix_path.size() >= sizeof addr.sun_path) {
      *error = "socket path too long: " + u.unix_path;
      return -1;
    }
    std::memcpy(addr.sun_path, u.unix_path.c_str(), u.unix_path.size() + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    sockaddr_in a4{};
    sockaddr_in6 a6{};
    if (inet_pton(AF_INET, u.host.c_str(), &a4.sin_addr) == 1) {
      a4.sin_family = AF_INET;
      a4.sin_port = htons(static_cast<uint16_t>(u.port));
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0) rc = connect(fd, reinterpret_cast<sockaddr*>(&a4), sizeof a4);
    } else if (inet_pton(AF_INET6, u.host.c_str(), &a6.sin6_addr) == 1) {
      a6.sin6_family = AF_INET6;
      a6.sin6_port = htons(static_cast<uint16_t>(u.port));
      fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0) rc = connect(fd, reinterpret_cast<sockaddr*>(&a6), sizeof a6);
    } else {
      *error = "EPHEMERA_STORE_URL: host " + u.host + " is not an IP address";
      return -1;
    }
    int one = 1;
    if (rc == 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (rc != 0) {
    *error = std::string("cannot connect to Redis at ") +
             (u.unix_path.empty() ? u.host + ":" + std::to_string(u.port) : u.unix_path) + ": " +
             std::strerror(errno);
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

void SleepMs(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace

std::string Reply::Describe() const {
  switch (type) {
    case Type::kNone: return "(no reply)";
    case Type::kNil: return "(nil)";
    case Type::kError: return "(error) " + str;
    case Type::kInteger: return std::to_string(integer);
    case Type::kArray: {
      std::string s = "[";
      for (size_t i = 0; i < elements.size(); ++i) s += (i ? ", " : "") + elements[i].Describe();
      return s + "]";
    }
    default: return str;
  }
}

std::unique_ptr<Store> Store::Connect(std::string* error) {
  const char* url = std::getenv("EPHEMERA_STORE_URL");
  if (url == nullptr || *url == '\0') {
    const char* user = std::getenv("EPHEMERA_STORE_USER");
    *error = user != nullptr
                 ? "EPHEMERA_STORE_URL is not set: the daemon cannot reach Redis from this "
                   "function's network (an isolated function must forward the Redis port)"
                 : "EPHEMERA_STORE_URL is not set: the function's spec declares no store";
    return nullptr;
  }
  return ConnectUrl(url, error);
}

std::unique_ptr<Store> Store::ConnectUrl(const std::string& text, std::string* error) {
  Url u;
  if (!ParseUrl(text, &u, error)) return nullptr;
  // AUTH is retried on WRONGPASS (the user may be a moment old); the connection is made
  // again each time, since Redis may close it after a failed AUTH.
  for (int waited = 0;; waited += 50) {
    int fd = ConnectSocket(u, error);
    if (fd < 0) return nullptr;
    redisContext* c = redisConnectFd(fd);
    if (c == nullptr || c->err != 0) {
      *error = c != nullptr ? c->errstr : "hiredis: out of memory";
      if (c != nullptr) redisFree(c);
      return nullptr;
    }
    std::unique_ptr<Store> store(new Store(c));
    Reply auth;
    if (!u.password.empty()) {
      auth = u.user.empty() ? store->Command({"AUTH", u.password})
                            : store->Command({"AUTH", u.user, u.password});
      if (auth.is_error() && auth.str.rfind("WRONGPASS", 0) == 0 && waited < 2000) {
        SleepMs(50);
        continue;
      }
      if (!auth.ok()) {
        *error = "Redis AUTH as " + u.user + ": " + auth.Describe();
        return nullptr;
      }
    }
    if (u.db != 0) {
      Reply sel = store->Command({"SELECT", std::to_string(u.db)});
      if (!sel.ok()) {
        *error = "Redis SELECT " + std::to_string(u.db) + ": " + sel.Describe();
        return nullptr;
      }
    }
    return store;
  }
}

Store::~Store() {
  if (context_ != nullptr) redisFree(context_);
}

Reply Store::Command(const std::vector<std::string>& argv, int timeout_ms) {
  if (context_ == nullptr || context_->err != 0) {
    if (last_error_.empty()) last_error_ = "the Redis connection is broken";
    return {};
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  redisSetTimeout(context_, tv);
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(context_, static_cast<int>(args.size()), args.data(), lens.data()));
  if (r == nullptr) {
    last_error_ = std::string("Redis ") + (argv.empty() ? "" : argv[0]) + ": " +
                  (context_->err != 0 ? context_->errstr : "no reply");
    return {};
  }
  Reply out = Convert(r);
  freeReplyObject(r);
  return out;
}

Reply Store::Transaction(const std::vector<std::vector<std::string>>& commands) {
  if (context_ == nullptr || context_->err != 0) return {};
  auto append = [&](const std::vector<std::string>& argv) {
    std::vector<const char*> args;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(context_, static_cast<int>(args.size()), args.data(), lens.data());
  };
  timeval tv{5, 0};
  redisSetTimeout(context_, tv);
  append({"MULTI"});
  for (const auto& c : commands) append(c);
  append({"EXEC"});
  Reply exec;
  for (size_t i = 0; i < commands.size() + 2; ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      last_error_ =
          std::string("Redis transaction: ") + (context_->err != 0 ? context_->errstr : "no reply");
      return {};
    }
    auto* r = static_cast<redisReply*>(raw);
    if (i == commands.size() + 1) exec = Convert(r);
    freeReplyObject(r);
  }
  return exec;
}

std::string Store::Key(const std::string& name) {
  const char* prefix = std::getenv("KEY_PREFIX");
  return std::string(prefix != nullptr ? prefix : "") + name;
}

}  // namespace ephemera::fn
