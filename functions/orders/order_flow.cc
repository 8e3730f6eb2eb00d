#include "functions/orders/order_flow.h"

#include <memory>

namespace ephemera::orders {
namespace {

std::unique_ptr<fn::Store> g_store;
bool g_broken = false;

}  // namespace

std::string OrderKey(const std::string& id) {
  return fn::Store::Key("order:" + id);
}
std::string PathKey(const std::string& id) {
  return fn::Store::Key("order:" + id + ":path");
}
std::string DoneKey(const std::string& id) {
  return fn::Store::Key("order:" + id + ":done");
}
std::string LogKey() {
  return fn::Store::Key("order:_log");
}
std::string StockKey(const std::string& sku) {
  return fn::Store::Key("stock:" + sku);
}
std::string PriceKey(const std::string& sku) {
  return fn::Store::Key("price:" + sku);
}
std::string NumberKey() {
  return fn::Store::Key("order-number");
}
std::string DocumentKey(const std::string& id) {
  return fn::Store::Key("document:" + id);
}

bool ValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(id[0])) return false;
  for (char c : id) {
    if (!alnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

fn::Store* StoreOrNull(std::string* error) {
  if (g_broken) {
    g_store.reset();
    g_broken = false;
  }
  if (!g_store) g_store = fn::Store::Connect(error);
  return g_store.get();
}

void DropStore() {
  g_broken = true;
}

bool ReadStepEvent(std::string_view event, std::string* id, long long* latency_ms,
                   std::string* error) {
  fn::Value v;
  if (!fn::Parse(event, &v, error)) return false;
  auto order_id = v.GetString("order_id");
  if (!order_id || !ValidId(*order_id)) {
    *error = "the event has no valid order_id";
    return false;
  }
  *id = *order_id;
  auto sent = v.GetNumber("sent_ms");
  *latency_ms = sent ? fn::NowMs() - static_cast<long long>(*sent) : -1;
  return true;
}

std::map<std::string, std::string> LoadOrder(fn::Store& store, const std::string& id) {
  std::map<std::string, std::string> out;
  fn::Reply r = store.Command({"HGETALL", OrderKey(id)});
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    out[r.elements[i].str] = r.elements[i + 1].str;
  }
  return out;
}

namespace {

std::vector<std::string> LogEntry(const std::string& id, const std::string& step,
                                  const std::string& status, const std::string& detail,
                                  long long latency_ms) {
  return {"XADD",   LogKey(), "MAXLEN",     "~",
          "10000",  "*",      "order",      id,
          "step",   step,     "status",     status,
          "detail", detail,   "latency_ms", std::to_string(latency_ms)};
}

Commit Outcome(const fn::Reply& exec) {
  if (exec.is_nil()) return Commit::kChanged;
  if (exec.type != fn::Reply::Type::kArray) return Commit::kFailed;
  for (const fn::Reply& r : exec.elements) {
    if (r.is_error()) return Commit::kFailed;
  }
  return Commit::kDone;
}

}  // namespace

Commit RecordStep(fn::Store& store, const std::string& id, const std::string& step,
                  const std::string& status, const std::string& detail, long long latency_ms,
                  const std::vector<std::vector<std::string>>& also) {
  std::string now = std::to_string(fn::NowMs());
  std::vector<std::vector<std::string>> cmds = {
      {"HSET", OrderKey(id), "status", status, "updated_ms", now},
      {"RPUSH", PathKey(id), step + " " + status},
      LogEntry(id, step, status, detail, latency_ms),
  };
  cmds.insert(cmds.end(), also.begin(), also.end());
  return Outcome(store.Transaction(cmds));
}

bool CompleteOrder(fn::Store& store, const std::string& id, const std::string& step,
                   const std::string& status, const std::string& reason, long long latency_ms) {
  std::string now = std::to_string(fn::NowMs());
  return Outcome(store.Transaction({
             {"HSET", OrderKey(id), "status", status, "reason", reason, "updated_ms", now,
              "finished_ms", now},
             {"RPUSH", PathKey(id), step + " " + status},
             LogEntry(id, step, status, reason, latency_ms),
             {"RPUSH", DoneKey(id), status},
             {"EXPIRE", DoneKey(id), "3600"},
         })) == Commit::kDone;
}

std::string InvokeNext(const std::string& step, const std::string& id) {
  fn::Value payload = fn::Value::Object();
  payload.Set("order_id", id);
  payload.Set("sent_ms", fn::NowMs());
  fn::InvokeResult r = fn::Invoke(fn::PeerName(step), payload.Serialize(), /*async=*/true);
  if (r.ok()) return "";
  return "Event invoke of " + fn::PeerName(step) + ": " +
         (r.error.empty() ? std::to_string(r.status) + " " + r.body : r.error);
}

native::Result Answer(const std::string& id, const std::string& status, const std::string& reason,
                      fn::Value extra) {
  fn::Value out = fn::Value::Object();
  out.Set("order_id", id);
  out.Set("status", status);
  if (!reason.empty()) out.Set("reason", reason);
  for (const auto& [k, v] : extra.members()) out.Set(k, v);
  return native::Result::Success(out.Serialize());
}

native::Result Fail(const std::string& type, const std::string& message) {
  return native::Result::Failure(type, message);
}

std::string FormatCents(long long cents) {
  std::string sign = cents < 0 ? "-" : "";
  if (cents < 0) cents = -cents;
  std::string frac = std::to_string(cents % 100);
  if (frac.size() < 2) frac = "0" + frac;
  return sign + std::to_string(cents / 100) + "." + frac;
}

}  // namespace ephemera::orders
