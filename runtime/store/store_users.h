// runtime/store/store_users.h: the data store's Redis users, one per function.
//
// A function whose spec declares `store.prefixes` (registry/README.md "store") may read and
// write those Redis keys and nothing else. For each such function the daemon keeps a Redis
// ACL user, `ephemera-fn-<name>`:
//
//   ACL SETUSER ephemera-fn-<name> on ><password> resetkeys ~<prefix>... resetchannels
//       -@all +@read +@write +@transaction +ping +echo +hello +auth +select +quit +reset
//       +client|setname +client|getname +client|id -@dangerous -@admin -@scripting -scan
//       -randomkey -dbsize
//
// so the function can use strings, hashes, lists, sets, sorted sets, streams, expiry,
// MULTI/EXEC/WATCH and blocking pops on its keys, and gets NOPERM for any other key, for
// scripting (EVAL, FCALL, and FUNCTION LOAD/DELETE/FLUSH, which @write would otherwise
// grant), pub/sub, admin and dangerous commands (FLUSHALL, KEYS,
// CONFIG, ACL, DEBUG, ...), and for the commands that would show other keys' names
// (SCAN, RANDOMKEY, DBSIZE).
//
// The password is random (24 bytes from getrandom, hex), made once per function and daemon,
// and known at once, so a container's environment can be built without waiting for Redis
// (EnvironmentFor). Each daemon adds its own password to the user and never resets the
// others' (`>pw`, no `resetpass`): several daemons sharing one Redis and one manifest (tests,
// a demo beside them) do not lock each other's functions out. A clean shutdown removes this
// daemon's password (`<pw`); a killed daemon's password stays until the user is deleted.
//
// When: Sync() is given every function at start-up and after each CreateFunction and
// DeleteFunction. New or changed store functions get ACL SETUSER; functions that are gone
// (or no longer declare a store) get ACL DELUSER, which also disconnects their clients.
// Commands go through the daemon's runtime/redis client on the loop and never block.
// While Redis is unreachable nothing is sent; on every (re)connect every user is set again
// (a restarted Redis has forgotten them) and pending deletions are sent. A function started
// in the moment between CreateFunction and the SETUSER reply may see WRONGPASS once; the
// functions' client (functions/orders/support/store.h) retries AUTH for a second.
//
// What a container gets (EnvironmentFor), for a function with a store:
//   EPHEMERA_STORE_URL       redis://ephemera-fn-<name>:<password>@<host>:<port>[/db] on the
//                            host network; for an isolated function,
//                            unix://ephemera-fn-<name>:<password>@<dir>/fwd-<port>.sock[?db=N],
//                            the socket the sandbox forwards to Redis (runtime/sandbox/
//                            forwarder.h; ForwardFor names the target, so a store needs no
//                            `forward` entry). Not set where Redis cannot be reached (bridge,
//                            none, a daemon that reaches Redis on a unix socket).
//   EPHEMERA_STORE_USER      the ACL user's name
//   EPHEMERA_STORE_PREFIXES  the key patterns, comma-separated
// The password is visible to whoever can inspect the container (root on the host).
//
// Thread: the loop thread only. Callbacks: Shutdown's `done` runs exactly once, never from
// inside the call; dropped if the StoreUsers is destroyed first. Destroying it closes its
// Redis connection (the loop must run afterwards for libuv's close callbacks).
// Depends on: redis, registry, core.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "registry/registry.h"
#include "runtime/core/uv_handle.h"
#include "runtime/redis/redis_client.h"

namespace ephemera::store {

inline constexpr char kUserPrefix[] = "ephemera-fn-";

struct StoreOptions {
  redis::RedisUrl url;  // the daemon's Redis, as a user allowed to run ACL SETUSER
  std::string user_prefix = kUserPrefix;
  uint64_t command_timeout_ms = 2000;
};

struct StoreStats {
  uint64_t users_set = 0;      // ACL SETUSER answered OK
  uint64_t users_deleted = 0;  // ACL DELUSER answered
  uint64_t failures = 0;       // error replies and commands without an answer
};

class StoreUsers {
 public:
  StoreUsers(uv_loop_t* loop, StoreOptions options);
  ~StoreUsers();
  StoreUsers(const StoreUsers&) = delete;
  StoreUsers& operator=(const StoreUsers&) = delete;

  // Connects to Redis (and reconnects forever, see redis_client.h).
  void Start();
  // The functions that exist now: users are set for those with a store, and deleted for
  // those that had one and are gone or no longer declare it.
  void Sync(const std::vector<std::shared_ptr<const registry::FunctionSpec>>& specs);
  // The variables above for `fn`'s container ({} if it declares no store). `forward_dir` is
  // where an isolated container finds its forwarding sockets (sandbox's runtime folder).
  // The host service an isolated `fn` must be able to reach for its store: "host:port" of
  // Redis, or "" (no store, not isolated, Redis on a unix socket).
  std::string ForwardFor(const registry::FunctionSpec& fn) const;
  std::vector<std::string> EnvironmentFor(const registry::FunctionSpec& fn,
                                          const std::string& forward_dir) const;
  // Removes this daemon's password from every user it set, then calls back (also when
  // Redis is unreachable, or after the command timeout).
  void Shutdown(std::function<void()> done);

  // "ephemera-fn-<function>".
  std::string UserName(const std::string& function) const;
  // True once Redis confirmed the user of `function` as last synced.
  bool applied(const std::string& function) const;
  bool redis_ready() const { return client_->ready(); }
  const std::string& redis_url() const { return client_->url(); }
  const StoreStats& stats() const { return stats_; }

  // The ACL SETUSER arguments for `user` (exposed for tests).
  static std::vector<std::string> SetUserCommand(const std::string& user,
                                                 const std::string& password,
                                                 const std::vector<std::string>& prefixes);

 private:
  struct User {
    std::vector<std::string> prefixes;
    std::string password;
    uint64_t generation = 0;  // bumped by every change; a reply for an older one is stale
    bool applied = false;
  };

  void Apply(const std::string& function);
  void Delete(const std::string& user);
  void OnRedisState(bool ready, const Status& why);

  uv_loop_t* loop_;
  StoreOptions options_;
  std::unique_ptr<redis::Client> client_;
  std::map<std::string, User> users_;  // by function name
  std::set<std::string> to_delete_;    // user names whose DELUSER has not been answered
  StoreStats stats_;
  Timer done_timer_;  // defers Shutdown's callback when nothing has to be sent
  std::shared_ptr<bool> alive_;
};

}  // namespace ephemera::store
