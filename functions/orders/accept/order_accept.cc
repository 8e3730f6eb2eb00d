// functions/orders/accept/order_accept.cc: order-accept, the entry of the order flow.
//
// Called by the client (RequestResponse) with an order:
//   {"order_id": "o-1" (optional), "customer": "ada",
//    "items": [{"sku": "apple", "qty": 2, "price": 0.5}, ...]}
// It validates the order, stores it under order:<id>, and hands it to order-check with an
// Event invocation (by name, through the daemon). The answer is {"order_id", "status":
// "accepted"}, or {"order_id", "status": "rejected", "reason"} for an invalid order (stored
// too, and completed at once). The same order_id sent again changes nothing and answers
// with the order's current status ("duplicate": true). See functions/orders/order_flow.h.
#include <sys/random.h>

#include <cmath>
#include <string>

#include "functions/orders/order_flow.h"

namespace ephemera::orders {
namespace {

std::string NewOrderId() {
  unsigned char b[6] = {};
  if (getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
    return "o-" + std::to_string(fn::NowMs());
  }
  static const char kHex[] = "0123456789abcdef";
  std::string id = "o-";
  for (unsigned char c : b) {
    id.push_back(kHex[c >> 4]);
    id.push_back(kHex[c & 15]);
  }
  return id;
}

// "" when the order is well formed, else why not (the first problem found). `items` gets
// the normalised lines [{"sku","qty","price_cents"}].
std::string Validate(const fn::Value& order, fn::Value* items) {
  auto customer = order.GetString("customer");
  if (!customer || customer->empty()) return "customer is missing";
  if (customer->size() > 128) return "customer is longer than 128 characters";
  const fn::Value* list = order.Find("items");
  if (list == nullptr || !list->is_array() || list->items().empty()) {
    return "items must be a non-empty array";
  }
  if (list->items().size() > 50) return "at most 50 items";
  *items = fn::Value::Array();
  int n = 0;
  for (const fn::Value& item : list->items()) {
    ++n;
    std::string at = "item " + std::to_string(n) + ": ";
    auto sku = item.GetString("sku");
    if (!sku || !ValidId(*sku)) return at + "sku must be letters, digits, '-' or '_'";
    auto qty = item.GetNumber("qty");
    if (!qty || *qty != std::floor(*qty) || *qty < 1 || *qty > 1000) {
      return at + "qty must be a whole number 1..1000";
    }
    auto price = item.GetNumber("price");
    if (!price || *price <= 0 || *price > 1e6) return at + "price must be a number above 0";
    double cents = *price * 100;
    if (std::fabs(cents - std::round(cents)) > 1e-6) return at + "price has more than 2 decimals";
    fn::Value line = fn::Value::Object();
    line.Set("sku", *sku);
    line.Set("qty", static_cast<long long>(*qty));
    line.Set("price_cents", static_cast<long long>(std::llround(cents)));
    items->Push(std::move(line));
  }
  return "";
}

native::Result Handle(std::string_view event, const native::Context&) {
  fn::Value order;
  std::string error;
  if (!fn::Parse(event, &order, &error) || !order.is_object()) {
    return Answer("", "rejected",
                  "the order is not a JSON object" + (error.empty() ? "" : " (" + error + ")"));
  }
  std::string id;
  if (const fn::Value* given = order.Find("order_id"); given != nullptr) {
    if (!given->is_string() || !ValidId(given->string())) {
      return Answer("", "rejected", "order_id must be 1..64 letters, digits, '-' or '_'");
    }
    id = given->string();
  } else {
    id = NewOrderId();
  }
  fn::Value items;
  std::string problem = Validate(order, &items);

  fn::Store* store = StoreOrNull(&error);
  if (store == nullptr) return Fail("Store.Unavailable", error);
  // The guard: only the first delivery of an order id creates it.
  std::string now = std::to_string(fn::NowMs());
  fn::Reply created = store->Command({"HSETNX", OrderKey(id), "created_ms", now});
  if (created.type == fn::Reply::Type::kNone || created.is_error()) {
    DropStore();
    return Fail("Store.Error", "HSETNX " + OrderKey(id) + ": " + created.Describe());
  }
  if (created.integer == 0) {
    auto existing = LoadOrder(*store, id);
    fn::Value extra = fn::Value::Object();
    extra.Set("duplicate", true);
    return Answer(id, existing["status"], existing["reason"], std::move(extra));
  }
  fn::Reply fields =
      store->Command({"HSET", OrderKey(id), "customer", order.GetString("customer").value_or(""),
                      "items", problem.empty() ? items.Serialize() : std::string(event)});
  if (!fields.ok()) {
    DropStore();
    return Fail("Store.Error", "HSET " + OrderKey(id) + ": " + fields.Describe());
  }
  if (!problem.empty()) {
    if (!CompleteOrder(*store, id, kAccept, "rejected", "invalid order: " + problem, -1)) {
      DropStore();
      return Fail("Store.Error", "completing rejected order " + id + ": " + store->last_error());
    }
    return Answer(id, "rejected", "invalid order: " + problem);
  }
  if (RecordStep(*store, id, kAccept, "accepted", "", -1) != Commit::kDone) {
    DropStore();
    return Fail("Store.Error", "recording order " + id + ": " + store->last_error());
  }
  if (std::string why = InvokeNext(kCheck, id); !why.empty()) {
    // Nobody else will finish this order: say so in the store and to the client.
    CompleteOrder(*store, id, kAccept, "failed", why, -1);
    return Fail("Order.HandOffFailed", why);
  }
  return Answer(id, "accepted");
}

}  // namespace
}  // namespace ephemera::orders

int main() {
  return ephemera::native::Serve(ephemera::orders::Handle);
}
