// tests/redis/redis_server.h: a private redis-server for one test.
//
// Tests that stop, kill, pause or restart Redis must never touch the shared one
// (127.0.0.1:6379): each RedisServer runs its own redis-server child on a free loopback
// port with its own directory under /tmp, removed at destruction. Persistence as the
// daemon's setup uses it (append-only file, fsync every second) when `persist` is set.
// Commands from the test itself go through a blocking hiredis connection (tests have no
// loop of their own for this; the daemon's code uses runtime/redis).
// Thread: the test's thread. Depends on: hiredis (synchronous API), redis-server on PATH.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

struct redisReply;  // hiredis

namespace ephemera::testing {

struct RedisReplyText {
  bool ok = false;        // a reply came (possibly an error reply)
  bool error = false;     // an error reply
  bool nil = false;       // a nil reply
  long long integer = 0;  // integer replies
  std::string str;        // string/status/error replies
  std::vector<RedisReplyText> elements;
  // "OK", "(nil)", "(error) NOPERM ...", "42", "[a, b]": for assertion messages.
  std::string Describe() const;
};

// A copy of a hiredis reply (hiredis frees its own).
RedisReplyText RedisReplyFromHiredis(const redisReply* r);

class RedisServer {
 public:
  struct Options {
    bool persist = false;  // appendonly yes, appendfsync everysec
    std::string password;  // requirepass, "" = none
  };
  RedisServer() = default;
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts redis-server on a free port (the same port and directory on a restart) and
  // waits until it answers PING. Returns "" or a message.
  std::string Start(const Options& options);
  std::string Start() { return Start(Options{}); }
  // SIGTERM and wait (Redis writes nothing more: no RDB, persistence as configured).
  void Stop();
  // SIGKILL and wait: what survives is what the append-only file had fsynced.
  void Kill();
  // SIGSTOP / SIGCONT: Redis keeps its sockets but answers nothing while paused.
  void Pause();
  void Resume();
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  std::string url() const;  // redis://127.0.0.1:PORT (with the password if any)
  const std::string& dir() const { return dir_; }

  // One command over a blocking connection (opened per call; 5 s timeout).
  RedisReplyText Command(const std::vector<std::string>& argv) const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
  Options options_;
};

// A loopback TCP port nobody listens on right now.
int FreePort();

}  // namespace ephemera::testing
