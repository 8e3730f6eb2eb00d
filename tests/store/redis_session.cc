#include "tests/store/redis_session.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <cstdlib>

namespace ephemera::testing {
RedisSession::RedisSession(const std::string& host, int port, const std::string& user,
                           const std::string& password) {
  timeval tv{5, 0};
  context_ = redisConnectWithTimeout(host.c_str(), port, tv);
  if (context_ == nullptr || context_->err != 0) {
    error_ = context_ != nullptr ? context_->errstr : "cannot allocate a hiredis context";
    return;
  }
  redisSetTimeout(context_, tv);
  if (password.empty()) return;
  RedisValue auth = user.empty() ? Command({"AUTH", password}) : Command({"AUTH", user, password});
  if (!auth.ok || auth.error) error_ = "AUTH: " + auth.Describe();
}

RedisSession RedisSession::FromUrl(const std::string& url) {
  std::string rest = url.rfind("redis://", 0) == 0 ? url.substr(8) : url;
  std::string user, password;
  if (size_t at = rest.rfind('@'); at != std::string::npos) {
    std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = cred.find(':');
    user = cred.substr(0, colon);
    password = colon == std::string::npos ? "" : cred.substr(colon + 1);
  }
  size_t slash = rest.find('/');
  if (slash != std::string::npos) rest = rest.substr(0, slash);
  size_t colon = rest.rfind(':');
  std::string host = rest.substr(0, colon);
  int port = colon == std::string::npos ? 6379 : std::atoi(rest.c_str() + colon + 1);
  return RedisSession(host, port, user, password);
}

RedisSession::~RedisSession() {
  if (context_ != nullptr) redisFree(context_);
}

RedisSession::RedisSession(RedisSession&& other) noexcept
    : context_(other.context_), error_(std::move(other.error_)) {
  other.context_ = nullptr;
}

RedisValue RedisSession::Command(const std::vector<std::string>& argv) {
  if (context_ == nullptr) return {};
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(context_, static_cast<int>(args.size()), args.data(), lens.data()));
  RedisValue out;
  if (reply != nullptr) {
    out = RedisReplyFromHiredis(reply);
    freeReplyObject(reply);
  }
  return out;
}

long long DeleteKeys(const std::string& pattern, const std::string& host, int port) {
  RedisSession s(host, port);
  if (!s.ok()) return 0;
  long long deleted = 0;
  std::string cursor = "0";
  do {
    RedisValue page = s.Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (!page.ok || page.error || page.elements.size() != 2) break;
    cursor = page.elements[0].str;
    std::vector<std::string> del = {"DEL"};
    for (const RedisValue& k : page.elements[1].elements) del.push_back(k.str);
    if (del.size() > 1) deleted += s.Command(del).integer;
  } while (cursor != "0");
  return deleted;
}

}  // namespace ephemera::testing
