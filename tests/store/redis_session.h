// tests/store/redis_session.h: one blocking Redis connection for a test, as a given user.
//
// Tests check what a function's Redis user may do by logging in as it (AUTH user
// password) and sending commands, and read the state the functions left in Redis. The
// daemon's own code uses runtime/redis on the loop; a test has no loop for this.
// Thread: the test's thread. Depends on: hiredis (synchronous API).
#pragma once

#include <string>
#include <vector>

#include "tests/redis/redis_server.h"

struct redisContext;

namespace ephemera::testing {

// A reply, as the test Redis server's helpers give it.
using RedisValue = RedisReplyText;

class RedisSession {
 public:
  // Connects to host:port (5 s timeouts); with a password, AUTH user password (or AUTH
  // password when `user` is empty). Check ok() / error().
  RedisSession(const std::string& host, int port, const std::string& user = "",
               const std::string& password = "");
  // Parses redis://[user:password@]host:port (what EPHEMERA_STORE_URL holds for host
  // network functions).
  static RedisSession FromUrl(const std::string& url);
  ~RedisSession();
  RedisSession(RedisSession&& other) noexcept;
  RedisSession(const RedisSession&) = delete;
  RedisSession& operator=(const RedisSession&) = delete;
  RedisSession& operator=(RedisSession&&) = delete;

  bool ok() const { return context_ != nullptr && error_.empty(); }
  // Why the connection or the AUTH failed ("" if neither).
  const std::string& error() const { return error_; }
  RedisValue Command(const std::vector<std::string>& argv);

 private:
  redisContext* context_ = nullptr;
  std::string error_;
};

// Deletes every key matching `pattern` (SCAN + DEL as the default user). Returns how many.
long long DeleteKeys(const std::string& pattern, const std::string& host = "127.0.0.1",
                     int port = 6379);

}  // namespace ephemera::testing
