// Tests of runtime/redis against a real redis-server started by each test on a free port
// (tests/redis/redis_server.h), never the shared one: some stop, kill or pause it.
#include "runtime/redis/redis_client.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "runtime/core/clock.h"
#include "tests/docker/loop_fixture.h"
#include "tests/redis/redis_server.h"

namespace ephemera::redis {
namespace {

using ephemera::testing::LoopTest;
using ephemera::testing::RedisServer;

TEST(RedisUrl, ParsesHostPortUserPasswordDb) {
  RedisUrl u;
  ASSERT_TRUE(ParseRedisUrl("redis://127.0.0.1:6380/3", &u).ok());
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 3);
  EXPECT_EQ(u.password, "");

  ASSERT_TRUE(ParseRedisUrl("redis://alice:s%40cret@db.local", &u).ok());
  EXPECT_EQ(u.host, "db.local");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "s@cret");
  EXPECT_EQ(u.Redacted(), "redis://alice:***@db.local:6379");

  ASSERT_TRUE(ParseRedisUrl("redis://:pw@[::1]:7000", &u).ok());
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.Redacted().find("pw"), std::string::npos);

  ASSERT_TRUE(ParseRedisUrl("unix:///run/redis.sock?db=2", &u).ok());
  EXPECT_EQ(u.unix_path, "/run/redis.sock");
  EXPECT_EQ(u.db, 2);
}

TEST(RedisUrl, RefusesWhatItCannotUse) {
  RedisUrl u;
  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x",
                          "rediss://h", "unix://relative", "redis://%zz@h"}) {
    Status s = ParseRedisUrl(bad, &u);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find("Redis URL"), std::string::npos) << s.message();
  }
}

class RedisClientTest : public LoopTest {
 protected:
  void BeforeLoopClose() override { client_.reset(); }

  std::unique_ptr<Client> MakeClient(const std::string& url, uint64_t timeout_ms = 1000,
                                     uint64_t heartbeat_ms = 0) {
    ClientOptions o;
    EXPECT_TRUE(ParseRedisUrl(url, &o.url).ok()) << url;
    o.command_timeout_ms = timeout_ms;
    o.heartbeat_ms = heartbeat_ms;
    o.name = "ephemera-test";
    return std::make_unique<Client>(&loop_, o);
  }

  struct Result {
    bool done = false;
    bool inside_call = false;
    Status status;
    Reply reply;
  };

  // Sends one command and runs the loop until its callback has run.
  Result Run(std::vector<std::string> argv, uint64_t timeout_ms = 0) {
    auto r = std::make_shared<Result>();
    bool in_call = true;
    client_->Command(
        std::move(argv),
        [r, &in_call](Status s, Reply reply) {
          r->done = true;
          r->inside_call = in_call;
          r->status = std::move(s);
          r->reply = std::move(reply);
        },
        timeout_ms);
    in_call = false;
    RunUntil([&] { return r->done; }, 20000);
    return *r;
  }

  std::unique_ptr<Client> client_;
};

TEST_F(RedisClientTest, RunsCommandsAndCopiesEveryReplyType) {
  RedisServer server;
  ASSERT_EQ(server.Start(), "");
  client_ = MakeClient(server.url());
  client_->Connect();
  ASSERT_TRUE(RunUntil([&] { return client_->ready(); }));

  std::string binary("a\0b\r\n\xff", 6);
  Result set = Run({"SET", "k", binary});
  ASSERT_TRUE(set.status.ok()) << set.status.message();
  EXPECT_FALSE(set.inside_call);
  EXPECT_EQ(set.reply.type, Reply::Type::kStatus);
  EXPECT_EQ(set.reply.str, "OK");

  Result get = Run({"GET", "k"});
  ASSERT_TRUE(get.status.ok());
  EXPECT_EQ(get.reply.type, Reply::Type::kString);
  EXPECT_EQ(get.reply.str, binary);

  Result nil = Run({"GET", "missing"});
  EXPECT_TRUE(nil.status.ok());
  EXPECT_TRUE(nil.reply.is_nil());

  Result incr = Run({"INCRBY", "n", "41"});
  EXPECT_EQ(incr.reply.Integer(), 41);

  ASSERT_TRUE(Run({"XADD", "s", "*", "f", binary}).status.ok());
  Result range = Run({"XRANGE", "s", "-", "+"});
  ASSERT_TRUE(range.reply.is_array());
  ASSERT_EQ(range.reply.elements.size(), 1u);
  const Reply& entry = range.reply.elements[0];
  ASSERT_EQ(entry.elements.size(), 2u);
  EXPECT_EQ(entry.elements[1].elements[1].str, binary);

  Result err = Run({"XGROUP", "CREATE", "nostream", "g", "$"});
  EXPECT_EQ(err.status.code(), StatusCode::kInternal);
  EXPECT_TRUE(err.reply.is_error());
  EXPECT_NE(err.status.message().find(server.url()), std::string::npos) << err.status.message();

  Result busy1 = Run({"XGROUP", "CREATE", "s", "g", "0"});
  EXPECT_TRUE(busy1.status.ok());
  Result busy2 = Run({"XGROUP", "CREATE", "s", "g", "0"});
  EXPECT_TRUE(busy2.reply.ErrorIs("BUSYGROUP")) << busy2.reply.Describe();

  // CLIENT SETNAME ran as part of connecting.
  Result name = Run({"CLIENT", "GETNAME"});
  EXPECT_EQ(name.reply.str, "ephemera-test");
}

TEST_F(RedisClientTest, CommandsFailAtOnceWithUnavailableWhileRedisIsDown) {
  int port = ephemera::testing::FreePort();
  std::string url = "redis://127.0.0.1:" + std::to_string(port);
  client_ = MakeClient(url);
  client_->Connect();
  double start = MonotonicMs();
  Result r = Run({"PING"});
  EXPECT_EQ(r.status.code(), StatusCode::kUnavailable) << r.status.message();
  EXPECT_FALSE(r.inside_call);
  EXPECT_LT(MonotonicMs() - start, 500) << "not at once";
  EXPECT_NE(r.status.message().find("Redis"), std::string::npos) << r.status.message();
  EXPECT_NE(r.status.message().find(url), std::string::npos) << r.status.message();
  EXPECT_FALSE(client_->ready());
}

TEST_F(RedisClientTest, ReconnectsWithBackoffAfterRedisRestartsWithoutRestartingAnything) {
  RedisServer server;
  ASSERT_EQ(server.Start(), "");
  client_ = MakeClient(server.url());
  int ups = 0, downs = 0;
  client_->set_state_listener([&](bool ready, const Status&) { ready ? ++ups : ++downs; });
  client_->Connect();
  ASSERT_TRUE(RunUntil([&] { return ups == 1; }));
  ASSERT_TRUE(Run({"SET", "before", "1"}).status.ok());

  server.Stop();
  ASSERT_TRUE(RunUntil([&] { return downs == 1; }));
  Result down = Run({"GET", "before"});
  EXPECT_EQ(down.status.code(), StatusCode::kUnavailable) << down.status.message();

  // Down for ~1.6 s: with 100 ms doubling, at most 100+200+400+800 -> about 5 attempts.
  uint64_t attempts_before = client_->stats().attempts;
  RunFor(1600);
  uint64_t attempts = client_->stats().attempts - attempts_before;
  EXPECT_GE(attempts, 3u);
  EXPECT_LE(attempts, 6u) << "backoff does not double";

  ASSERT_EQ(server.Start(), "");  // same port, same (empty) data
  ASSERT_TRUE(RunUntil([&] { return ups == 2; }, 10000));
  Result again = Run({"SET", "after", "2"});
  EXPECT_TRUE(again.status.ok()) << again.status.message();
  EXPECT_EQ(client_->stats().connects, 2u);
  EXPECT_EQ(client_->stats().disconnects, 1u);
}

TEST_F(RedisClientTest, KilledRedisFailsPendingCommandsAsTimeoutNotSilence) {
  RedisServer server;
  ASSERT_EQ(server.Start(), "");
  client_ = MakeClient(server.url(), 10000);
  client_->Connect();
  ASSERT_TRUE(RunUntil([&] { return client_->ready(); }));
  auto r = std::make_shared<Result>();
  client_->Command({"BLPOP", "never", "0"}, [r](Status s, Reply) {
    r->done = true;
    r->status = s;
  });
  RunFor(100);
  EXPECT_FALSE(r->done);
  server.Kill();
  ASSERT_TRUE(RunUntil([&] { return r->done; }, 5000));
  // It was sent: whether Redis ran it is unknown, which kTimeout says.
  EXPECT_EQ(r->status.code(), StatusCode::kTimeout) << r->status.message();
  EXPECT_NE(r->status.message().find("lost"), std::string::npos) << r->status.message();
}

TEST_F(RedisClientTest, PausedRedisTimesOutThenWorksAgainWhenResumed) {
  RedisServer server;
  ASSERT_EQ(server.Start(), "");
  client_ = MakeClient(server.url(), 300);
  client_->Connect();
  ASSERT_TRUE(RunUntil([&] { return client_->ready(); }));
  server.Pause();
  double start = MonotonicMs();
  Result r = Run({"SET", "k", "v"});
  double took = MonotonicMs() - start;
  EXPECT_EQ(r.status.code(), StatusCode::kTimeout) << r.status.message();
  EXPECT_GE(took, 290);
  EXPECT_LT(took, 2000);
  // Reconnecting to a paused Redis: the TCP connect succeeds (the kernel accepts) but the
  // handshake's PING gets no answer, so the client stays unready and refuses at once.
  Result refused = Run({"GET", "k"});
  EXPECT_EQ(refused.status.code(), StatusCode::kUnavailable) << refused.status.message();
  server.Resume();
  ASSERT_TRUE(RunUntil([&] { return client_->ready(); }, 10000));
  Result ok = Run({"PING"});
  EXPECT_TRUE(ok.status.ok()) << ok.status.message();
}

TEST_F(RedisClientTest, HeartbeatNoticesAPausedRedisWithoutAnyCommand) {
  RedisServer server;
  ASSERT_EQ(server.Start(), "");
  client_ = MakeClient(server.url(), 300, 200);
  bool lost = false;
  client_->set_state_listener([&](bool ready, const Status&) {
    if (!ready) lost = true;
  });
  client_->Connect();
  ASSERT_TRUE(RunUntil([&] { return client_->ready(); }));
  server.Pause();
  double start = MonotonicMs();
  ASSERT_TRUE(RunUntil([&] { return lost; }, 5000));
  EXPECT_LT(MonotonicMs() - start, 1500);
  server.Resume();
  ASSERT_TRUE(RunUntil([&] { return client_->ready(); }, 10000));
}

TEST_F(RedisClientTest, AuthFromTheUrlAndAWrongPasswordIsNamedNotLeaked) {
  RedisServer server;
  ASSERT_EQ(server.Start({.persist = false, .password = "hunter2"}), "");
  client_ = MakeClient(server.url());
  client_->Connect();
  ASSERT_TRUE(RunUntil([&] { return client_->ready(); }));
  EXPECT_TRUE(Run({"SET", "a", "1"}).status.ok());
  EXPECT_EQ(client_->url().find("hunter2"), std::string::npos) << client_->url();
  client_.reset();

  client_ = MakeClient("redis://:wrong@127.0.0.1:" + std::to_string(server.port()));
  client_->Connect();
  RunFor(500);
  EXPECT_FALSE(client_->ready());
  Result r = Run({"GET", "a"});
  EXPECT_EQ(r.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status.message().find("AUTH"), std::string::npos) << r.status.message();
  EXPECT_EQ(r.status.message().find("wrong"), std::string::npos) << r.status.message();
}

TEST_F(RedisClientTest, DestroyingTheClientDropsPendingCallbacksAndClosesEverything) {
  RedisServer server;
  ASSERT_EQ(server.Start(), "");
  client_ = MakeClient(server.url(), 10000, 100);
  client_->Connect();
  ASSERT_TRUE(RunUntil([&] { return client_->ready(); }));
  bool ran = false;
  client_->Command({"BLPOP", "never", "0"}, [&](Status, Reply) { ran = true; });
  client_->Command({"PING"}, [&](Status, Reply) { ran = true; });
  client_.reset();
  RunFor(50);
  EXPECT_FALSE(ran);
  // TearDown asserts uv_loop_close() == 0: the adapter's poll handle and our timers closed.
}

TEST_F(RedisClientTest, ACallbackMayDestroyTheClient) {
  RedisServer server;
  ASSERT_EQ(server.Start(), "");
  client_ = MakeClient(server.url());
  client_->Connect();
  ASSERT_TRUE(RunUntil([&] { return client_->ready(); }));
  int ran = 0;
  client_->Command({"PING"}, [&](Status, Reply) {
    ++ran;
    client_.reset();
  });
  client_->Command({"PING"}, [&](Status, Reply) { ++ran; });
  ASSERT_TRUE(RunUntil([&] { return client_ == nullptr; }));
  RunFor(50);
  EXPECT_EQ(ran, 1);
}

}  // namespace
}  // namespace ephemera::redis
