// functions/orders/register/order_register.cc: order-register, numbers checked orders.
//
// Event-invoked by order-check with {"order_id", "sent_ms"}. A checked order gets the next
// order number (INCR order-number: atomic, so no two orders share one) kept with HSETNX,
// so a delivery that runs again keeps the number the first one set; then the order goes on
// to order-generate (Event invocation, by name). See functions/orders/order_flow.h.
#include <string>

#include "functions/orders/order_flow.h"

namespace ephemera::orders {
namespace {

native::Result Continue(const std::string& id, const std::string& number) {
  if (std::string why = InvokeNext(kGenerate, id); !why.empty()) {
    return Fail("Order.HandOffFailed", why);
  }
  fn::Value extra = fn::Value::Object();
  extra.Set("number", number);
  return Answer(id, "registered", "", std::move(extra));
}

native::Result Handle(std::string_view event, const native::Context&) {
  std::string id, error;
  long long latency = -1;
  if (!ReadStepEvent(event, &id, &latency, &error)) return Fail("Order.BadEvent", error);
  fn::Store* store = StoreOrNull(&error);
  if (store == nullptr) return Fail("Store.Unavailable", error);

  auto order = LoadOrder(*store, id);
  if (order.empty()) return Fail("Order.NotFound", "no order " + id + " in the store");
  if (order["status"] == "registered") return Continue(id, order["number"]);
  if (order["status"] != "checked") {
    fn::Value extra = fn::Value::Object();
    extra.Set("duplicate", true);
    return Answer(id, order["status"], order["reason"], std::move(extra));
  }
  std::string number = order["number"];
  if (number.empty()) {
    fn::Reply next = store->Command({"INCR", NumberKey()});
    if (next.type != fn::Reply::Type::kInteger) {
      DropStore();
      return Fail("Store.Error", "INCR " + NumberKey() + ": " + next.Describe());
    }
    fn::Reply kept =
        store->Command({"HSETNX", OrderKey(id), "number", std::to_string(next.integer)});
    if (kept.type != fn::Reply::Type::kInteger) {
      DropStore();
      return Fail("Store.Error", "HSETNX number: " + kept.Describe());
    }
    number = kept.integer == 1 ? std::to_string(next.integer)
                               : store->Command({"HGET", OrderKey(id), "number"}).str;
  }
  if (RecordStep(*store, id, kRegister, "registered", "number " + number, latency) !=
      Commit::kDone) {
    DropStore();
    return Fail("Store.Error", "recording order " + id + ": " + store->last_error());
  }
  return Continue(id, number);
}

}  // namespace
}  // namespace ephemera::orders

int main() {
  return ephemera::native::Serve(ephemera::orders::Handle);
}
