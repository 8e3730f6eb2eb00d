// Tests of runtime/store: the per-function Redis ACL users. The scoping tests log in as the
// function's user on the shared Redis (127.0.0.1:6379, started by scripts/setup.sh) with a
// user prefix and key prefix of their own, removed afterwards; the tests that stop Redis
// use a private redis-server (tests/redis/redis_server.h).
#include "runtime/store/store_users.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>

#include "runtime/core/ids.h"
#include "tests/docker/loop_fixture.h"
#include "tests/redis/redis_server.h"
#include "tests/store/redis_session.h"

namespace ephemera::store {
namespace {

using registry::FunctionSpec;
using testing::RedisSession;
using testing::RedisValue;

std::shared_ptr<const FunctionSpec> Spec(const std::string& name, std::vector<std::string> prefixes,
                                         const std::string& network = "host",
                                         std::vector<std::string> forward = {}) {
  auto s = std::make_shared<FunctionSpec>();
  s->name = name;
  s->image = "ephemera/kv:latest";
  s->network = network;
  s->forward = std::move(forward);
  s->store.prefixes = std::move(prefixes);
  return s;
}

// The value of NAME=value in `env`, or "".
std::string Var(const std::vector<std::string>& env, const std::string& name) {
  for (const std::string& e : env) {
    if (e.rfind(name + "=", 0) == 0) return e.substr(name.size() + 1);
  }
  return "";
}

// The password inside redis://user:password@host:port.
std::string PasswordOf(const std::string& url) {
  size_t start = url.find(':', url.find("://") + 3) + 1;
  return url.substr(start, url.find('@') - start);
}

bool UserExists(RedisSession& admin, const std::string& user) {
  RedisValue r = admin.Command({"ACL", "GETUSER", user});
  return r.ok && !r.error && !r.nil;
}

class StoreUsersTest : public testing::LoopTest {
 protected:
  void SetUp() override {
    LoopTest::SetUp();
    // Unique per test run, so parallel runs and other daemons never meet these names.
    tag_ = "st" + std::to_string(getpid()) + "-" + NewRequestId().substr(0, 8);
    user_prefix_ = "ephemera-test-" + tag_ + "-";
    key_prefix_ = tag_ + ":";
  }
  void BeforeLoopClose() override {
    users_.reset();
    other_.reset();
  }
  void TearDown() override {
    RedisSession admin("127.0.0.1", 6379);
    RedisValue list = admin.Command({"ACL", "USERS"});
    for (const RedisValue& u : list.elements) {
      if (u.str.rfind(user_prefix_, 0) == 0) admin.Command({"ACL", "DELUSER", u.str});
    }
    testing::DeleteKeys(key_prefix_ + "*");
    LoopTest::TearDown();
  }

  std::unique_ptr<StoreUsers> Make(const std::string& url = "redis://127.0.0.1:6379") {
    StoreOptions o;
    EXPECT_TRUE(redis::ParseRedisUrl(url, &o.url).ok());
    o.user_prefix = user_prefix_;
    o.command_timeout_ms = 1000;
    auto u = std::make_unique<StoreUsers>(&loop_, o);
    u->Start();
    return u;
  }

  std::string tag_, user_prefix_, key_prefix_;
  std::unique_ptr<StoreUsers> users_, other_;
};

TEST(StoreUsersCommand, AddsAPasswordScopesKeysAndTakesDangerousCommandsAway) {
  auto argv = StoreUsers::SetUserCommand("ephemera-fn-a", "pw", {"order:*", "order-number"});
  ASSERT_GE(argv.size(), 8u);
  EXPECT_EQ(argv[0], "ACL");
  EXPECT_EQ(argv[1], "SETUSER");
  EXPECT_EQ(argv[2], "ephemera-fn-a");
  auto has = [&](const std::string& rule) {
    return std::find(argv.begin(), argv.end(), rule) != argv.end();
  };
  auto pos = [&](const std::string& rule) {
    return std::find(argv.begin(), argv.end(), rule) - argv.begin();
  };
  EXPECT_TRUE(has(">pw"));
  EXPECT_FALSE(has("resetpass")) << "other daemons' passwords must stay";
  EXPECT_FALSE(has("reset"));
  EXPECT_TRUE(has("~order:*"));
  EXPECT_TRUE(has("~order-number"));
  EXPECT_LT(pos("resetkeys"), pos("~order:*"));
  EXPECT_LT(pos("-@all"), pos("+@read"));
  EXPECT_LT(pos("+@write"), pos("-@dangerous")) << "dangerous commands are taken away last";
  EXPECT_FALSE(has("+@all"));
  EXPECT_FALSE(has("~*"));
}

TEST_F(StoreUsersTest, AFunctionUserReachesItsKeysAndGetsNopermOutsideThem) {
  users_ = Make();
  users_->Sync({Spec("orders", {key_prefix_ + "order:*", key_prefix_ + "order-number"})});
  ASSERT_TRUE(RunUntil([&] { return users_->applied("orders"); }, 10000));
  std::vector<std::string> env = users_->EnvironmentFor(
      *Spec("orders", {key_prefix_ + "order:*", key_prefix_ + "order-number"}), "/run/ephemera");
  std::string url = Var(env, "EPHEMERA_STORE_URL");
  ASSERT_EQ(url.rfind("redis://" + user_prefix_ + "orders:", 0), 0u) << url;
  EXPECT_NE(url.find("@127.0.0.1:6379"), std::string::npos) << url;
  EXPECT_EQ(Var(env, "EPHEMERA_STORE_USER"), user_prefix_ + "orders");
  EXPECT_EQ(Var(env, "EPHEMERA_STORE_PREFIXES"),
            key_prefix_ + "order:*," + key_prefix_ + "order-number");

  RedisSession fn = RedisSession::FromUrl(url);
  ASSERT_TRUE(fn.ok()) << fn.error();
  // Inside its prefixes: strings, hashes, counters, transactions, blocking pops.
  EXPECT_EQ(fn.Command({"SET", key_prefix_ + "order:1", "x"}).Describe(), "OK");
  EXPECT_EQ(fn.Command({"GET", key_prefix_ + "order:1"}).Describe(), "x");
  EXPECT_EQ(fn.Command({"HSET", key_prefix_ + "order:2", "status", "new"}).integer, 1);
  EXPECT_EQ(fn.Command({"INCR", key_prefix_ + "order-number"}).integer, 1);
  EXPECT_EQ(fn.Command({"MULTI"}).Describe(), "OK");
  EXPECT_EQ(fn.Command({"RPUSH", key_prefix_ + "order:3", "a"}).Describe(), "QUEUED");
  EXPECT_EQ(fn.Command({"EXEC"}).Describe(), "[1]");
  EXPECT_EQ(fn.Command({"BLPOP", key_prefix_ + "order:3", "1"}).Describe(),
            "[" + key_prefix_ + "order:3, a]");
  // Outside: other keys, even ones that merely look alike.
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"GET", key_prefix_ + "stock:apple"},
           {"SET", key_prefix_ + "stock:apple", "1"},
           {"GET", key_prefix_ + "order-number-2"},
           {"DEL", "ephemera:events"},
           {"HGETALL", key_prefix_ + "orders"},
       }) {
    RedisValue r = fn.Command(cmd);
    EXPECT_TRUE(r.error && r.str.rfind("NOPERM", 0) == 0)
        << cmd[0] << " " << cmd[1] << ": " << r.Describe();
  }
  // Commands that would reach beyond its keys.
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"FLUSHALL"},
           {"KEYS", "*"},
           {"SCAN", "0"},
           {"RANDOMKEY"},
           {"DBSIZE"},
           {"CONFIG", "GET", "*"},
           {"ACL", "LIST"},
           {"EVAL", "return 1", "0"},
           {"FUNCTION", "FLUSH"},
           {"FUNCTION", "DELETE", "lib"},
           {"PUBLISH", "c", "m"},
           {"SUBSCRIBE", "c"},
           {"CLIENT", "KILL", "ID", "1"},
       }) {
    RedisValue r = fn.Command(cmd);
    EXPECT_TRUE(r.error && r.str.rfind("NOPERM", 0) == 0) << cmd[0] << ": " << r.Describe();
  }
  EXPECT_EQ(fn.Command({"SET", key_prefix_ + "stock:apple", "1"}).str.find("NOPERM"), 0u);
  RedisSession admin("127.0.0.1", 6379);
  EXPECT_TRUE(admin.Command({"GET", key_prefix_ + "stock:apple"}).nil)
      << "the refused write did not happen";

  // Deleting the function deletes its user, and its connection with it.
  users_->Sync({});
  ASSERT_TRUE(RunUntil([&] { return users_->stats().users_deleted == 1; }, 10000));
  EXPECT_FALSE(UserExists(admin, user_prefix_ + "orders"));
  RedisValue after = fn.Command({"GET", key_prefix_ + "order:1"});
  EXPECT_FALSE(after.ok && after.str == "x")
      << "the deleted user's connection no longer reads: " << after.Describe();
  RedisSession again = RedisSession::FromUrl(url);
  EXPECT_FALSE(again.ok()) << "the deleted user cannot log in";
}

TEST_F(StoreUsersTest, ChangedPrefixesReplaceTheOldOnes) {
  users_ = Make();
  users_->Sync({Spec("f", {key_prefix_ + "a:*"})});
  ASSERT_TRUE(RunUntil([&] { return users_->applied("f"); }, 10000));
  std::string url =
      Var(users_->EnvironmentFor(*Spec("f", {key_prefix_ + "a:*"}), "/x"), "EPHEMERA_STORE_URL");
  users_->Sync({Spec("f", {key_prefix_ + "b:*"})});
  EXPECT_FALSE(users_->applied("f"));
  ASSERT_TRUE(RunUntil([&] { return users_->applied("f"); }, 10000));
  RedisSession fn = RedisSession::FromUrl(url);
  ASSERT_TRUE(fn.ok()) << fn.error() << ": the password stays across a change";
  EXPECT_EQ(fn.Command({"SET", key_prefix_ + "b:1", "v"}).Describe(), "OK");
  EXPECT_EQ(fn.Command({"SET", key_prefix_ + "a:1", "v"}).str.find("NOPERM"), 0u);
}

TEST_F(StoreUsersTest, FunctionsWithoutAStoreGetNoUserAndNoVariables) {
  users_ = Make();
  users_->Sync({Spec("plain", {}), Spec("f", {key_prefix_ + "a:*"})});
  ASSERT_TRUE(RunUntil([&] { return users_->applied("f"); }, 10000));
  EXPECT_TRUE(users_->EnvironmentFor(*Spec("plain", {}), "/x").empty());
  RedisSession admin("127.0.0.1", 6379);
  EXPECT_FALSE(UserExists(admin, user_prefix_ + "plain"));
  EXPECT_TRUE(UserExists(admin, user_prefix_ + "f"));
}

// An isolated function with a store reaches Redis through a socket the sandbox forwards
// for it (ForwardFor names the target), with or without a `forward` entry of its own.
TEST_F(StoreUsersTest, IsolatedFunctionsReachRedisThroughTheForwardSocketMadeForThem) {
  users_ = Make("redis://127.0.0.1:6379/2");
  auto iso = Spec("iso", {key_prefix_ + "a:*"}, "isolated", {"6379"});
  auto iso_plain = Spec("iso2", {key_prefix_ + "a:*"}, "isolated");
  auto no_store = Spec("iso3", {}, "isolated");
  auto bridge = Spec("br", {key_prefix_ + "a:*"}, "bridge");
  auto host = Spec("h", {key_prefix_ + "a:*"});
  users_->Sync({iso, iso_plain, no_store, bridge, host});
  for (const auto& fn : {iso, iso_plain}) {
    std::string url = Var(users_->EnvironmentFor(*fn, "/run/ephemera"), "EPHEMERA_STORE_URL");
    EXPECT_EQ(url.rfind("unix://" + user_prefix_ + fn->name + ":", 0), 0u) << url;
    EXPECT_NE(url.find("@/run/ephemera/fwd-6379.sock?db=2"), std::string::npos) << url;
    EXPECT_EQ(users_->ForwardFor(*fn), "127.0.0.1:6379") << fn->name;
  }
  EXPECT_EQ(users_->ForwardFor(*no_store), "") << "no store, nothing forwarded";
  EXPECT_EQ(users_->ForwardFor(*host), "") << "the host network needs no forward";
  EXPECT_EQ(users_->ForwardFor(*bridge), "");
  auto bridge_env = users_->EnvironmentFor(*bridge, "/run/ephemera");
  EXPECT_EQ(Var(bridge_env, "EPHEMERA_STORE_URL"), "");
  EXPECT_EQ(Var(bridge_env, "EPHEMERA_STORE_USER"), user_prefix_ + "br");
  EXPECT_NE(Var(users_->EnvironmentFor(*host, "/run/ephemera"), "EPHEMERA_STORE_URL")
                .find("@127.0.0.1:6379/2"),
            std::string::npos);
  ASSERT_TRUE(RunUntil([&] { return users_->applied("h"); }, 10000));
}

TEST_F(StoreUsersTest, TwoDaemonsShareAUserAndAShutdownRemovesOnlyItsOwnPassword) {
  users_ = Make();
  other_ = Make();
  auto spec = Spec("shared", {key_prefix_ + "a:*"});
  users_->Sync({spec});
  other_->Sync({spec});
  ASSERT_TRUE(
      RunUntil([&] { return users_->applied("shared") && other_->applied("shared"); }, 10000));
  std::string mine = Var(users_->EnvironmentFor(*spec, "/x"), "EPHEMERA_STORE_URL");
  std::string theirs = Var(other_->EnvironmentFor(*spec, "/x"), "EPHEMERA_STORE_URL");
  ASSERT_NE(PasswordOf(mine), PasswordOf(theirs));
  EXPECT_TRUE(RedisSession::FromUrl(mine).ok());
  EXPECT_TRUE(RedisSession::FromUrl(theirs).ok()) << "the second SETUSER kept the first password";

  bool done = false;
  other_->Shutdown([&] { done = true; });
  EXPECT_FALSE(done) << "never called back from inside the call";
  ASSERT_TRUE(RunUntil([&] { return done; }, 10000));
  EXPECT_TRUE(RedisSession::FromUrl(mine).ok());
  EXPECT_FALSE(RedisSession::FromUrl(theirs).ok()) << "the stopped daemon's password is gone";
}

TEST_F(StoreUsersTest, UsersAreSetAgainWhenRedisComesBack) {
  testing::RedisServer redis;
  ASSERT_EQ(redis.Start(), "");
  users_ = Make(redis.url());
  auto spec = Spec("f", {key_prefix_ + "a:*"});
  users_->Sync({spec});
  ASSERT_TRUE(RunUntil([&] { return users_->applied("f"); }, 10000));
  uint64_t set_before = users_->stats().users_set;

  // A restarted Redis (no persistence) has forgotten the user; the client reconnects and
  // the user is set again with the same password.
  redis.Stop();
  ASSERT_TRUE(RunUntil([&] { return !users_->redis_ready(); }, 10000));
  EXPECT_FALSE(users_->applied("f"));
  users_->Sync({spec, Spec("g", {key_prefix_ + "b:*"})});  // while Redis is down
  ASSERT_EQ(redis.Start(), "");
  ASSERT_TRUE(RunUntil([&] { return users_->applied("f") && users_->applied("g"); }, 15000));
  EXPECT_GT(users_->stats().users_set, set_before);
  std::string url = Var(users_->EnvironmentFor(*spec, "/x"), "EPHEMERA_STORE_URL");
  RedisSession fn = RedisSession::FromUrl(url);
  ASSERT_TRUE(fn.ok()) << fn.error();
  EXPECT_EQ(fn.Command({"SET", key_prefix_ + "a:1", "v"}).Describe(), "OK");
  EXPECT_EQ(fn.Command({"SET", key_prefix_ + "b:1", "v"}).str.find("NOPERM"), 0u);
}

TEST_F(StoreUsersTest, ADeletionWhileRedisIsDownIsSentWhenItIsBack) {
  testing::RedisServer redis;
  ASSERT_EQ(redis.Start(), "");
  users_ = Make(redis.url());
  users_->Sync({Spec("f", {key_prefix_ + "a:*"})});
  ASSERT_TRUE(RunUntil([&] { return users_->applied("f"); }, 10000));
  redis.Pause();  // Redis keeps the user but answers nothing; the heartbeat notices
  ASSERT_TRUE(RunUntil([&] { return !users_->redis_ready(); }, 10000));
  users_->Sync({});
  RunFor(50);
  EXPECT_EQ(users_->stats().users_deleted, 0u);
  redis.Resume();
  ASSERT_TRUE(RunUntil([&] { return users_->stats().users_deleted == 1; }, 15000));
  EXPECT_TRUE(redis.Command({"ACL", "GETUSER", user_prefix_ + "f"}).nil);
}

TEST_F(StoreUsersTest, ShutdownCallsBackWhenRedisIsUnreachable) {
  users_ = Make("redis://127.0.0.1:" + std::to_string(testing::FreePort()));
  users_->Sync({Spec("f", {key_prefix_ + "a:*"})});
  EXPECT_NE(
      Var(users_->EnvironmentFor(*Spec("f", {key_prefix_ + "a:*"}), "/x"), "EPHEMERA_STORE_URL"),
      "")
      << "the password is known before Redis answers";
  bool done = false;
  users_->Shutdown([&] { done = true; });
  EXPECT_FALSE(done);
  EXPECT_TRUE(RunUntil([&] { return done; }, 5000));
}

}  // namespace
}  // namespace ephemera::store
