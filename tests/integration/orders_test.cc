// The data store, the order flow and the batch end to end (issue 10, sections 4-6): the
// real daemon, the real dockerd, the real Redis (127.0.0.1:6379, scripts/setup.sh), and the
// function images of functions/orders and functions/kv (make -f Makefile.docker orders).
// Each suite runs its own copies of the functions under a namespace of its own: function
// names "<tag>-...", keys "<tag>:..." (KEY_PREFIX / PEER_PREFIX, functions/orders/README.md)
// and the daemon's Redis prefix "<tag>:ev:", all removed afterwards. Facts are checked in
// Redis; waits are bounded waits on conditions (BLPOP on the completion lists, polls).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "runtime/json/json.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/store/redis_session.h"

namespace ephemera::testing {
namespace {

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Tag() {
  unsigned char b[3] = {};
  if (getrandom(b, sizeof b, 0) != 3) b[0] = static_cast<unsigned char>(getpid());
  char out[32];
  std::snprintf(out, sizeof out, "t%d%02x%02x%02x", static_cast<int>(getpid() % 100000), b[0], b[1],
                b[2]);
  return out;
}

std::string Join(const std::vector<std::string>& items, const std::string& sep = ",") {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

std::string JsonList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ",\"" : "\"") + items[i] + "\"";
  return out + "]";
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// A namespace: function names and keys of one set of function copies.
struct Ns {
  std::string tag;
  std::string Fn(const std::string& name) const { return tag + "-" + name; }
  std::string Key(const std::string& name) const { return tag + ":" + name; }
};

class StoreFlows : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tag_ = Tag();
    daemon_ = new Daemon;
    ASSERT_EQ(daemon_->Start(Options()), "");
  }
  static void TearDownTestSuite() {
    for (const std::string& f : created_) {
      Http("DELETE", daemon_->url() + "/2015-03-31/functions/" + f);
    }
    EXPECT_EQ(daemon_->Stop(), 0) << daemon_->log();
    delete daemon_;
    daemon_ = nullptr;
    DeleteKeys(tag_ + "*");
  }

  static Daemon::Options Options() {
    Daemon::Options o;
    o.extra_args = {"--redis-prefix",       tag_ + ":ev:", "--daemon-id",        tag_,
                    "--event-retry-delays", "200,400",     "--event-claim-idle", "3000"};
    return o;
  }

  // CreateFunction for a copy of a function image in namespace `ns`: native, keys and peers
  // under the namespace, `prefixes` (unprefixed) as its store, `vars` more settings.
  static HttpResult Create(const Ns& ns, const std::string& name, const std::string& image,
                           const std::vector<std::string>& args,
                           const std::vector<std::string>& prefixes, const std::string& vars = "",
                           int timeout = 30) {
    std::vector<std::string> scoped;
    for (const auto& p : prefixes) scoped.push_back(ns.Key(p));
    std::string body = R"({"FunctionName":")" + ns.Fn(name) + R"(","Code":{"ImageUri":")" + image +
                       R"("},"Timeout":)" + std::to_string(timeout);
    if (!args.empty()) body += R"(,"ImageConfig":{"Command":)" + JsonList(args) + "}";
    body += R"(,"Environment":{"Variables":{"EPHEMERA_MODE":"native","KEY_PREFIX":")" + ns.tag +
            R"(:","PEER_PREFIX":")" + ns.tag + R"(-")";
    if (!scoped.empty()) body += R"(,"EPHEMERA_STORE_PREFIXES":")" + Join(scoped) + "\"";
    if (!vars.empty()) body += "," + vars;
    body += "}}}";
    HttpResult r = Http("POST", daemon_->url() + "/2015-03-31/functions", body);
    if (r.status == 201) created_.push_back(ns.Fn(name));
    return r;
  }

  static HttpResult PutConfig(const std::string& function, const std::string& body) {
    return Http("PUT",
                daemon_->url() + "/2019-09-25/functions/" + function + "/event-invoke-config", body,
                {"Content-Type: application/json"});
  }

  // The four order functions in `ns`; OnFailure of check and register is order-generate,
  // which records the failure and ends the order.
  static void CreateOrderFunctions(const Ns& ns, const std::string& vars = "",
                                   std::vector<std::string> register_prefixes = {"order:*",
                                                                                 "order-number"}) {
    struct Step {
      const char* name;
      std::vector<std::string> prefixes;
    };
    for (const Step& s : std::vector<Step>{
             {"order-accept", {"order:*"}},
             {"order-check", {"order:*", "stock:*", "price:*"}},
             {"order-register", register_prefixes},
             {"order-generate", {"order:*", "document:*"}},
         }) {
      HttpResult r =
          Create(ns, s.name, std::string("ephemera/") + s.name + ":latest", {}, s.prefixes, vars);
      ASSERT_EQ(r.status, 201) << r.body;
    }
    for (const char* step : {"order-check", "order-register"}) {
      HttpResult r = PutConfig(ns.Fn(step), R"({"MaximumRetryAttempts":1,"DestinationConfig":)"
                                            R"({"OnFailure":{"Destination":"arn:aws:lambda:)"
                                            R"(us-east-1:000000000000:function:)" +
                                                ns.Fn("order-generate") + R"("}}})");
      ASSERT_EQ(r.status, 200) << r.body;
    }
  }

  // Prices in cents and units in stock, under the namespace.
  static void Stock(const Ns& ns, const std::string& sku, int units, int cents) {
    RedisSession admin("127.0.0.1", 6379);
    admin.Command({"SET", ns.Key("stock:" + sku), std::to_string(units)});
    admin.Command({"SET", ns.Key("price:" + sku), std::to_string(cents)});
  }

  // Waits for the order's completion signal (the list its last step pushes to): its status,
  // or "" after `timeout_s`.
  static std::string WaitDone(const Ns& ns, const std::string& id, int timeout_s = 90) {
    RedisSession admin("127.0.0.1", 6379);
    RedisValue v =
        admin.Command({"BLPOP", ns.Key("order:" + id + ":done"), std::to_string(timeout_s)});
    return v.elements.size() == 2 ? v.elements[1].str : "";
  }

  static std::map<std::string, std::string> Hash(const std::string& key) {
    RedisSession admin("127.0.0.1", 6379);
    RedisValue v = admin.Command({"HGETALL", key});
    std::map<std::string, std::string> out;
    for (size_t i = 0; i + 1 < v.elements.size(); i += 2)
      out[v.elements[i].str] = v.elements[i + 1].str;
    return out;
  }
  static std::vector<std::string> List(const std::string& key) {
    RedisSession admin("127.0.0.1", 6379);
    std::vector<std::string> out;
    for (const RedisValue& e : admin.Command({"LRANGE", key, "0", "-1"}).elements)
      out.push_back(e.str);
    return out;
  }
  static std::string Get(const std::string& key) {
    RedisSession admin("127.0.0.1", 6379);
    return admin.Command({"GET", key}).str;
  }

  static json::Json Answer(const HttpResult& r) { return json::Parse(r.body); }
  static std::string Field(const HttpResult& r, const char* name) {
    json::Json j = Answer(r);
    return j ? json::GetString(j.get(), name).value_or("") : "";
  }

  static std::string tag_;
  static Daemon* daemon_;
  static std::vector<std::string> created_;
};
std::string StoreFlows::tag_;
Daemon* StoreFlows::daemon_ = nullptr;
std::vector<std::string> StoreFlows::created_;

// ---- the data store: a function's Redis user reaches its prefixes and nothing else ----

TEST_F(StoreFlows, AFunctionReadsAndWritesOnlyItsOwnPrefixes) {
  Ns ns{tag_ + "a"};
  ASSERT_EQ(Create(ns, "probe", "ephemera/kv:latest", {"probe"}, {"mine:*"}).status, 201);
  ASSERT_EQ(Create(ns, "bare", "ephemera/kv:latest", {"probe"}, {}).status, 201);
  auto probe = [&](const std::string& fn, const std::vector<std::string>& command) {
    HttpResult r = daemon_->Invoke(ns.Fn(fn), R"({"command":)" + JsonList(command) + "}");
    EXPECT_EQ(r.status, 200) << r.body;
    return Field(r, "reply");
  };
  EXPECT_EQ(probe("probe", {"SET", ns.Key("mine:a"), "1"}), "OK");
  EXPECT_EQ(probe("probe", {"GET", ns.Key("mine:a")}), "1");
  EXPECT_EQ(probe("probe", {"HSET", ns.Key("mine:h"), "f", "v"}), "1");
  for (const std::vector<std::string>& outside : std::vector<std::vector<std::string>>{
           {"SET", ns.Key("other:a"), "1"},
           {"GET", ns.Key("order:1")},
           {"GET", "ephemera:events"},
           {"FLUSHALL"},
           {"KEYS", "*"},
           {"SCAN", "0"},
           {"CONFIG", "SET", "appendonly", "no"},
           {"EVAL", "return redis.call('GET', KEYS[1])", "1", ns.Key("other:a")},
       }) {
    std::string reply = probe("probe", outside);
    EXPECT_EQ(reply.rfind("(error) NOPERM", 0), 0u) << outside[0] << ": " << reply;
  }
  EXPECT_EQ(Get(ns.Key("other:a")), "") << "the refused write did not happen";
  EXPECT_EQ(Get(ns.Key("mine:a")), "1");
  // A function that declares no store gets no credentials at all.
  std::string bare = probe("bare", {"GET", ns.Key("mine:a")});
  EXPECT_NE(bare.find("EPHEMERA_STORE_URL is not set"), std::string::npos) << bare;

  // The user exists with exactly the declared keys, and goes with the function.
  RedisSession admin("127.0.0.1", 6379);
  std::string user = "ephemera-fn-" + ns.Fn("probe");
  RedisValue acl = admin.Command({"ACL", "GETUSER", user});
  ASSERT_FALSE(acl.nil) << "no ACL user " << user;
  EXPECT_NE(acl.Describe().find("~" + ns.Key("mine:*")), std::string::npos) << acl.Describe();
  ASSERT_EQ(Http("DELETE", daemon_->url() + "/2015-03-31/functions/" + ns.Fn("probe")).status, 204);
  EXPECT_TRUE(WaitUntil(
      [&] {
        return admin.Command({"ACL", "GETUSER", user}).nil;
      },
      5000))
      << "DeleteFunction deletes the user";
}

// An isolated function with a store reaches Redis through the forward the daemon opens
// for it, whether or not its spec forwards the port itself; only as its own user, so keys
// outside its prefixes stay out of reach. (A function without a store cannot reach Redis
// at all: isolation_test.cc, AHostServiceIsReachableOnlyWhereTheSpecForwardsIt.)
TEST_F(StoreFlows, AnIsolatedFunctionReachesTheStoreThroughTheForwardMadeForIt) {
  Ns ns{tag_ + "i"};
  ASSERT_EQ(Create(ns, "probe", "ephemera/kv:latest", {"probe"}, {"mine:*"},
                   R"("EPHEMERA_NETWORK":"isolated","EPHEMERA_FORWARD":"6379")")
                .status,
            201);
  ASSERT_EQ(Create(ns, "plain", "ephemera/kv:latest", {"probe"}, {"mine:*"},
                   R"("EPHEMERA_NETWORK":"isolated")")
                .status,
            201);
  for (const char* fn : {"probe", "plain"}) {
    HttpResult ok = daemon_->Invoke(
        ns.Fn(fn), R"({"command":["SET",")" + ns.Key(std::string("mine:") + fn) + R"(","iso"]})");
    ASSERT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(Field(ok, "reply"), "OK") << fn << ": " << ok.body;
    EXPECT_EQ(Get(ns.Key(std::string("mine:") + fn)), "iso");
    HttpResult denied =
        daemon_->Invoke(ns.Fn(fn), R"({"command":["GET",")" + ns.Key("other:i") + R"("]})");
    EXPECT_EQ(Field(denied, "reply").rfind("(error) NOPERM", 0), 0u) << fn << ": " << denied.body;
  }
}

// ---- the order flow (seed 000) ----

TEST_F(StoreFlows, ValidAndInvalidOrdersEndWithTheirStatusInTheStore) {
  Ns ns{tag_ + "o"};
  CreateOrderFunctions(ns);
  Stock(ns, "apple", 10, 50);
  Stock(ns, "pear", 5, 120);
  struct Case {
    std::string id, order, status, reason;  // reason: a part of it
    std::vector<std::string> path;
  };
  std::vector<Case> cases = {
      {"ok1",
       R"({"order_id":"ok1","customer":"ada","items":[{"sku":"apple","qty":2,"price":0.5},{"sku":"pear","qty":1,"price":1.2}]})",
       "completed",
       "",
       {"order-accept accepted", "order-check checked", "order-register registered",
        "order-generate completed"}},
      {"short",
       R"({"order_id":"short","customer":"bob","items":[{"sku":"pear","qty":9,"price":1.2}]})",
       "rejected",
       "out of stock: pear (9 wanted, 4 left)",
       {"order-accept accepted", "order-check rejected"}},
      {"cheap",
       R"({"order_id":"cheap","customer":"cy","items":[{"sku":"apple","qty":1,"price":0.4}]})",
       "rejected",
       "price of apple is 0.50, the order says 0.40",
       {"order-accept accepted", "order-check rejected"}},
      {"zero",
       R"({"order_id":"zero","customer":"di","items":[{"sku":"apple","qty":0,"price":0.5}]})",
       "rejected",
       "invalid order: item 1: qty",
       {"order-accept rejected"}},
      {"ghost",
       R"({"order_id":"ghost","customer":"ed","items":[{"sku":"kiwi","qty":1,"price":1}]})",
       "rejected",
       "unknown product kiwi",
       {"order-accept accepted", "order-check rejected"}},
      {"ok2",
       R"({"order_id":"ok2","customer":"fa","items":[{"sku":"apple","qty":3,"price":0.5}]})",
       "completed",
       "",
       {"order-accept accepted", "order-check checked", "order-register registered",
        "order-generate completed"}},
  };
  // One at a time, so the stock each sees is known.
  for (const Case& c : cases) {
    HttpResult r = daemon_->Invoke(ns.Fn("order-accept"), c.order);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Header("x-amz-function-error"), "") << r.body;
    EXPECT_EQ(Field(r, "order_id"), c.id);
    EXPECT_EQ(Field(r, "status"), c.id == "zero" ? "rejected" : "accepted") << r.body;
    EXPECT_EQ(WaitDone(ns, c.id), c.status) << c.id << "\n" << daemon_->log().substr(0, 4000);
    auto order = Hash(ns.Key("order:" + c.id));
    EXPECT_EQ(order["status"], c.status) << c.id;
    EXPECT_NE(order["reason"].find(c.reason), std::string::npos) << c.id << ": " << order["reason"];
    EXPECT_EQ(List(ns.Key("order:" + c.id + ":path")), c.path) << c.id;
  }
  // Stock went only to the completed orders; numbers are distinct; documents exist.
  EXPECT_EQ(Get(ns.Key("stock:apple")), "5");  // 10 - 2 - 3
  EXPECT_EQ(Get(ns.Key("stock:pear")), "4");   // 5 - 1
  auto ok1 = Hash(ns.Key("order:ok1"));
  auto ok2 = Hash(ns.Key("order:ok2"));
  EXPECT_EQ(ok1["number"], "1");
  EXPECT_EQ(ok2["number"], "2");
  EXPECT_EQ(Hash(ns.Key("order:short"))["number"], "");
  json::Json doc = json::Parse(Get(ns.Key("document:ok1")));
  ASSERT_NE(doc, nullptr) << "no document for ok1";
  EXPECT_EQ(json::GetString(doc.get(), "total"), "2.20");
  EXPECT_EQ(json::GetString(doc.get(), "number"), "1");
  EXPECT_EQ(Get(ns.Key("document:short")), "");
  // The same order sent again changes nothing.
  HttpResult again = daemon_->Invoke(ns.Fn("order-accept"), cases[0].order);
  EXPECT_EQ(Field(again, "status"), "completed") << again.body;
  EXPECT_NE(again.body.find("\"duplicate\":true"), std::string::npos) << again.body;
  EXPECT_EQ(Get(ns.Key("order-number")), "2");
  // Every container of the flow is gone.
  ASSERT_TRUE(daemon_->WaitIdle());
  for (const char* step : {"order-accept", "order-check", "order-register", "order-generate"}) {
    EXPECT_TRUE(ContainersWithLabel("ephemera.function=" + ns.Fn(step)).empty()) << step;
  }
}

TEST_F(StoreFlows, AStepThatRunsOutOfRetriesEndsTheOrderThroughItsOnFailureDestination) {
  // order-register without the order-number key in its store: its INCR gets NOPERM, it
  // fails, is retried once, and its OnFailure destination (order-generate) ends the order.
  Ns ns{tag_ + "f"};
  CreateOrderFunctions(ns, "", {"order:*"});
  Stock(ns, "apple", 10, 50);
  HttpResult r = daemon_->Invoke(
      ns.Fn("order-accept"),
      R"({"order_id":"f1","customer":"ada","items":[{"sku":"apple","qty":1,"price":0.5}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(WaitDone(ns, "f1"), "failed") << daemon_->log().substr(0, 4000);
  auto order = Hash(ns.Key("order:f1"));
  EXPECT_EQ(order["status"], "failed");
  EXPECT_NE(order["reason"].find(ns.Fn("order-register") + " failed (RetriesExhausted)"),
            std::string::npos)
      << order["reason"];
  EXPECT_NE(order["reason"].find("NOPERM"), std::string::npos) << order["reason"];
  EXPECT_EQ(List(ns.Key("order:f1:path")),
            (std::vector<std::string>{"order-accept accepted", "order-check checked",
                                      "order-generate failed"}));
  EXPECT_EQ(Get(ns.Key("order-number")), "") << "the refused INCR did not happen";
}

TEST_F(StoreFlows, TheOrderFlowRunsInIsolatedNamespacesToo) {
  Ns ns{tag_ + "n"};
  CreateOrderFunctions(ns, R"("EPHEMERA_NETWORK":"isolated","EPHEMERA_FORWARD":"6379")");
  Stock(ns, "apple", 3, 50);
  for (const char* id : {"n1", "n2"}) {
    HttpResult r =
        daemon_->Invoke(ns.Fn("order-accept"),
                        std::string(R"({"order_id":")") + id +
                            R"(","customer":"ada","items":[{"sku":"apple","qty":2,"price":0.5}]})");
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(Field(r, "status"), "accepted") << r.body;
  }
  // Both were accepted; the stock is enough for one of them.
  std::string s1 = WaitDone(ns, "n1"), s2 = WaitDone(ns, "n2");
  EXPECT_EQ(s1, "completed") << daemon_->log().substr(0, 4000);
  EXPECT_EQ(s2, "rejected");
  EXPECT_EQ(Get(ns.Key("stock:apple")), "1");
}

// The figure: one order at a time, client submit -> completion signal.
TEST_F(StoreFlows, TimePerOrder) {
  Ns ns{tag_ + "p"};
  CreateOrderFunctions(ns);
  Stock(ns, "apple", 1000, 50);
  std::vector<double> per_order;
  for (int i = 0; i < 8; ++i) {
    std::string id = "p" + std::to_string(i);
    double t0 = NowMs();
    HttpResult r =
        daemon_->Invoke(ns.Fn("order-accept"),
                        R"({"order_id":")" + id +
                            R"(","customer":"ada","items":[{"sku":"apple","qty":1,"price":0.5}]})");
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(WaitDone(ns, id), "completed");
    per_order.push_back(NowMs() - t0);
  }
  // Invoke -> handler of each Event step (queue + cold start), from the flow's log stream.
  RedisSession admin("127.0.0.1", 6379);
  std::vector<double> hop;
  for (const RedisValue& e : admin.Command({"XRANGE", ns.Key("order:_log"), "-", "+"}).elements) {
    const auto& f = e.elements.size() == 2 ? e.elements[1].elements : std::vector<RedisValue>{};
    for (size_t i = 0; i + 1 < f.size(); i += 2) {
      if (f[i].str == "latency_ms" && f[i + 1].str != "-1") hop.push_back(std::stod(f[i + 1].str));
    }
  }
  std::printf(
      "order flow, 8 orders one at a time (4 cold containers each): per order p50 %.0f ms, "
      "max %.0f ms; Event step invoke->handler p50 %.0f ms, p99 %.0f ms (%zu steps)\n",
      Percentile(per_order, 0.5), Percentile(per_order, 1.0), Percentile(hop, 0.5),
      Percentile(hop, 0.99), hop.size());
  std::fflush(stdout);
  EXPECT_EQ(hop.size(), 24u) << "check, register and generate for each order";
}

// ---- the key/value roundtrip and the batch (seed 002) ----

TEST_F(StoreFlows, AKeyValueTravelsThroughTheFunctionsIntoTheStoreAndBack) {
  Ns ns{tag_ + "k"};
  ASSERT_EQ(Create(ns, "kv-roundtrip", "ephemera/kv:latest", {"roundtrip"}, {"kv:*"}).status, 201);
  ASSERT_EQ(Create(ns, "kv-store", "ephemera/kv:latest", {"store"}, {"kv:*"}).status, 201);
  HttpResult r =
      daemon_->Invoke(ns.Fn("kv-roundtrip"), R"({"key":"greeting","value":"hello \"world\" ☃"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("x-amz-function-error"), "") << r.body;
  EXPECT_EQ(Field(r, "value"), "hello \"world\" ☃") << r.body;
  EXPECT_NE(r.body.find("\"persisted\":true"), std::string::npos) << r.body;
  EXPECT_EQ(Get(ns.Key("kv:greeting")), "hello \"world\" ☃") << "persisted by kv-store";
  HttpResult bad = daemon_->Invoke(ns.Fn("kv-roundtrip"), R"({"key":"no spaces","value":"x"})");
  EXPECT_EQ(bad.Header("x-amz-function-error"), "Unhandled") << bad.body;
}

TEST_F(StoreFlows, ABatchIsStoredAsAHashWithItsStatusAndReadBack) {
  Ns ns{tag_ + "b"};
  ASSERT_EQ(Create(ns, "batch", "ephemera/kv:latest", {"batch"}, {"batch:*"}, "", 90).status, 201);
  ASSERT_EQ(Create(ns, "batch-item", "ephemera/kv:latest", {"batch-item"}, {"batch:*"}).status,
            201);
  std::string items;
  for (int i = 1; i <= 6; ++i) {
    items += std::string(i > 1 ? "," : "") + R"({"id":"i)" + std::to_string(i) + R"(","value":"v)" +
             std::to_string(i) + "\"}";
  }
  HttpResult done = daemon_->Invoke(
      ns.Fn("batch"), R"({"batch_id":"good","wait_ms":60000,"items":[)" + items + "]}");
  ASSERT_EQ(done.status, 200) << done.body;
  json::Json j = Answer(done);
  ASSERT_NE(j, nullptr) << done.body;
  EXPECT_EQ(json::GetNumber(j.get(), "statusCode"), 200) << done.body;
  EXPECT_EQ(json::GetString(j.get(), "status"), "Done") << done.body;
  EXPECT_EQ(json::GetNumber(j.get(), "stored"), 6);
  auto batch = Hash(ns.Key("batch:good"));
  EXPECT_EQ(batch["status"], "Done");
  EXPECT_EQ(batch["total"], "6");
  auto stored = Hash(ns.Key("batch:good:items"));
  EXPECT_EQ(stored.size(), 6u);
  EXPECT_EQ(stored["i4"], "v4");

  // One failing item: the status is its reason.
  HttpResult failed = daemon_->Invoke(
      ns.Fn("batch"),
      R"({"batch_id":"bad","wait_ms":60000,"items":[{"id":"a","value":"1"},{"id":"b","value":"2","fail":"b is poison"},{"id":"c","value":""}]})");
  ASSERT_EQ(failed.status, 200) << failed.body;
  std::string status = Field(failed, "status");
  EXPECT_TRUE(status == "Failed: item b: b is poison" ||
              status == "Failed: item c: value must be a non-empty string")
      << failed.body;
  EXPECT_EQ(Hash(ns.Key("batch:bad"))["status"], status);
  EXPECT_EQ(Hash(ns.Key("batch:bad:items")).size(), 1u);
  EXPECT_EQ(Hash(ns.Key("batch:bad:failures")).size(), 2u);

  // Read back.
  HttpResult read = daemon_->Invoke(ns.Fn("batch"), R"({"read":"good"})");
  json::Json rj = Answer(read);
  ASSERT_NE(rj, nullptr) << read.body;
  EXPECT_EQ(json::GetString(rj.get(), "status"), "Done");
  EXPECT_EQ(json::GetString(cJSON_GetObjectItem(rj.get(), "items"), "i6"), "v6") << read.body;
  EXPECT_EQ(json::GetNumber(Answer(daemon_->Invoke(ns.Fn("batch"), R"({"read":"nope"})")).get(),
                            "statusCode"),
            404);
  // Malformed: 400; the same id with another size: 409.
  EXPECT_EQ(json::GetNumber(Answer(daemon_->Invoke(ns.Fn("batch"), R"({"items":[]})")).get(),
                            "statusCode"),
            400);
  EXPECT_EQ(
      json::GetNumber(
          Answer(daemon_->Invoke(ns.Fn("batch"), R"({"batch_id":"good","items":[{"value":"x"}]})"))
              .get(),
          "statusCode"),
      409);
}

TEST_F(StoreFlows, AWaitLimitThatPassesFirstIsA408AndTheBatchStillEnds) {
  Ns ns{tag_ + "w"};
  ASSERT_EQ(Create(ns, "batch", "ephemera/kv:latest", {"batch"}, {"batch:*"}, "", 90).status, 201);
  ASSERT_EQ(Create(ns, "batch-item", "ephemera/kv:latest", {"batch-item"}, {"batch:*"}).status,
            201);
  HttpResult r = daemon_->Invoke(
      ns.Fn("batch"), R"({"batch_id":"slow","wait_ms":1,"items":[{"value":"a"},{"value":"b"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  json::Json j = Answer(r);
  ASSERT_NE(j, nullptr) << r.body;
  EXPECT_EQ(json::GetNumber(j.get(), "statusCode"), 408) << r.body;
  EXPECT_EQ(json::GetString(j.get(), "error"), "RequestTimeout");
  EXPECT_NE(json::GetString(j.get(), "message").value_or("").find("wait limit of 1 ms"),
            std::string::npos);
  EXPECT_TRUE(WaitUntil([&] { return Hash(ns.Key("batch:slow"))["status"] == "Done"; }, 60000))
      << "the items arrive after the client stopped waiting";
  // Behind API Gateway the 4xx is the proxy response's statusCode.
  HttpResult gw = daemon_->Invoke(
      ns.Fn("batch"),
      R"({"version":"2.0","rawPath":"/batch","requestContext":{"http":{"method":"POST"}},)"
      R"("body":"{\"batch_id\":\"gw\",\"wait_ms\":1,\"items\":[{\"value\":\"a\"}]}"})");
  json::Json g = Answer(gw);
  ASSERT_NE(g, nullptr) << gw.body;
  EXPECT_EQ(json::GetNumber(g.get(), "statusCode"), 408) << gw.body;
  EXPECT_NE(json::GetString(g.get(), "body").value_or("").find("RequestTimeout"),
            std::string::npos);
}

// seed 002: no item lost or stored twice when the daemon is killed mid-batch.
TEST(StoreFlowsKill, NoBatchItemIsLostOrStoredTwiceWhenTheDaemonIsKilledMidBatch) {
  std::string tag = Tag() + "k";
  Ns ns{tag};
  Daemon d;
  Daemon::Options o;
  // A stable daemon id: the restarted daemon resumes the events the killed one held.
  o.extra_args = {"--redis-prefix",       tag + ":ev:", "--daemon-id",        tag,
                  "--event-retry-delays", "200,400",    "--event-claim-idle", "3000"};
  ASSERT_EQ(d.Start(o), "");
  auto create = [&](const std::string& name, const std::string& role, int timeout) {
    std::string body =
        R"({"FunctionName":")" + ns.Fn(name) +
        R"(","Code":{"ImageUri":"ephemera/kv:latest"},"Timeout":)" + std::to_string(timeout) +
        R"(,"ImageConfig":{"Command":[")" + role +
        R"("]},"Environment":{"Variables":{"EPHEMERA_MODE":"native","KEY_PREFIX":")" + tag +
        R"(:","PEER_PREFIX":")" + tag + R"(-","EPHEMERA_STORE_PREFIXES":")" + tag +
        R"(:batch:*"}}})";
    return Http("POST", d.url() + "/2015-03-31/functions", body).status;
  };
  ASSERT_EQ(create("batch", "batch", 90), 201);
  ASSERT_EQ(create("batch-item", "batch-item", 10), 201);
  const int kItems = 16;
  std::string items;
  // Item i holds 1 + 0.25 i s: their ends are spread over 4 s, so when the third is stored
  // most are still running (with one hold for all, a loaded machine could finish them all
  // within one poll, and the kill would cut nothing short).
  for (int i = 1; i <= kItems; ++i) {
    items += std::string(i > 1 ? "," : "") + R"({"id":"i)" + std::to_string(i) + R"(","value":"v)" +
             std::to_string(i) + R"(","hold_ms":)" + std::to_string(1000 + 250 * i) + "}";
  }
  std::string batch = R"({"batch_id":"k","wait_ms":60000,"items":[)" + items + "]}";
  std::string url = d.url();
  HttpResult first;
  std::thread client([&] {
    first = Http("POST", url + "/2015-03-31/functions/" + ns.Fn("batch") + "/invocations", batch);
  });
  auto stored = [&] {
    RedisSession admin("127.0.0.1", 6379);
    return admin.Command({"HLEN", ns.Key("batch:k:items")}).integer;
  };
  bool mid = WaitUntil([&] { return stored() >= 3; }, 90000);
  long long at_kill = stored();
  kill(d.pid(), SIGKILL);
  d.Stop();  // reaps the killed process
  client.join();
  ASSERT_TRUE(mid) << "the batch never got going";
  EXPECT_NE(first.status, 200) << "the client's call was cut off by the kill: " << first.body;
  EXPECT_LT(at_kill, kItems) << "the kill came after every item was stored";

  ASSERT_EQ(d.Start(o), "");
  // The events the killed daemon held or had not started yet run now; nothing is sent again.
  EXPECT_TRUE(WaitUntil(
      [&] {
        RedisSession admin("127.0.0.1", 6379);
        return admin.Command({"HGET", ns.Key("batch:k"), "status"}).str == "Done";
      },
      120000))
      << "stored " << stored() << " of " << kItems;
  // And the client sends the batch again, as a client whose call was cut off would.
  HttpResult again =
      Http("POST", d.url() + "/2015-03-31/functions/" + ns.Fn("batch") + "/invocations", batch);
  ASSERT_EQ(again.status, 200) << again.body;
  json::Json aj = json::Parse(again.body);
  ASSERT_NE(aj, nullptr) << again.body;
  EXPECT_EQ(json::GetString(aj.get(), "status"), "Done") << again.body;
  EXPECT_EQ(json::GetNumber(aj.get(), "stored"), kItems);

  RedisSession admin("127.0.0.1", 6379);
  RedisValue all = admin.Command({"HGETALL", ns.Key("batch:k:items")});
  std::map<std::string, std::string> kept;
  for (size_t i = 0; i + 1 < all.elements.size(); i += 2)
    kept[all.elements[i].str] = all.elements[i + 1].str;
  EXPECT_EQ(kept.size(), static_cast<size_t>(kItems)) << "each item exactly once";
  for (int i = 1; i <= kItems; ++i) {
    EXPECT_EQ(kept["i" + std::to_string(i)], "v" + std::to_string(i)) << "item i" << i;
  }
  long long deliveries = 0;
  RedisValue del = admin.Command({"HVALS", ns.Key("batch:k:deliveries")});
  for (const RedisValue& v : del.elements) deliveries += std::stoll(v.str);
  std::printf(
      "batch of %d, daemon killed with %lld stored: after the restart %zu stored once "
      "each, %lld deliveries in all\n",
      kItems, at_kill, kept.size(), deliveries);
  std::fflush(stdout);
  EXPECT_GT(deliveries, kItems) << "no item was cut short by the kill";
  EXPECT_EQ(admin.Command({"HGET", ns.Key("batch:k"), "stored"}).str, std::to_string(kItems));
  for (const char* f : {"batch", "batch-item"}) {
    EXPECT_EQ(Http("DELETE", d.url() + "/2015-03-31/functions/" + ns.Fn(f)).status, 204);
  }
  EXPECT_EQ(d.Stop(), 0) << d.log();
  DeleteKeys(tag + "*");
}

}  // namespace
}  // namespace ephemera::testing
