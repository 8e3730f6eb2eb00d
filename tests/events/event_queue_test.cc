// Tests of runtime/events against a real redis-server each test starts on a free port
// (tests/redis/redis_server.h), with a fake Runner in place of the scheduler so they run
// in a second, without Docker. What holds: an accepted event is in the stream before the
// callback says ok; a refused one never runs; each event reaches one final state; retries,
// dead letters, destinations, ages, claims, the memory bound and records.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/events/events.h"
#include "runtime/json/json.h"
#include "tests/docker/loop_fixture.h"
#include "tests/redis/redis_server.h"

namespace ephemera::events {
namespace {

using ephemera::testing::LoopTest;
using ephemera::testing::RedisServer;
using sandbox::InvokeOutcome;
using sandbox::InvokeRequest;
using sandbox::OutcomeKind;

// Stands in for the scheduler: answers each invocation from `decide` on a later loop turn
// (never inside Invoke), or holds it until Complete() when `hold` is set.
class FakeRunner {
 public:
  explicit FakeRunner(uv_loop_t* loop) : timer_(loop) {}

  Runner runner() {
    Runner r;
    r.find = [this](const std::string& name) -> std::shared_ptr<const registry::FunctionSpec> {
      if (missing.count(name) > 0) return nullptr;
      auto spec = std::make_shared<registry::FunctionSpec>();
      spec->name = name;
      return spec;
    };
    r.invoke = [this](InvokeRequest req, sandbox::InvokeDone done) {
      calls.push_back(req);
      ++running;
      max_running = std::max(max_running, running);
      uint64_t h = next_++;
      held_.push_back({h, std::move(req), std::move(done)});
      if (!hold) Schedule();
      return h;
    };
    r.cancel = [this](uint64_t h) { cancelled.insert(h); };
    return r;
  }

  // Answers every held invocation (on a later loop turn).
  void Complete() { Schedule(); }
  size_t held() const { return held_.size(); }

  std::function<InvokeOutcome(const InvokeRequest&)> decide = [](const InvokeRequest& r) {
    InvokeOutcome o;
    o.kind = OutcomeKind::kSuccess;
    o.body = r.payload;
    return o;
  };
  bool hold = false;
  std::set<std::string> missing;
  std::vector<InvokeRequest> calls;
  std::set<uint64_t> cancelled;
  int running = 0, max_running = 0;

 private:
  struct Held {
    uint64_t handle;
    InvokeRequest request;
    sandbox::InvokeDone done;
  };
  void Schedule() {
    timer_.Start(1, [this] {
      std::vector<Held> batch;
      batch.swap(held_);
      for (auto& h : batch) {
        --running;
        h.done(decide(h.request));
      }
    });
  }
  Timer timer_;
  std::vector<Held> held_;
  uint64_t next_ = 1;
};

class EventQueueTest : public LoopTest {
 protected:
  void SetUp() override {
    LoopTest::SetUp();
    ASSERT_EQ(redis_.Start(), "");
  }
  void BeforeLoopClose() override {
    for (auto& e : events_) e.reset();
    runner_.reset();
  }

  EventsOptions Options(const std::string& daemon_id = "test-daemon") {
    EventsOptions o;
    EXPECT_TRUE(redis::ParseRedisUrl(redis_.url(), &o.url).ok());
    o.redis_timeout_ms = 600;
    o.queue.daemon_id = daemon_id;
    o.queue.concurrency = 8;
    o.queue.block_ms = 200;
    o.queue.claim_idle_ms = 60000;
    o.queue.retry_delays_ms = {30, 60};
    o.queue.service_retry_ms = 30;
    return o;
  }

  Events* Make(EventsOptions o) {
    if (!runner_) runner_ = std::make_unique<FakeRunner>(&loop_);
    events_.push_back(std::make_unique<Events>(&loop_, std::move(o), runner_->runner()));
    Events* e = events_.back().get();
    e->Start();
    e->StartConsuming();
    EXPECT_TRUE(RunUntil([&] { return e->redis_ready(); }, 10000));
    return e;
  }

  // The newest records of `function` ("" = all), as ListRecords reads them.
  std::vector<std::string> List(Events* e, const std::string& function, size_t limit) {
    std::vector<std::string> listed;
    bool done = false;
    e->ListRecords(function, limit, "", [&](Status s, std::vector<std::string> l) {
      EXPECT_TRUE(s.ok()) << s.message();
      listed = std::move(l);
      done = true;
    });
    EXPECT_TRUE(RunUntil([&] { return done; }));
    return listed;
  }

  // A synchronous invocation's record that ended now.
  static InvocationRecord SyncRecord(const std::string& request_id, const std::string& function) {
    InvocationRecord r;
    r.request_id = request_id;
    r.function = function;
    r.type = "RequestResponse";
    r.status = "Success";
    r.ended_ms = EpochMs();
    return r;
  }

  // Every record of one request id, as GetRecords reads them.
  std::vector<std::string> RecordsOf(Events* e, const std::string& request_id) {
    std::vector<std::string> records;
    bool done = false;
    e->GetRecords(request_id,
                  [&](Status s, std::vector<std::string> l, std::map<std::string, std::string>) {
                    EXPECT_TRUE(s.ok()) << s.message();
                    records = std::move(l);
                    done = true;
                  });
    EXPECT_TRUE(RunUntil([&] { return done; }));
    return records;
  }

  Status AcceptOne(Events* e, const std::string& function, const std::string& payload,
                   std::string* request_id = nullptr) {
    bool done = false, inside = true;
    Status status;
    AcceptRequest a;
    a.function = function;
    a.request_id = NewRequestId();
    a.payload = payload;
    if (request_id) *request_id = a.request_id;
    e->queue().Accept(std::move(a), [&](Status s) {
      done = true;
      status = s;
      EXPECT_FALSE(inside) << "callback inside Accept()";
    });
    inside = false;
    EXPECT_TRUE(RunUntil([&] { return done; }, 10000));
    return status;
  }

  long long Integer(const std::vector<std::string>& argv) { return redis_.Command(argv).integer; }
  std::string Hget(const std::string& key, const std::string& field) {
    return redis_.Command({"HGET", key, field}).str;
  }
  std::vector<std::map<std::string, std::string>> Stream(const std::string& key) {
    std::vector<std::map<std::string, std::string>> out;
    for (const auto& e : redis_.Command({"XRANGE", key, "-", "+"}).elements) {
      std::map<std::string, std::string> m;
      for (size_t i = 0; i + 1 < e.elements[1].elements.size(); i += 2) {
        m[e.elements[1].elements[i].str] = e.elements[1].elements[i + 1].str;
      }
      out.push_back(m);
    }
    return out;
  }
  long long Pending() {
    auto r = redis_.Command({"XPENDING", "ephemera:events", "ephemera:workers"});
    return r.elements.empty() ? 0 : r.elements[0].integer;
  }

  RedisServer redis_;
  std::unique_ptr<FakeRunner> runner_;
  std::vector<std::unique_ptr<Events>> events_;
};

TEST_F(EventQueueTest, AcceptedEventIsInTheStreamWhenTheCallbackSaysOk) {
  auto o = Options();
  o.queue.concurrency = 0;  // accept only: nothing consumes it
  Events* e = Make(o);
  std::string payload("{\"bin\":\"\\u0000\"}\0tail\xff", 22);
  std::string id;
  ASSERT_TRUE(AcceptOne(e, "echo", payload, &id).ok());
  auto entries = Stream("ephemera:events");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0]["function"], "echo");
  EXPECT_EQ(entries[0]["request_id"], id);
  EXPECT_EQ(entries[0]["payload"], payload);
  EXPECT_EQ(entries[0]["attempt"], "1");
  EXPECT_EQ(entries[0]["content_type"], "application/json");
  EXPECT_GT(std::stoll(entries[0]["accepted_ms"]), EpochMs() - 10000);
  EXPECT_EQ(e->queue().stats().accepted, 1u);
}

TEST_F(EventQueueTest, AFullQueueRefusesBeforeAcceptingNotAfter) {
  auto o = Options();
  o.queue.concurrency = 0;
  o.queue.max_queued = 2;
  Events* e = Make(o);
  ASSERT_TRUE(AcceptOne(e, "echo", "{}").ok());
  ASSERT_TRUE(AcceptOne(e, "echo", "{}").ok());
  Status full = AcceptOne(e, "echo", "{}");
  EXPECT_EQ(full.code(), StatusCode::kConflict) << full.message();
  EXPECT_NE(full.message().find("2 Event invocations are queued already"), std::string::npos)
      << full.message();
  EXPECT_EQ(Integer({"XLEN", "ephemera:events"}), 2);
}

TEST_F(EventQueueTest, RedisDownRefusesAtOnceNamingRedisAndTheUrl) {
  Events* e = Make(Options());
  redis_.Stop();
  ASSERT_TRUE(RunUntil([&] { return !e->redis_ready(); }, 5000));
  double start = MonotonicMs();
  Status s = AcceptOne(e, "echo", "{}");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_LT(MonotonicMs() - start, 300);
  EXPECT_NE(s.message().find("Redis at " + redis_.url()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("not accepted"), std::string::npos) << s.message();
}

TEST_F(EventQueueTest, StalledRedisGetsAnUnconfirmedWriteRefusedAndItNeverRuns) {
  Events* e = Make(Options());
  redis_.Pause();  // the write reaches the socket; Redis runs it only after SIGCONT
  Status s = AcceptOne(e, "echo", "{\"late\":true}");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.message();
  EXPECT_NE(s.message().find("will not run"), std::string::npos) << s.message();
  redis_.Resume();
  ASSERT_TRUE(RunUntil([&] { return e->redis_ready(); }, 10000));
  RunFor(600);  // consumer reads, claims and moves retries meanwhile
  EXPECT_TRUE(runner_->calls.empty()) << "an event answered 503 ran";
  EXPECT_EQ(Integer({"XLEN", "ephemera:events"}), 0) << "the late XADD was not refused";
}

TEST_F(EventQueueTest, EveryAcceptedEventRunsOnceAndReachesOneFinalState) {
  Events* e = Make(Options());
  std::vector<std::string> ids(20);
  for (auto& id : ids) ASSERT_TRUE(AcceptOne(e, "echo", "{\"n\":1}", &id).ok());
  ASSERT_TRUE(RunUntil([&] { return e->queue().stats().succeeded == 20 && e->queue().idle(); }));
  EXPECT_EQ(runner_->calls.size(), 20u);
  for (const auto& c : runner_->calls) EXPECT_TRUE(c.async) << "Event invocations wait";
  for (const auto& id : ids) {
    EXPECT_EQ(Hget("ephemera:events:done:" + id, "condition"), "Success") << id;
    EXPECT_EQ(Hget("ephemera:events:done:" + id, "attempt"), "1");
  }
  EXPECT_EQ(Integer({"XLEN", "ephemera:events"}), 0) << "acknowledged entries are deleted";
  EXPECT_EQ(Pending(), 0);
  EXPECT_EQ(Integer({"XLEN", "ephemera:dlq"}), 0);
  // One record per attempt.
  EXPECT_EQ(Integer({"ZCARD", "ephemera:invocations"}), 20);
  EXPECT_EQ(Integer({"LLEN", "ephemera:inv:" + ids[0]}), 1);
}

TEST_F(EventQueueTest, FunctionErrorIsRetriedTwiceThenDeadLettered) {
  runner_ = std::make_unique<FakeRunner>(&loop_);
  runner_->decide = [](const InvokeRequest&) {
    InvokeOutcome o;
    o.kind = OutcomeKind::kFunctionError;
    o.error_type = "Runtime.ExitError";
    o.body = "{\"errorType\":\"Runtime.ExitError\",\"errorMessage\":\"exit status 3\"}";
    return o;
  };
  Events* e = Make(Options());
  std::string id;
  ASSERT_TRUE(AcceptOne(e, "crash", "{\"x\":1}", &id).ok());
  ASSERT_TRUE(RunUntil([&] { return e->queue().stats().dead_letters == 1 && e->queue().idle(); }));
  ASSERT_EQ(runner_->calls.size(), 3u) << "1 attempt + MaximumRetryAttempts 2";
  for (const auto& c : runner_->calls) EXPECT_EQ(c.request_id, id) << "retries keep the id";
  EXPECT_EQ(Hget("ephemera:events:done:" + id, "condition"), "RetriesExhausted");
  auto dlq = Stream("ephemera:dlq");
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0]["function"], "crash");
  EXPECT_EQ(dlq[0]["request_id"], id);
  EXPECT_EQ(dlq[0]["payload"], "{\"x\":1}");
  EXPECT_EQ(dlq[0]["attempts"], "3");
  EXPECT_EQ(dlq[0]["condition"], "RetriesExhausted");
  EXPECT_EQ(dlq[0]["error_type"], "Runtime.ExitError");
  EXPECT_NE(dlq[0]["error"].find("exit status 3"), std::string::npos);
  EXPECT_EQ(e->queue().stats().retries, 2u);
  EXPECT_EQ(Integer({"LLEN", "ephemera:inv:" + id}), 3) << "a record per attempt";
  EXPECT_EQ(Integer({"ZCARD", "ephemera:events:retry"}), 0);
}

TEST_F(EventQueueTest, ConfigWithZeroRetriesRunsOnceAndOnFailureDestinationGetsTheRecord) {
  runner_ = std::make_unique<FakeRunner>(&loop_);
  runner_->decide = [](const InvokeRequest& r) {
    InvokeOutcome o;
    o.kind = r.function->name == "crash" ? OutcomeKind::kFunctionError : OutcomeKind::kSuccess;
    o.body = r.function->name == "crash" ? "{\"errorType\":\"Boom\"}" : r.payload;
    o.error_type = "Boom";
    return o;
  };
  Events* e = Make(Options());
  EventInvokeConfig c;
  c.maximum_retry_attempts = 0;
  c.on_failure = "arn:aws:lambda:us-east-1:000000000000:function:sink";
  bool put = false;
  e->PutConfig("crash", c, [&](Status s) { put = s.ok(); });
  ASSERT_TRUE(RunUntil([&] { return put; }));
  std::string id;
  ASSERT_TRUE(AcceptOne(e, "crash", "{\"order\":7}", &id).ok());
  ASSERT_TRUE(RunUntil([&] { return runner_->calls.size() == 2 && e->queue().idle(); }));
  EXPECT_EQ(runner_->calls[0].function->name, "crash");
  ASSERT_EQ(runner_->calls[1].function->name, "sink");
  EXPECT_EQ(Integer({"XLEN", "ephemera:dlq"}), 0) << "a failure destination replaces the DLQ";
  auto rec = json::Parse(runner_->calls[1].payload);
  ASSERT_TRUE(rec) << runner_->calls[1].payload;
  EXPECT_EQ(json::GetString(rec.get(), "version"), "1.0");
  EXPECT_TRUE(json::GetString(rec.get(), "timestamp").value_or("").ends_with("Z"));
  const cJSON* ctx = cJSON_GetObjectItem(rec.get(), "requestContext");
  EXPECT_EQ(json::GetString(ctx, "requestId"), id);
  EXPECT_EQ(json::GetString(ctx, "functionArn"),
            "arn:aws:lambda:us-east-1:000000000000:function:crash:$LATEST");
  EXPECT_EQ(json::GetString(ctx, "condition"), "RetriesExhausted");
  EXPECT_EQ(json::GetNumber(ctx, "approximateInvokeCount"), 1);
  EXPECT_EQ(json::GetNumber(cJSON_GetObjectItem(rec.get(), "requestPayload"), "order"), 7);
  const cJSON* resp = cJSON_GetObjectItem(rec.get(), "responseContext");
  EXPECT_EQ(json::GetNumber(resp, "statusCode"), 200);
  EXPECT_EQ(json::GetString(resp, "executedVersion"), "$LATEST");
  EXPECT_EQ(json::GetString(resp, "functionError"), "Unhandled");
  EXPECT_EQ(json::GetString(cJSON_GetObjectItem(rec.get(), "responsePayload"), "errorType"),
            "Boom");
}

TEST_F(EventQueueTest, OnSuccessDestinationRecordHasNoFunctionError) {
  Events* e = Make(Options());
  EventInvokeConfig c;
  c.on_success = "sink";
  bool put = false;
  e->PutConfig("echo", c, [&](Status s) { put = s.ok(); });
  ASSERT_TRUE(RunUntil([&] { return put; }));
  ASSERT_TRUE(AcceptOne(e, "echo", "\"hello\"").ok());
  ASSERT_TRUE(RunUntil([&] { return runner_->calls.size() == 2 && e->queue().idle(); }));
  auto rec = json::Parse(runner_->calls[1].payload);
  ASSERT_TRUE(rec);
  EXPECT_EQ(json::GetString(cJSON_GetObjectItem(rec.get(), "requestContext"), "condition"),
            "Success");
  EXPECT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(rec.get(), "responseContext"), "functionError"),
            nullptr);
  EXPECT_EQ(json::GetString(rec.get(), "responsePayload"), "hello");
  EXPECT_EQ(e->queue().stats().destinations, 1u);
}

TEST_F(EventQueueTest, EventOlderThanItsMaximumAgeIsNotRun) {
  Events* e = Make(Options());
  std::string old = std::to_string(EpochMs() - 7 * 3600 * 1000);  // past the 6 h default
  redis_.Command({"XADD", "ephemera:events", "*", "accepted_ms", old, "function", "echo",
                  "request_id", "old-1", "payload", "{}", "attempt", "1"});
  ASSERT_TRUE(RunUntil([&] {
    return Integer({"XLEN", "ephemera:dlq"}) == 1 && e->queue().idle();
  }));
  EXPECT_TRUE(runner_->calls.empty());
  EXPECT_EQ(Hget("ephemera:events:done:old-1", "condition"), "EventAgeExceeded");
  EXPECT_EQ(Stream("ephemera:dlq")[0]["condition"], "EventAgeExceeded");
}

TEST_F(EventQueueTest, ServiceErrorsAreRetriedWithoutUsingAnAttempt) {
  runner_ = std::make_unique<FakeRunner>(&loop_);
  int n = 0;
  runner_->decide = [&n](const InvokeRequest& r) {
    InvokeOutcome o;
    o.kind = ++n <= 3 ? OutcomeKind::kEngineUnavailable : OutcomeKind::kSuccess;
    o.status = Unavailable("engine down");
    o.body = r.payload;
    return o;
  };
  Events* e = Make(Options());
  std::string id;
  ASSERT_TRUE(AcceptOne(e, "echo", "{}", &id).ok());
  ASSERT_TRUE(RunUntil([&] { return e->queue().stats().succeeded == 1 && e->queue().idle(); }));
  EXPECT_EQ(runner_->calls.size(), 4u);
  EXPECT_EQ(Hget("ephemera:events:done:" + id, "attempt"), "1");
  EXPECT_EQ(Hget("ephemera:events:done:" + id, "condition"), "Success");
}

TEST_F(EventQueueTest, HoldsNoMoreThanItsConcurrencyWhateverTheBacklog) {
  runner_ = std::make_unique<FakeRunner>(&loop_);
  runner_->hold = true;
  auto o = Options();
  o.queue.concurrency = 3;
  Events* e = Make(o);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(AcceptOne(e, "echo", "{}").ok());
  ASSERT_TRUE(RunUntil([&] { return runner_->held() == 3; }));
  RunFor(300);
  EXPECT_EQ(runner_->held(), 3u);
  EXPECT_EQ(Pending(), 3) << "read only as many as it can run";
  EXPECT_EQ(e->queue().in_flight(), 3u);
  runner_->hold = false;
  runner_->Complete();
  ASSERT_TRUE(RunUntil([&] { return e->queue().stats().succeeded == 30 && e->queue().idle(); }));
  EXPECT_EQ(runner_->max_running, 3);
}

TEST_F(EventQueueTest, ADeadConsumersEventsAreClaimedByAnotherAndALiveOnesAreNot) {
  runner_ = std::make_unique<FakeRunner>(&loop_);
  runner_->hold = true;
  auto oa = Options("daemon-a");
  oa.queue.claim_idle_ms = 400;
  Events* a = Make(oa);
  ASSERT_TRUE(AcceptOne(a, "echo", "{}").ok());
  ASSERT_TRUE(RunUntil([&] { return runner_->held() == 1; }));
  auto ob = Options("daemon-b");
  ob.queue.claim_idle_ms = 400;
  Events* b = Make(ob);
  // A is alive: its heartbeat keeps the entry fresh, so B takes nothing.
  RunFor(1200);
  EXPECT_EQ(b->queue().stats().claimed, 0u);
  // A dies (its Events goes without finishing); B claims the entry after 400 ms idle.
  events_[0].reset();
  runner_->hold = false;
  ASSERT_TRUE(RunUntil([&] { return b->queue().stats().succeeded == 1 && b->queue().idle(); }));
  EXPECT_EQ(b->queue().stats().claimed, 1u);
  EXPECT_EQ(Pending(), 0);
}

TEST_F(EventQueueTest, ARestartUnderTheSameDaemonIdResumesItsPendingEventsAtOnce) {
  runner_ = std::make_unique<FakeRunner>(&loop_);
  runner_->hold = true;
  auto o = Options("same-id");  // claim_idle 60 s: a claim would not happen in this test
  Make(o);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(AcceptOne(events_[0].get(), "echo", "{}").ok());
  ASSERT_TRUE(RunUntil([&] { return runner_->held() == 3; }));
  events_[0].reset();  // "killed" with 3 pending
  runner_->hold = false;
  Events* again = Make(o);
  ASSERT_TRUE(RunUntil(
      [&] { return again->queue().stats().succeeded == 3 && again->queue().idle(); }, 5000));
  EXPECT_EQ(Pending(), 0);
}

TEST_F(EventQueueTest, AnEventWithAFinalStateIsAcknowledgedWithoutRunningAgain) {
  Events* e = Make(Options());
  redis_.Command({"HSET", "ephemera:events:done:dup-1", "condition", "Success"});
  redis_.Command({"XADD", "ephemera:events", "*", "accepted_ms", std::to_string(EpochMs()),
                  "function", "echo", "request_id", "dup-1", "payload", "{}", "attempt", "1"});
  ASSERT_TRUE(RunUntil([&] { return e->queue().stats().skipped_done == 1 && e->queue().idle(); }));
  EXPECT_TRUE(runner_->calls.empty());
  EXPECT_EQ(Integer({"XLEN", "ephemera:events"}), 0);
  EXPECT_EQ(Pending(), 0);
}

TEST_F(EventQueueTest, UnknownFunctionGoesToTheDeadLetterStream) {
  runner_ = std::make_unique<FakeRunner>(&loop_);
  runner_->missing.insert("gone");
  Events* e = Make(Options());
  ASSERT_TRUE(AcceptOne(e, "gone", "{}").ok());
  ASSERT_TRUE(RunUntil([&] { return e->queue().stats().dead_letters == 1 && e->queue().idle(); }));
  auto dlq = Stream("ephemera:dlq");
  EXPECT_EQ(dlq[0]["condition"], "FunctionNotFound");
  EXPECT_NE(dlq[0]["error"].find("Function not found"), std::string::npos);
}

TEST_F(EventQueueTest, DeadLetterReplayRunsItAgainUnderANewRequestId) {
  runner_ = std::make_unique<FakeRunner>(&loop_);
  runner_->missing.insert("flaky");
  Events* e = Make(Options());
  ASSERT_TRUE(AcceptOne(e, "flaky", "{\"v\":2}").ok());
  ASSERT_TRUE(RunUntil([&] { return e->queue().stats().dead_letters == 1 && e->queue().idle(); }));
  std::vector<DeadLetter> list;
  bool listed = false;
  e->ListDeadLetters(10, [&](Status s, std::vector<DeadLetter> l) {
    EXPECT_TRUE(s.ok());
    list = std::move(l);
    listed = true;
  });
  ASSERT_TRUE(RunUntil([&] { return listed; }));
  ASSERT_EQ(list.size(), 1u);
  runner_->missing.clear();
  std::string new_id, fn;
  bool replayed = false;
  e->ReplayDeadLetter(list[0].id, [&](Status s, std::string id, std::string f) {
    EXPECT_TRUE(s.ok()) << s.message();
    new_id = id;
    fn = f;
    replayed = true;
  });
  ASSERT_TRUE(RunUntil([&] { return replayed; }));
  EXPECT_EQ(fn, "flaky");
  ASSERT_TRUE(RunUntil([&] { return e->queue().stats().succeeded == 1 && e->queue().idle(); }));
  EXPECT_EQ(runner_->calls.back().request_id, new_id);
  EXPECT_EQ(runner_->calls.back().payload, "{\"v\":2}");
  EXPECT_EQ(Integer({"XLEN", "ephemera:dlq"}), 0);
  bool again = false;
  Status missing;
  e->ReplayDeadLetter(list[0].id, [&](Status s, std::string, std::string) {
    missing = s;
    again = true;
  });
  ASSERT_TRUE(RunUntil([&] { return again; }));
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
}

TEST_F(EventQueueTest, RecordsAreKeptWithinTheirCountAndListedNewestFirst) {
  auto o = Options();
  o.queue.retention.max_count = 5;
  Events* e = Make(o);
  ASSERT_TRUE(RunUntil([&] { return e->redis_ready(); }, 5000));
  redis_.Command({"CONFIG", "RESETSTAT"});
  for (int i = 0; i < 8; ++i) {
    e->Record(SyncRecord("req-" + std::to_string(i), i % 2 == 0 ? "even" : "odd"));
  }
  std::vector<std::string> all, odd;
  int done = 0;
  RunFor(100);
  // The records of one flush window go to Redis in one script call.
  std::string stats = redis_.Command({"INFO", "commandstats"}).str;
  EXPECT_NE(stats.find("cmdstat_eval:calls=1,"), std::string::npos) << stats;
  e->ListRecords("", 100, "", [&](Status s, std::vector<std::string> l) {
    EXPECT_TRUE(s.ok());
    all = std::move(l);
    ++done;
  });
  e->ListRecords("odd", 100, "", [&](Status s, std::vector<std::string> l) {
    EXPECT_TRUE(s.ok());
    odd = std::move(l);
    ++done;
  });
  ASSERT_TRUE(RunUntil([&] { return done == 2; }));
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(json::GetString(json::Parse(all[0]).get(), "id"), "req-7") << "newest first";
  for (const auto& text : odd) {
    EXPECT_EQ(json::GetString(json::Parse(text).get(), "function"), "odd");
  }
  EXPECT_LE(odd.size(), 3u);
  EXPECT_EQ(Integer({"EXISTS", "ephemera:inv:req-0"}), 0) << "the oldest records are deleted";
}

TEST_F(EventQueueTest, RecordsOfSeveralLoopTurnsShareOneWriteAndAReaderSeesThemAtOnce) {
  Events* e = Make(Options());
  ASSERT_TRUE(RunUntil([&] { return e->redis_ready(); }, 5000));
  redis_.Command({"CONFIG", "RESETSTAT"});
  for (int i = 0; i < 3; ++i) {
    e->Record(SyncRecord("turn-" + std::to_string(i), "turns"));
    uv_run(&loop_, UV_RUN_NOWAIT);  // a loop turn between records
  }
  // Listed before the flush window has passed: the reader sends the records first.
  EXPECT_EQ(List(e, "turns", 10).size(), 3u);
  std::string stats = redis_.Command({"INFO", "commandstats"}).str;
  // One call wrote the three records, one listed them.
  EXPECT_NE(stats.find("cmdstat_eval:calls=2,"), std::string::npos) << stats;
}

TEST_F(EventQueueTest, ASyncRecordIsOneStringAndReadsBackBesideEventAttempts) {
  Events* e = Make(Options());
  ASSERT_TRUE(RunUntil([&] { return e->redis_ready(); }, 5000));
  std::string event_id;
  ASSERT_TRUE(AcceptOne(e, "echo", "{\"n\":1}", &event_id).ok());
  ASSERT_TRUE(RunUntil([&] { return e->queue().stats().succeeded == 1 && e->queue().idle(); }));
  e->Record(SyncRecord("sync-1", "echo"));
  std::vector<std::string> records = RecordsOf(e, "sync-1");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_NE(records[0].find("\"id\":\"sync-1\""), std::string::npos) << records[0];
  EXPECT_EQ(redis_.Command({"TYPE", "ephemera:inv:sync-1"}).str, "string");
  EXPECT_EQ(redis_.Command({"TYPE", "ephemera:inv:" + event_id}).str, "list");
  // The Event invocation's attempt and the synchronous record are both listed, newest first.
  std::vector<std::string> listed = List(e, "echo", 10);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_NE(listed[0].find("\"id\":\"sync-1\""), std::string::npos) << listed[0];
  EXPECT_NE(listed[1].find("\"id\":\"" + event_id + "\""), std::string::npos) << listed[1];
  // A request id with no records reads back as none.
  EXPECT_TRUE(RecordsOf(e, "no-such-id").empty());
}

TEST_F(EventQueueTest, ARecordPastItsAgeIsNeitherListedNorReadEvenWithNoNewRecord) {
  EventsOptions o = Options();
  o.queue.retention.max_age_ms = 300;
  Events* e = Make(o);
  ASSERT_TRUE(RunUntil([&] { return e->redis_ready(); }, 5000));
  e->Record(SyncRecord("old-1", "aging"));
  ASSERT_EQ(RecordsOf(e, "old-1").size(), 1u);
  EXPECT_EQ(List(e, "aging", 10).size(), 1u);
  // A synchronous record has no expiry of its own; the readers run the age limit.
  EXPECT_EQ(Integer({"PTTL", "ephemera:inv:old-1"}), -1);
  RunFor(400);
  EXPECT_TRUE(List(e, "aging", 10).empty());
  EXPECT_TRUE(List(e, "", 10).empty());
  EXPECT_TRUE(RecordsOf(e, "old-1").empty());
  EXPECT_EQ(Integer({"EXISTS", "ephemera:inv:old-1"}), 0) << "the aged record is deleted";
}

TEST_F(EventQueueTest, RecordsAreSkippedAndCountedWhileRedisIsDown) {
  Events* e = Make(Options());
  redis_.Stop();
  ASSERT_TRUE(RunUntil([&] { return !e->redis_ready(); }, 5000));
  InvocationRecord r;
  r.request_id = "x";
  r.function = "echo";
  e->Record(r);
  e->Record(r);
  EXPECT_NE(e->MetricsText().find("ephemera_records_skipped_total 2"), std::string::npos)
      << e->MetricsText();
  EXPECT_NE(e->MetricsText().find("ephemera_redis_up 0"), std::string::npos);
}

}  // namespace
}  // namespace ephemera::events
