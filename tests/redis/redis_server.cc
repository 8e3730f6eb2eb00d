#include "tests/redis/redis_server.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace ephemera::testing {
RedisReplyText RedisReplyFromHiredis(const redisReply* r) {
  RedisReplyText out;
  out.ok = true;
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR:
      out.error = true;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER: out.integer = r->integer; break;
    case REDIS_REPLY_NIL: out.nil = true; break;
    case REDIS_REPLY_ARRAY:
      for (size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(RedisReplyFromHiredis(r->element[i]));
      }
      break;
    default: break;
  }
  return out;
}

std::string RedisReplyText::Describe() const {
  if (!ok) return "(no reply)";
  if (error) return "(error) " + str;
  if (nil) return "(nil)";
  if (!elements.empty()) {
    std::string s = "[";
    for (size_t i = 0; i < elements.size(); ++i) s += (i ? ", " : "") + elements[i].Describe();
    return s + "]";
  }
  if (!str.empty()) return str;
  return std::to_string(integer);
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

RedisServer::~RedisServer() {
  if (pid_ > 0) Kill();
  if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
}

std::string RedisServer::url() const {
  std::string auth = options_.password.empty() ? "" : ":" + options_.password + "@";
  return "redis://" + auth + "127.0.0.1:" + std::to_string(port_);
}

std::string RedisServer::Start(const Options& options) {
  if (pid_ > 0) return "already running";
  options_ = options;
  if (dir_.empty()) {
    char tmpl[] = "/tmp/ephemera-redis-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
  }
  if (port_ == 0) port_ = FreePort();
  std::vector<std::string> args = {"redis-server", "--port",    std::to_string(port_),
                                   "--bind",       "127.0.0.1", "--dir",
                                   dir_,           "--save",    "",
                                   "--daemonize",  "no",        "--enable-debug-command",
                                   "yes",          "--logfile", dir_ + "/redis.log"};
  if (options_.persist) {
    args.insert(args.end(), {"--appendonly", "yes", "--appendfsync", "everysec"});
  } else {
    args.insert(args.end(), {"--appendonly", "no"});
  }
  if (!options_.password.empty()) args.insert(args.end(), {"--requirepass", options_.password});
  pid_ = fork();
  if (pid_ == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("redis-server", argv.data());
    _exit(127);
  }
  // Bounded wait for the condition "it answers PING" (not a sleep for timing).
  for (int i = 0; i < 500; ++i) {
    RedisReplyText r = Command({"PING"});
    if (r.ok && (r.str == "PONG" || (r.error && r.str.rfind("NOAUTH", 0) == 0))) return "";
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return "redis-server exited before answering (see " + dir_ + "/redis.log)";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "redis-server did not answer PING within 5 s";
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void RedisServer::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

RedisReplyText RedisServer::Command(const std::vector<std::string>& argv) const {
  timeval tv{5, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    return {};
  }
  redisSetTimeout(c, tv);
  if (!options_.password.empty()) {
    auto* auth = static_cast<redisReply*>(redisCommand(c, "AUTH %s", options_.password.c_str()));
    if (auth != nullptr) freeReplyObject(auth);
  }
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lens.data()));
  RedisReplyText out;
  if (reply != nullptr) {
    out = RedisReplyFromHiredis(reply);
    freeReplyObject(reply);
  }
  redisFree(c);
  return out;
}

}  // namespace ephemera::testing
