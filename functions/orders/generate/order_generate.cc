// functions/orders/generate/order_generate.cc: order-generate, the last step.
//
// Event-invoked by order-register with {"order_id", "sent_ms"}: writes the order's final
// document (document:<id>, JSON: number, customer, lines with amounts, total), sets the
// status completed and signals completion (order:<id>:done, the seed's callback).
//
// It is also the OnFailure destination of order-check and order-register (the event invoke
// configs demo.sh and the tests put): when a step runs out of retries, Lambda's destination
// record arrives here ({"requestContext": {"condition": "RetriesExhausted", ...},
// "requestPayload": {"order_id": ...}, "responsePayload": {"errorMessage": ...}}) and the
// order ends as failed with that reason, so no client waits for it forever.
// See functions/orders/order_flow.h.
#include <string>

#include "functions/orders/order_flow.h"

namespace ephemera::orders {
namespace {

// A destination record for a failed step: the order ends as failed.
native::Result Failed(const fn::Value& record) {
  const fn::Value* request = record.Find("requestPayload");
  const fn::Value* context = record.Find("requestContext");
  const fn::Value* response = record.Find("responsePayload");
  std::string id = request != nullptr ? request->GetString("order_id").value_or("") : "";
  if (!ValidId(id)) return Fail("Order.BadEvent", "the destination record names no order");
  std::string condition =
      context != nullptr ? context->GetString("condition").value_or("") : std::string();
  if (condition == "Success") return Answer(id, "ignored");  // not a failure record
  std::string function = context != nullptr ? context->GetString("functionArn").value_or("") : "";
  if (size_t colon = function.find(":function:"); colon != std::string::npos) {
    function = function.substr(colon + 10);
    function = function.substr(0, function.find(':'));
  }
  std::string message =
      response != nullptr ? response->GetString("errorMessage").value_or("") : std::string();
  std::string reason = function + " failed (" + condition + "): " + message;
  std::string error;
  fn::Store* store = StoreOrNull(&error);
  if (store == nullptr) return Fail("Store.Unavailable", error);
  auto order = LoadOrder(*store, id);
  if (order["status"] == "completed" || order["status"] == "rejected" ||
      order["status"] == "failed") {
    return Answer(id, order["status"], order["reason"]);  // already ended
  }
  if (!CompleteOrder(*store, id, kGenerate, "failed", reason, -1)) {
    DropStore();
    return Fail("Store.Error", "failing order " + id + ": " + store->last_error());
  }
  return Answer(id, "failed", reason);
}

native::Result Handle(std::string_view event, const native::Context&) {
  fn::Value v;
  std::string error;
  if (!fn::Parse(event, &v, &error)) return Fail("Order.BadEvent", error);
  if (v.Find("requestContext") != nullptr) return Failed(v);

  std::string id;
  long long latency = -1;
  if (!ReadStepEvent(event, &id, &latency, &error)) return Fail("Order.BadEvent", error);
  fn::Store* store = StoreOrNull(&error);
  if (store == nullptr) return Fail("Store.Unavailable", error);
  auto order = LoadOrder(*store, id);
  if (order.empty()) return Fail("Order.NotFound", "no order " + id + " in the store");
  if (order["status"] != "registered") {
    fn::Value extra = fn::Value::Object();
    extra.Set("duplicate", true);
    return Answer(id, order["status"], order["reason"], std::move(extra));
  }
  fn::Value items;
  fn::Parse(order["items"], &items, &error);
  fn::Value doc = fn::Value::Object();
  doc.Set("order_id", id);
  doc.Set("number", order["number"]);
  doc.Set("customer", order["customer"]);
  fn::Value lines = fn::Value::Array();
  for (const fn::Value& line : items.items()) {
    long long qty = static_cast<long long>(line.GetNumber("qty").value_or(0));
    long long cents = static_cast<long long>(line.GetNumber("price_cents").value_or(0));
    fn::Value out = fn::Value::Object();
    out.Set("sku", line.GetString("sku").value_or(""));
    out.Set("qty", qty);
    out.Set("price", FormatCents(cents));
    out.Set("amount", FormatCents(qty * cents));
    lines.Push(std::move(out));
  }
  doc.Set("lines", std::move(lines));
  doc.Set("total", FormatCents(std::atoll(order["total_cents"].c_str())));
  doc.Set("generated_ms", fn::NowMs());
  // NX: a delivery that runs again keeps the first document.
  fn::Reply wrote = store->Command({"SET", DocumentKey(id), doc.Serialize(), "NX"});
  if (wrote.type == fn::Reply::Type::kNone || wrote.is_error()) {
    DropStore();
    return Fail("Store.Error", "SET " + DocumentKey(id) + ": " + wrote.Describe());
  }
  if (!CompleteOrder(*store, id, kGenerate, "completed", "", latency)) {
    DropStore();
    return Fail("Store.Error", "completing order " + id + ": " + store->last_error());
  }
  fn::Value extra = fn::Value::Object();
  extra.Set("number", order["number"]);
  extra.Set("document", DocumentKey(id));
  return Answer(id, "completed", "", std::move(extra));
}

}  // namespace
}  // namespace ephemera::orders

int main() {
  return ephemera::native::Serve(ephemera::orders::Handle);
}
