// functions/orders/order_flow.h: what the four order functions share.
//
// The order flow (seed 000; functions/orders/README.md): order-accept validates and stores
// an order, order-check applies the price and stock rules, order-register gives it a
// number, order-generate writes its document and final status. Each is its own image and
// runs in a container of its own per call; they find each other only by name through the
// daemon (support/invoke.h) and pass data only through the store (support/store.h): an
// Event invocation carries just {"order_id", "sent_ms"}.
//
// Keys (all behind KEY_PREFIX):
//   order:<id>         hash: customer, items (JSON), status, reason, total_cents, number,
//                      created_ms, updated_ms, finished_ms
//   order:<id>:path    list: "<step> <status>", one per step, in order
//   order:<id>:done    list: the final status, pushed by the step that ends the order (the
//                      seed's callback: a client waits on it with BLPOP); expires in 1 h
//   order:_log         stream: one entry per step of every order (order, step, status,
//                      detail, latency_ms), for watching the flow (demo.sh)
//   stock:<sku>        integer: units left          price:<sku>   integer: cents
//   order-number       counter for order numbers    document:<id> the final document
// Statuses: accepted -> checked -> registered -> completed, or rejected (with a reason)
// at accept or check, or failed (a step ran out of retries; order-generate records it from
// the OnFailure destination record).
// Every step is safe to run again for the same event (Event invocations are delivered at
// least once): each looks at the order's status first and does only what is left.
// Thread: the handler's. Depends on: support (json, store, invoke).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "functions/orders/support/invoke.h"
#include "functions/orders/support/json.h"
#include "functions/orders/support/store.h"
#include "shim/native.h"

namespace ephemera::orders {

inline constexpr char kAccept[] = "order-accept";
inline constexpr char kCheck[] = "order-check";
inline constexpr char kRegister[] = "order-register";
inline constexpr char kGenerate[] = "order-generate";

std::string OrderKey(const std::string& id);
std::string PathKey(const std::string& id);
std::string DoneKey(const std::string& id);
std::string LogKey();
std::string StockKey(const std::string& sku);
std::string PriceKey(const std::string& sku);
std::string NumberKey();
std::string DocumentKey(const std::string& id);

// [A-Za-z0-9][A-Za-z0-9_-]{0,63}: no ':' (keys) and no leading '_' (order:_log).
bool ValidId(std::string_view id);

// The store connection of this process, opened on first use and again after a failure.
// Null with *error when it cannot be had.
fn::Store* StoreOrNull(std::string* error);
// Marks the connection broken (after a command failed): the next StoreOrNull() in a later
// event opens a new one. The current Store stays valid until then.
void DropStore();

// A step's event {"order_id": ..., "sent_ms": ...}: the id, and the milliseconds from the
// sender's invoke to now (queueing plus this container's cold start), -1 if unknown.
bool ReadStepEvent(std::string_view event, std::string* id, long long* latency_ms,
                   std::string* error);
// The order hash as name -> value (empty if there is no such order).
std::map<std::string, std::string> LoadOrder(fn::Store& store, const std::string& id);

// How a transaction ended: committed, not run because a WATCHed key changed, or failed
// (refused, or no answer: Store::last_error() says which).
enum class Commit { kDone, kChanged, kFailed };

// Records a step that passes the order on: status, path, log entry, and `also`, in one
// transaction.
Commit RecordStep(fn::Store& store, const std::string& id, const std::string& step,
                  const std::string& status, const std::string& detail, long long latency_ms,
                  const std::vector<std::vector<std::string>>& also = {});
// Ends the order: final status (and reason), path, log, and the completion signal.
bool CompleteOrder(fn::Store& store, const std::string& id, const std::string& step,
                   const std::string& status, const std::string& reason, long long latency_ms);

// Event-invokes the next step (PEER_PREFIX + name) with {"order_id", "sent_ms"}; "" or why not.
std::string InvokeNext(const std::string& step, const std::string& id);

// The handler's answer {"order_id", "status", ...} as a native::Result.
native::Result Answer(const std::string& id, const std::string& status,
                      const std::string& reason = "", fn::Value extra = fn::Value::Object());
// A function error (the event is retried, then goes to the OnFailure destination).
native::Result Fail(const std::string& type, const std::string& message);

// "12.50" from 1250.
std::string FormatCents(long long cents);

}  // namespace ephemera::orders
