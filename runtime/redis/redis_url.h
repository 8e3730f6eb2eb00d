// runtime/redis/redis_url.h: where Redis is, parsed from a URL.
//
// Accepted forms (what `--redis URL` and REDIS_URL take):
//   redis://[[user]:password@]host[:port][/db]      e.g. redis://127.0.0.1:6379, redis://:pw@h/2
//   unix://[[user]:password@]/path/to/redis.sock[?db=N]
// The user and password (percent-decoded) become AUTH at every connect (AUTH user password
// with a user, AUTH password without one, as Redis 6 ACLs expect); a db other than 0
// becomes SELECT. The port defaults to 6379. TLS (rediss://) is not supported: hiredis
// 0.14 has no TLS.
// Thread: any (pure). Depends on: core (Status).
#pragma once

#include <string>
#include <string_view>

#include "runtime/core/status.h"

namespace ephemera::redis {

inline constexpr char kDefaultRedisUrl[] = "redis://127.0.0.1:6379";

struct RedisUrl {
  std::string host = "127.0.0.1";  // TCP; empty when unix_path is set
  int port = 6379;
  std::string unix_path;  // a unix socket instead of TCP
  std::string user;       // "" = the default user
  std::string password;   // "" = no AUTH
  int db = 0;

  // The URL without the password ("redis://user:***@host:port/db"), for logs and error
  // messages: a password never reaches a log line or a client.
  std::string Redacted() const;
};

// InvalidArgument naming what is wrong ("--redis: port must be 1..65535 in ...").
Status ParseRedisUrl(std::string_view text, RedisUrl* out);

}  // namespace ephemera::redis
