#include "runtime/store/store_users.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "runtime/core/log.h"

namespace ephemera::store {
namespace {

// 24 random bytes as 48 hex digits. getrandom never blocks once the kernel's pool is
// initialised (long before a daemon runs); a failure is a broken system, so the daemon
// refuses to hand out a guessable password and the function gets no store.
std::string RandomPassword() {
  unsigned char bytes[24];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      LOG_ERROR("store", "getrandom failed: %s", std::strerror(errno));
      return "";
    }
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

}  // namespace

StoreUsers::StoreUsers(uv_loop_t* loop, StoreOptions options)
    : loop_(loop),
      options_(std::move(options)),
      done_timer_(loop),
      alive_(std::make_shared<bool>(true)) {
  redis::ClientOptions co;
  co.url = options_.url;
  co.name = "ephemera-store";
  co.command_timeout_ms = options_.command_timeout_ms;
  client_ = std::make_unique<redis::Client>(loop_, co);
  client_->set_state_listener([this](bool ready, const Status& why) { OnRedisState(ready, why); });
}

StoreUsers::~StoreUsers() {
  *alive_ = false;
  done_timer_.Close();
}

void StoreUsers::Start() {
  client_->Connect();
}

std::string StoreUsers::UserName(const std::string& function) const {
  return options_.user_prefix + function;
}

bool StoreUsers::applied(const std::string& function) const {
  auto it = users_.find(function);
  return it != users_.end() && it->second.applied;
}

std::vector<std::string> StoreUsers::SetUserCommand(const std::string& user,
                                                    const std::string& password,
                                                    const std::vector<std::string>& prefixes) {
  // Rules apply left to right: the key patterns are replaced, every command is taken away,
  // then the data commands are given back and the dangerous ones taken away again. The
  // password is added, never reset (see the header: other daemons' passwords stay).
  std::vector<std::string> argv = {"ACL", "SETUSER", user, "on", ">" + password, "resetkeys"};
  for (const std::string& p : prefixes) argv.push_back("~" + p);
  for (const char* rule :
       {"resetchannels", "-@all",   "+@read",          "+@write",         "+@transaction",
        "+ping",         "+echo",   "+hello",          "+auth",           "+select",
        "+quit",         "+reset",  "+client|setname", "+client|getname", "+client|id",
        "-@dangerous",   "-@admin", "-@scripting",     "-scan",           "-randomkey",
        "-dbsize"}) {
    argv.emplace_back(rule);
  }
  return argv;
}

void StoreUsers::Sync(const std::vector<std::shared_ptr<const registry::FunctionSpec>>& specs) {
  std::set<std::string> wanted;
  for (const auto& spec : specs) {
    if (!spec || spec->store.prefixes.empty()) continue;
    wanted.insert(spec->name);
    auto [it, created] = users_.try_emplace(spec->name);
    User& u = it->second;
    if (!created && u.prefixes == spec->store.prefixes) continue;
    if (created) {
      u.password = RandomPassword();
      // A function deleted and created again before its DELUSER was answered: the delete
      // must not land after this SETUSER.
      to_delete_.erase(UserName(spec->name));
    }
    u.prefixes = spec->store.prefixes;
    u.applied = false;
    ++u.generation;
    Apply(spec->name);
  }
  for (auto it = users_.begin(); it != users_.end();) {
    if (wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    std::string user = UserName(it->first);
    it = users_.erase(it);
    to_delete_.insert(user);
    Delete(user);
  }
}

void StoreUsers::Apply(const std::string& function) {
  auto it = users_.find(function);
  if (it == users_.end() || it->second.password.empty() || !client_->ready()) return;
  const User& u = it->second;
  uint64_t generation = u.generation;
  std::weak_ptr<bool> alive = alive_;
  client_->Command(SetUserCommand(UserName(function), u.password, u.prefixes),
                   [this, alive, function, generation](Status s, redis::Reply reply) {
                     if (alive.expired()) return;
                     auto it = users_.find(function);
                     if (it == users_.end() || it->second.generation != generation)
                       return;  // stale
                     if (!s.ok()) {
                       ++stats_.failures;
                       LOG_WARN(
                           "store", "ACL SETUSER %s failed: %s%s%s (set again at the next connect)",
                           UserName(function).c_str(), s.message().c_str(),
                           reply.is_error() ? ": " : "", reply.is_error() ? reply.str.c_str() : "");
                       return;
                     }
                     ++stats_.users_set;
                     it->second.applied = true;
                     LOG_DEBUG("store", "user %s may use %s", UserName(function).c_str(),
                               Join(it->second.prefixes).c_str());
                   });
}

void StoreUsers::Delete(const std::string& user) {
  if (!client_->ready()) return;  // sent at the next connect
  std::weak_ptr<bool> alive = alive_;
  client_->Command({"ACL", "DELUSER", user}, [this, alive, user](Status s, redis::Reply) {
    if (alive.expired()) return;
    if (!s.ok()) {
      ++stats_.failures;
      LOG_WARN("store", "ACL DELUSER %s failed: %s (sent again at the next connect)", user.c_str(),
               s.message().c_str());
      return;
    }
    ++stats_.users_deleted;
    to_delete_.erase(user);
  });
}

void StoreUsers::OnRedisState(bool ready, const Status& why) {
  if (!ready) {
    LOG_WARN("store", "Redis connection lost (%s): function users are set again once it is back",
             why.message().c_str());
    for (auto& [name, u] : users_) u.applied = false;
    return;
  }
  // A restarted Redis has no users of ours; a running one gets the same rules again.
  for (auto& [name, u] : users_) {
    u.applied = false;
    ++u.generation;
    Apply(name);
  }
  for (const std::string& user : std::set<std::string>(to_delete_)) Delete(user);
}

std::string StoreUsers::ForwardFor(const registry::FunctionSpec& fn) const {
  const redis::RedisUrl& r = options_.url;
  if (fn.store.prefixes.empty() || fn.network != "isolated" || !r.unix_path.empty()) return "";
  std::string host = r.host == "localhost" ? "127.0.0.1" : r.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(r.port);
}

std::vector<std::string> StoreUsers::EnvironmentFor(const registry::FunctionSpec& fn,
                                                    const std::string& forward_dir) const {
  auto it = users_.find(fn.name);
  if (fn.store.prefixes.empty() || it == users_.end() || it->second.password.empty()) return {};
  const User& u = it->second;
  const redis::RedisUrl& r = options_.url;
  std::string user = UserName(fn.name);
  std::string credentials = user + ":" + u.password + "@";
  std::string url;
  if (fn.network == "host" && r.unix_path.empty()) {
    std::string host = r.host.find(':') != std::string::npos ? "[" + r.host + "]" : r.host;
    url = "redis://" + credentials + host + ":" + std::to_string(r.port);
    if (r.db != 0) url += "/" + std::to_string(r.db);
  } else if (!ForwardFor(fn).empty()) {
    // The sandbox forwards <forward_dir>/fwd-<port>.sock to Redis for this function
    // (runtime/sandbox/environment.cc, OpenForwarders).
    url = "unix://" + credentials + forward_dir + "/fwd-" + std::to_string(r.port) + ".sock";
    if (r.db != 0) url += "?db=" + std::to_string(r.db);
  }
  std::vector<std::string> env;
  if (!url.empty()) env.push_back("EPHEMERA_STORE_URL=" + url);
  env.push_back("EPHEMERA_STORE_USER=" + user);
  env.push_back("EPHEMERA_STORE_PREFIXES=" + Join(u.prefixes));
  return env;
}

void StoreUsers::Shutdown(std::function<void()> done) {
  auto left = std::make_shared<size_t>(0);
  auto finish = std::make_shared<std::function<void()>>(std::move(done));
  if (client_->ready()) {
    std::weak_ptr<bool> alive = alive_;
    for (const auto& [name, u] : users_) {
      if (u.password.empty()) continue;
      ++*left;
      client_->Command({"ACL", "SETUSER", UserName(name), "<" + u.password},
                       [alive, left, finish](Status, redis::Reply) {
                         if (alive.expired()) return;
                         if (--*left == 0 && *finish) (*finish)();
                       });
    }
  }
  if (*left == 0) {
    // Nothing to send: still called back from a later loop turn (docs/style.md rule 5).
    done_timer_.Start(0, [finish] {
      if (*finish) (*finish)();
    });
  }
}

}  // namespace ephemera::store
