// functions/orders/support/store.h: a function's connection to the data store (Redis).
//
// The daemon gives every function that declares `store` prefixes (registry/README.md
// "store") its own Redis user and passes the address and credentials in
// EPHEMERA_STORE_URL: redis://user:password@host:port[/db] on the host network, or
// unix://user:password@/run/ephemera/fwd-6379.sock[?db=N] in an isolated namespace (the
// socket the daemon forwards to Redis). Store::Connect opens one blocking connection
// with hiredis (linked statically), AUTHs as that user and SELECTs the db.
//
// The user is created by the daemon when the function is created; an environment started
// in the same instant can see WRONGPASS before the daemon's ACL SETUSER lands, so AUTH is
// retried for up to 2 s on WRONGPASS (runtime/store/store_users.h). Keys outside the
// function's prefixes answer NOPERM: that is the point.
//
// KEY_PREFIX (the function's own environment, default "") is put in front of every key the
// example functions use, so tests and demos can run them under a namespace of their own.
// Thread: one thread per Store. Depends on: hiredis (synchronous API, static).
#pragma once

#include <memory>
#include <string>
#include <vector>

struct redisContext;

namespace ephemera::fn {

struct Reply {
  enum class Type { kNone, kNil, kString, kStatus, kInteger, kArray, kError };
  Type type = Type::kNone;  // kNone: no reply at all (the connection failed)
  std::string str;          // string, status and error replies
  long long integer = 0;
  std::vector<Reply> elements;

  bool ok() const { return type != Type::kNone && type != Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  // "OK", "(nil)", "(error) NOPERM ...", "3", "[a, b]".
  std::string Describe() const;
};

class Store {
 public:
  // Connects with EPHEMERA_STORE_URL; null with *error set ("EPHEMERA_STORE_URL is not set:
  // the function's spec declares no store" and the like).
  static std::unique_ptr<Store> Connect(std::string* error);
  // Connects to `url` (the two forms above).
  static std::unique_ptr<Store> ConnectUrl(const std::string& url, std::string* error);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // One command; `timeout_ms` bounds the wait for its reply (blocking pops need more than
  // their own timeout). A reply of type kNone means the connection is broken: *this is
  // unusable afterwards and last_error() says why.
  Reply Command(const std::vector<std::string>& argv, int timeout_ms = 5000);
  // MULTI, the commands, EXEC, pipelined. The EXEC reply: an array with one reply per
  // command, nil if a WATCHed key changed, an error if a command was refused (EXECABORT).
  Reply Transaction(const std::vector<std::vector<std::string>>& commands);
  const std::string& last_error() const { return last_error_; }

  // KEY_PREFIX + name.
  static std::string Key(const std::string& name);

 private:
  explicit Store(redisContext* c) : context_(c) {}
  redisContext* context_;
  std::string last_error_;
};

}  // namespace ephemera::fn
