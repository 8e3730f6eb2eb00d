// functions/orders/check/order_check.cc: order-check, the rules of the order flow.
//
// Event-invoked by order-accept with {"order_id", "sent_ms"}. Reads the order from the
// store and applies, in order:
//   price  every sku has a catalogue price (price:<sku>, cents) equal to the order's;
//   total  the order's total is at most 10000.00;
//   stock  every sku has enough units (stock:<sku>); the units are taken in the same
//          transaction that marks the order checked (WATCH/MULTI), so two orders never
//          take the same unit and a delivery that runs again takes nothing twice.
// A failed rule rejects the order with its reason and ends it (the completion signal);
// a passing order goes on to order-register (Event invocation, by name). Store failures
// are function errors: the event is retried, then goes to the OnFailure destination.
#include <map>
#include <string>

#include "functions/orders/order_flow.h"

namespace ephemera::orders {
namespace {

constexpr long long kMaxTotalCents = 1000000;  // 10000.00

native::Result Continue(const std::string& id, long long total_cents) {
  if (std::string why = InvokeNext(kRegister, id); !why.empty()) {
    return Fail("Order.HandOffFailed", why);  // retried: checking again is harmless
  }
  fn::Value extra = fn::Value::Object();
  extra.Set("total", FormatCents(total_cents));
  return Answer(id, "checked", "", std::move(extra));
}

native::Result Reject(fn::Store& store, const std::string& id, const std::string& reason,
                      long long latency) {
  if (!CompleteOrder(store, id, kCheck, "rejected", reason, latency)) {
    DropStore();
    return Fail("Store.Error", "rejecting order " + id + ": " + store.last_error());
  }
  return Answer(id, "rejected", reason);
}

native::Result Handle(std::string_view event, const native::Context&) {
  std::string id, error;
  long long latency = -1;
  if (!ReadStepEvent(event, &id, &latency, &error)) return Fail("Order.BadEvent", error);
  fn::Store* store = StoreOrNull(&error);
  if (store == nullptr) return Fail("Store.Unavailable", error);

  auto order = LoadOrder(*store, id);
  if (order.empty()) return Fail("Order.NotFound", "no order " + id + " in the store");
  if (order["status"] == "checked") {
    return Continue(id, std::atoll(order["total_cents"].c_str()));  // delivered again
  }
  if (order["status"] != "accepted") {
    fn::Value extra = fn::Value::Object();
    extra.Set("duplicate", true);
    return Answer(id, order["status"], order["reason"], std::move(extra));
  }
  fn::Value items;
  if (!fn::Parse(order["items"], &items, &error) || !items.is_array()) {
    return Reject(*store, id, "the stored items do not parse: " + error, latency);
  }
  // Quantities per sku (an order may name one twice), and the total.
  std::map<std::string, long long> wanted;
  long long total = 0;
  for (const fn::Value& line : items.items()) {
    std::string sku = line.GetString("sku").value_or("");
    long long qty = static_cast<long long>(line.GetNumber("qty").value_or(0));
    long long cents = static_cast<long long>(line.GetNumber("price_cents").value_or(0));
    fn::Reply price = store->Command({"GET", PriceKey(sku)});
    if (price.type == fn::Reply::Type::kNone || price.is_error()) {
      DropStore();
      return Fail("Store.Error", "GET " + PriceKey(sku) + ": " + price.Describe());
    }
    if (price.is_nil()) return Reject(*store, id, "unknown product " + sku, latency);
    long long listed = std::atoll(price.str.c_str());
    if (listed != cents) {
      return Reject(*store, id,
                    "price of " + sku + " is " + FormatCents(listed) + ", the order says " +
                        FormatCents(cents),
                    latency);
    }
    wanted[sku] += qty;
    total += qty * cents;
  }
  if (total > kMaxTotalCents) {
    return Reject(
        *store, id,
        "total " + FormatCents(total) + " is above the limit of " + FormatCents(kMaxTotalCents),
        latency);
  }
  // Take the units, or find out which are missing; again if a watched key changed.
  for (int attempt = 0; attempt < 50; ++attempt) {
    std::vector<std::string> watch = {"WATCH", OrderKey(id)};
    for (const auto& [sku, qty] : wanted) watch.push_back(StockKey(sku));
    fn::Reply w = store->Command(watch);
    if (!w.ok()) {
      DropStore();
      return Fail("Store.Error", "WATCH: " + w.Describe());
    }
    fn::Reply status = store->Command({"HGET", OrderKey(id), "status"});
    if (status.str != "accepted") {
      store->Command({"UNWATCH"});
      if (status.str == "checked") return Continue(id, total);
      return Answer(id, status.str);
    }
    std::vector<std::vector<std::string>> take;
    for (const auto& [sku, qty] : wanted) {
      fn::Reply left = store->Command({"GET", StockKey(sku)});
      long long units = left.is_nil() ? 0 : std::atoll(left.str.c_str());
      if (left.type == fn::Reply::Type::kNone || left.is_error()) {
        DropStore();
        return Fail("Store.Error", "GET " + StockKey(sku) + ": " + left.Describe());
      }
      if (units < qty) {
        store->Command({"UNWATCH"});
        return Reject(*store, id,
                      "out of stock: " + sku + " (" + std::to_string(qty) + " wanted, " +
                          std::to_string(units) + " left)",
                      latency);
      }
      take.push_back({"DECRBY", StockKey(sku), std::to_string(qty)});
    }
    take.push_back({"HSET", OrderKey(id), "total_cents", std::to_string(total)});
    Commit c =
        RecordStep(*store, id, kCheck, "checked", "total " + FormatCents(total), latency, take);
    if (c == Commit::kDone) return Continue(id, total);
    if (c == Commit::kFailed) {
      std::string why = store->last_error();
      DropStore();
      return Fail("Store.Error", "taking stock for " + id + ": " +
                                     (why.empty() ? "the transaction was refused" : why));
    }
    // EXEC answered nil: another order took units meanwhile; look again.
  }
  return Fail("Order.Contended", "stock for order " + id + " kept changing; try again");
}

}  // namespace
}  // namespace ephemera::orders

int main() {
  return ephemera::native::Serve(ephemera::orders::Handle);
}
