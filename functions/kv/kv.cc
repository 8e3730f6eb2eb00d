// functions/kv/kv.cc: the key/value roundtrip and the batch (seed 002), and a store probe.
//
// One static binary, one image (ephemera/kv); the registry runs it as several functions,
// the role given as the first argument ("args" in registry/functions.json):
//
//   roundtrip   {"key", "value"} from the client: hands the pair to kv-store (a
//               RequestResponse invoke, by name through the daemon), reads it back from the
//               store and answers {"key", "value", "persisted": true, "path": [...]}: the
//               value the client gets is the one that was persisted.
//   store       {"key", "value"}: SET kv:<key> value; answers {"stored": true, "key"}.
//   batch       {"batch_id"?, "items": [{"id"?, "value", "fail"?}, ...], "wait_ms"?}: records
//               the batch (batch:<id>: total, status Pending), fans the items out as N Event
//               invocations of batch-item, then waits (BLPOP on batch:<id>:reply, the seed's
//               reply channel) up to wait_ms (default 10000, at most 60000) for the last item.
//               Answers {"statusCode": 200, "batch_id", "status": "Done" | "Failed: <first
//               failure>", "total", "stored", "failed"}, or statusCode 408 (RequestTimeout)
//               when the wait limit passes first, 400 for a malformed batch, 409 for a
//               batch id already used with another size. {"read": "<batch_id>"} answers the
//               stored batch (status, items, failures), 404 if there is none. Sent again with
//               the same batch id, a batch is not stored twice: it answers the status at once
//               if the batch has ended, else hands the items out again (each is stored once,
//               see batch-item) and waits.
//               An API Gateway event (one with "requestContext" and "body") gets the same
//               answer as an API Gateway proxy response: {"statusCode", "headers", "body"},
//               so behind an HTTP front the 4xx is the HTTP status.
//   batch-item  {"batch_id", "item_id", "value", "fail"?, "total"}: stores the item, once,
//               keyed by its id (HSETNX batch:<id>:items); an item with a "fail" reason or an
//               empty value is recorded as failed instead (batch:<id>:failures, and the
//               batch's first failure). Counts every delivery (batch:<id>:deliveries). The
//               delivery that finds all `total` items in sets the batch's final status and
//               pushes it on batch:<id>:reply. Event invocations come at least once (a daemon
//               killed mid-batch runs some again): every write is idempotent, keyed by item id.
//               An item's "hold_ms" (up to 10000) makes batch-item wait that long before
//               storing it: a test knob, so a kill can land in the middle of an item.
//   probe       {"command": ["GET", "k"]}: runs one Redis command as the function's own
//               store user and answers {"ok", "reply"} (the reply text, "(error) NOPERM ..."
//               for a key outside its prefixes); the tests use it to show the ACL scoping.
//
// Keys (all behind KEY_PREFIX; functions/orders/support/store.h): kv:<key>, batch:<id>,
// batch:<id>:items, batch:<id>:failures, batch:<id>:deliveries, batch:<id>:reply.
// Functions it invokes get PEER_PREFIX in front of their names (kv-store, batch-item).
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "functions/orders/support/invoke.h"
#include "functions/orders/support/json.h"
#include "functions/orders/support/store.h"
#include "shim/native.h"

namespace ephemera::kv {
namespace {

using fn::Reply;
using fn::Store;
using fn::Value;
using native::Result;

std::unique_ptr<Store> g_store;
bool g_broken = false;

Store* StoreOrNull(std::string* error) {
  if (g_broken) {
    g_store.reset();
    g_broken = false;
  }
  if (!g_store) g_store = Store::Connect(error);
  return g_store.get();
}

// A reply that came as no reply at all: the next event opens a new connection.
bool Broken(const Reply& r) {
  if (r.type == Reply::Type::kNone) g_broken = true;
  return r.type == Reply::Type::kNone;
}

bool ValidName(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

std::string NewId(const char* prefix) {
  unsigned char b[6] = {};
  std::string id = prefix;
  if (getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
    return id + std::to_string(fn::NowMs());
  }
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char c : b) {
    id.push_back(kHex[c >> 4]);
    id.push_back(kHex[c & 15]);
  }
  return id;
}

Result Json(const Value& v) {
  return Result::Success(v.Serialize());
}

// ---- roundtrip and store ----

Result Roundtrip(std::string_view event) {
  Value in;
  std::string error;
  if (!fn::Parse(event, &in, &error)) return Result::Failure("KV.BadRequest", error);
  auto key = in.GetString("key");
  auto value = in.GetString("value");
  if (!key || !ValidName(*key, 128)) {
    return Result::Failure("KV.BadRequest", "key must be 1..128 of [A-Za-z0-9-_.:]");
  }
  if (!value) return Result::Failure("KV.BadRequest", "value must be a string");
  // Through the next function, by name: it persists the pair.
  Value forward = Value::Object();
  forward.Set("key", *key);
  forward.Set("value", *value);
  fn::InvokeResult stored = fn::Invoke(fn::PeerName("kv-store"), forward.Serialize(), false);
  if (!stored.ok() || !stored.function_error.empty()) {
    return Result::Failure(
        "KV.StoreFailed",
        fn::PeerName("kv-store") + ": " + (stored.error.empty() ? stored.body : stored.error));
  }
  // Back from the store: what the client gets is what was persisted.
  Store* store = StoreOrNull(&error);
  if (store == nullptr) return Result::Failure("Store.Unavailable", error);
  Reply back = store->Command({"GET", Store::Key("kv:" + *key)});
  if (Broken(back) || back.is_error()) {
    return Result::Failure("Store.Error", "GET: " + back.Describe());
  }
  Value out = Value::Object();
  out.Set("key", *key);
  if (back.is_nil()) {
    out.Set("value", Value::Null());
  } else {
    out.Set("value", back.str);
  }
  out.Set("persisted", !back.is_nil() && back.str == *value);
  Value path = Value::Array();
  path.Push(Value::String("kv-roundtrip"));
  path.Push(Value::String(fn::PeerName("kv-store")));
  path.Push(Value::String("store"));
  path.Push(Value::String("kv-roundtrip"));
  out.Set("path", std::move(path));
  return Json(out);
}

Result KeepPair(std::string_view event) {
  Value in;
  std::string error;
  if (!fn::Parse(event, &in, &error)) return Result::Failure("KV.BadRequest", error);
  auto key = in.GetString("key");
  auto value = in.GetString("value");
  if (!key || !ValidName(*key, 128) || !value) {
    return Result::Failure("KV.BadRequest",
                           "needs a key (1..128 of [A-Za-z0-9-_.:]) and a "
                           "string value");
  }
  Store* store = StoreOrNull(&error);
  if (store == nullptr) return Result::Failure("Store.Unavailable", error);
  Reply r = store->Command({"SET", Store::Key("kv:" + *key), *value});
  if (Broken(r) || r.is_error()) return Result::Failure("Store.Error", "SET: " + r.Describe());
  Value out = Value::Object();
  out.Set("stored", true);
  out.Set("key", *key);
  return Json(out);
}

// ---- batch ----

std::string BatchKey(const std::string& id, const char* part = "") {
  return Store::Key("batch:" + id + part);
}

// The answer of the batch function, statusCode included.
Value Status(int code, const std::string& batch_id) {
  Value v = Value::Object();
  v.Set("statusCode", code);
  if (!batch_id.empty()) v.Set("batch_id", batch_id);
  return v;
}

Value Problem(int code, const std::string& batch_id, const char* error,
              const std::string& message) {
  Value v = Status(code, batch_id);
  v.Set("error", error);
  v.Set("message", message);
  return v;
}

std::map<std::string, std::string> HashOf(Store& store, const std::string& key) {
  std::map<std::string, std::string> out;
  Reply r = store.Command({"HGETALL", key});
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2)
    out[r.elements[i].str] = r.elements[i + 1].str;
  return out;
}

long long HashLen(Store& store, const std::string& key) {
  return store.Command({"HLEN", key}).integer;
}

Value Summary(Store& store, const std::string& id, int code) {
  auto batch = HashOf(store, BatchKey(id));
  Value v = Status(code, id);
  v.Set("status", batch["status"]);
  v.Set("total", std::atoll(batch["total"].c_str()));
  v.Set("stored", HashLen(store, BatchKey(id, ":items")));
  v.Set("failed", HashLen(store, BatchKey(id, ":failures")));
  return v;
}

Value ReadBatch(Store& store, const std::string& id) {
  auto batch = HashOf(store, BatchKey(id));
  if (batch.empty()) return Problem(404, id, "NotFound", "no batch " + id + " in the store");
  Value v = Summary(store, id, 200);
  for (const char* field : {"created_ms", "finished_ms"}) {
    if (batch.count(field)) v.Set(field, std::atoll(batch[field].c_str()));
  }
  Value items = Value::Object();
  for (const auto& [k, val] : HashOf(store, BatchKey(id, ":items"))) items.Set(k, val);
  Value failures = Value::Object();
  for (const auto& [k, val] : HashOf(store, BatchKey(id, ":failures"))) failures.Set(k, val);
  v.Set("items", std::move(items));
  v.Set("failures", std::move(failures));
  return v;
}

Value RunBatch(const Value& in) {
  std::string error;
  Store* store = StoreOrNull(&error);
  if (store == nullptr) return Problem(503, "", "StoreUnavailable", error);
  if (auto read = in.GetString("read")) {
    if (!ValidName(*read, 64)) return Problem(400, "", "BadRequest", "read needs a batch id");
    return ReadBatch(*store, *read);
  }
  std::string id = in.GetString("batch_id").value_or("");
  if (in.Find("batch_id") == nullptr) id = NewId("b-");
  if (!ValidName(id, 64))
    return Problem(400, "", "BadRequest", "batch_id must be 1..64 of [A-Za-z0-9-_.:]");
  const Value* items = in.Find("items");
  if (items == nullptr || !items->is_array() || items->items().empty() ||
      items->items().size() > 1000) {
    return Problem(400, id, "BadRequest", "items must be an array of 1..1000 items");
  }
  double wait_ms = in.GetNumber("wait_ms").value_or(10000);
  if (wait_ms < 1 || wait_ms > 60000) {
    return Problem(400, id, "BadRequest", "wait_ms must be 1..60000");
  }
  // Each item gets an id: its own, or its position.
  std::vector<Value> events;
  size_t n = 0;
  for (const Value& item : items->items()) {
    ++n;
    std::string item_id = item.GetString("id").value_or(std::to_string(n));
    if (!ValidName(item_id, 64)) {
      return Problem(400, id, "BadRequest",
                     "item " + std::to_string(n) + ": id must be 1..64 of [A-Za-z0-9-_.:]");
    }
    Value e = Value::Object();
    e.Set("batch_id", id);
    e.Set("item_id", item_id);
    e.Set("value", item.Find("value") != nullptr ? *item.Find("value") : Value::Null());
    if (auto fail = item.GetString("fail")) e.Set("fail", *fail);
    if (auto hold = item.GetNumber("hold_ms")) e.Set("hold_ms", *hold);
    e.Set("total", static_cast<long long>(items->items().size()));
    events.push_back(std::move(e));
  }
  std::string total = std::to_string(events.size());
  Reply created = store->Transaction({
      {"HSETNX", BatchKey(id), "total", total},
      {"HSETNX", BatchKey(id), "status", "Pending"},
      {"HSETNX", BatchKey(id), "created_ms", std::to_string(fn::NowMs())},
      {"HGET", BatchKey(id), "total"},
      {"HGET", BatchKey(id), "status"},
  });
  if (Broken(created) || created.elements.size() != 5) {
    return Problem(503, id, "StoreError", "recording the batch: " + created.Describe());
  }
  if (created.elements[3].str != total) {
    return Problem(
        409, id, "Conflict",
        "batch " + id + " exists with " + created.elements[3].str + " items, not " + total);
  }
  if (created.elements[4].str != "Pending") return Summary(*store, id, 200);  // ended already

  // The fan-out: N Event invocations, by name through the daemon.
  size_t handed = 0;
  for (const Value& e : events) {
    fn::InvokeResult r = fn::Invoke(fn::PeerName("batch-item"), e.Serialize(), true);
    if (!r.ok()) {
      return Problem(503, id, "FanOutFailed",
                     std::to_string(handed) + " of " + total + " items handed out; " +
                         fn::PeerName("batch-item") + ": " + (r.error.empty() ? r.body : r.error) +
                         " (send the batch again: stored items are not stored twice)");
    }
    ++handed;
  }
  // The reply channel: the last item pushes the final status.
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.3f", wait_ms / 1000.0);
  Reply reply =
      store->Command({"BLPOP", BatchKey(id, ":reply"), seconds}, static_cast<int>(wait_ms) + 5000);
  if (Broken(reply) || reply.is_error()) {
    return Problem(503, id, "StoreError", "waiting for the batch: " + reply.Describe());
  }
  Value summary = Summary(*store, id, 200);
  if (reply.is_nil() && summary.GetString("status").value_or("") == "Pending") {
    Value v = Summary(*store, id, 408);
    v.Set("error", "RequestTimeout");
    v.Set("message",
          "the wait limit of " + std::to_string(static_cast<long long>(wait_ms)) +
              " ms passed with " +
              std::to_string(static_cast<long long>(summary.GetNumber("stored").value_or(0) +
                                                    summary.GetNumber("failed").value_or(0))) +
              " of " + total + " items in; the batch goes on and can be read back");
    return v;
  }
  return summary;
}

Result Batch(std::string_view event) {
  Value in;
  std::string error;
  if (!fn::Parse(event, &in, &error) || !in.is_object()) {
    return Json(Problem(400, "", "BadRequest", "the batch is not a JSON object " + error));
  }
  // Behind API Gateway: the batch is the body, and the answer a proxy response.
  if (in.Find("requestContext") != nullptr && in.Find("body") != nullptr) {
    Value body;
    std::string text = in.GetString("body").value_or("");
    Value answer = fn::Parse(text, &body, &error) && body.is_object()
                       ? RunBatch(body)
                       : Problem(400, "", "BadRequest", "the body is not a JSON object " + error);
    Value proxy = Value::Object();
    proxy.Set("statusCode", answer.GetNumber("statusCode").value_or(500));
    Value headers = Value::Object();
    headers.Set("content-type", "application/json");
    proxy.Set("headers", std::move(headers));
    proxy.Set("body", answer.Serialize());
    return Json(proxy);
  }
  return Json(RunBatch(in));
}

Result BatchItem(std::string_view event) {
  Value in;
  std::string error;
  if (!fn::Parse(event, &in, &error)) return Result::Failure("Batch.BadEvent", error);
  std::string id = in.GetString("batch_id").value_or("");
  std::string item = in.GetString("item_id").value_or("");
  long long total = static_cast<long long>(in.GetNumber("total").value_or(0));
  if (!ValidName(id, 64) || !ValidName(item, 64) || total <= 0) {
    return Result::Failure("Batch.BadEvent", "needs batch_id, item_id and total");
  }
  Store* store = StoreOrNull(&error);
  if (store == nullptr) return Result::Failure("Store.Unavailable", error);

  const Value* value = in.Find("value");
  std::string reason = in.GetString("fail").value_or("");
  if (reason.empty() && (value == nullptr || !value->is_string() || value->string().empty())) {
    reason = "value must be a non-empty string";
  }
  // Every delivery is counted, before anything else: a run cut short still shows.
  if (Broken(store->Command({"HINCRBY", BatchKey(id, ":deliveries"), item, "1"}))) {
    return Result::Failure("Store.Error", "counting item " + item + ": " + store->last_error());
  }
  // A test knob: hold the item this long before storing it (so a kill lands mid-item).
  if (double hold = in.GetNumber("hold_ms").value_or(0); hold > 0 && hold <= 10000) {
    long long ms = static_cast<long long>(hold);
    timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000 * 1000000)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  std::vector<std::vector<std::string>> cmds;
  if (reason.empty()) {
    cmds.push_back({"HSETNX", BatchKey(id, ":items"), item, value->string()});
  } else {
    cmds.push_back({"HSETNX", BatchKey(id, ":failures"), item, reason});
    cmds.push_back({"HSETNX", BatchKey(id), "first_failure", "item " + item + ": " + reason});
  }
  cmds.push_back({"HLEN", BatchKey(id, ":items")});
  cmds.push_back({"HLEN", BatchKey(id, ":failures")});
  cmds.push_back({"HGET", BatchKey(id), "first_failure"});
  Reply exec = store->Transaction(cmds);
  if (Broken(exec) || exec.type != Reply::Type::kArray || exec.elements.size() != cmds.size()) {
    return Result::Failure(
        "Store.Error", "storing item " + item + ": " + exec.Describe() + " " + store->last_error());
  }
  size_t k = exec.elements.size();
  bool stored_now = exec.elements[0].integer == 1;
  long long stored = exec.elements[k - 3].integer;
  long long failed = exec.elements[k - 2].integer;
  bool complete = stored + failed >= total;
  if (complete) {
    // Every delivery that sees the batch full writes the same status (the first failure is
    // set once), so a delivery run again changes nothing; the reply may be pushed twice.
    std::string status = failed == 0 ? "Done" : "Failed: " + exec.elements[k - 1].str;
    std::string now = std::to_string(fn::NowMs());
    Reply fin = store->Transaction({
        {"HSET", BatchKey(id), "status", status, "stored", std::to_string(stored), "failed",
         std::to_string(failed)},
        {"HSETNX", BatchKey(id), "finished_ms", now},
        {"RPUSH", BatchKey(id, ":reply"), status},
        {"EXPIRE", BatchKey(id, ":reply"), "3600"},
    });
    if (Broken(fin) || fin.type != Reply::Type::kArray) {
      return Result::Failure("Store.Error", "finishing batch " + id + ": " + fin.Describe());
    }
  }
  Value out = Value::Object();
  out.Set("batch_id", id);
  out.Set("item_id", item);
  out.Set("stored", reason.empty() && stored_now);
  if (!reason.empty()) out.Set("failed", reason);
  out.Set("complete", complete);
  return Json(out);
}

// ---- probe ----

Result Probe(std::string_view event) {
  Value in;
  std::string error;
  if (!fn::Parse(event, &in, &error)) return Result::Failure("Probe.BadEvent", error);
  const Value* command = in.Find("command");
  if (command == nullptr || !command->is_array() || command->items().empty()) {
    return Result::Failure("Probe.BadEvent", "command must be a non-empty array of strings");
  }
  std::vector<std::string> argv;
  for (const Value& a : command->items()) argv.push_back(a.is_string() ? a.string() : "");
  Value out = Value::Object();
  Store* store = StoreOrNull(&error);
  if (store == nullptr) {
    out.Set("ok", false);
    out.Set("reply", "(no connection) " + error);
    return Json(out);
  }
  Reply r = store->Command(argv);
  Broken(r);
  out.Set("ok", r.ok());
  out.Set("reply", r.Describe());
  return Json(out);
}

}  // namespace
}  // namespace ephemera::kv

int main(int argc, char** argv) {
  using ephemera::native::Context;
  using ephemera::native::Result;
  std::string role = argc > 1 ? argv[1] : "";
  Result (*handler)(std::string_view) = nullptr;
  if (role == "roundtrip") handler = ephemera::kv::Roundtrip;
  if (role == "store") handler = ephemera::kv::KeepPair;
  if (role == "batch") handler = ephemera::kv::Batch;
  if (role == "batch-item") handler = ephemera::kv::BatchItem;
  if (role == "probe") handler = ephemera::kv::Probe;
  if (handler == nullptr) {
    const char msg[] = "usage: /kv roundtrip|store|batch|batch-item|probe\n";
    return write(2, msg, sizeof msg - 1) < 0 ? 2 : 2;
  }
  return ephemera::native::Serve(
      [handler](std::string_view event, const Context&) { return handler(event); });
}
