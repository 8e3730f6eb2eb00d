// runtime/events/scripts.h: the Lua scripts that change more than one key at once.
//
// A script runs atomically in Redis, so every state change of an Event invocation is one
// script: a crash of the daemon (or of the connection) leaves either all of it or none.
// Their arguments are documented beside each text in scripts.cc. They read the time with
// TIME, so all daemons sharing a Redis use one clock. Sent with EVAL (Redis caches the
// compiled script).
// Thread: any (constants, used only after static initialisation). Depends on: nothing.
#pragma once

#include <string>

namespace ephemera::events::scripts {

// XADD of a new Event invocation, refused if Redis runs it after the deadline given by the
// daemon (so a write that reached a stalled Redis too late never runs: the daemon has
// answered 503 by then), or if the stream already holds max_queued entries.
extern const std::string kAccept;
// The final state of a delivered entry if any, and the function's event invoke config.
extern const std::string kBegin;
// Final state (once: HSETNX), its follow-up (a destination event or a dead letter), the
// invocation record, XACK + XDEL of the entry.
extern const std::string kFinish;
// A retry: stash the next entry with its due time, record, XACK + XDEL.
extern const std::string kRetry;
// Moves retries that are due into the stream; returns {moved, ms until the next one or -1}.
extern const std::string kMoveDue;
// XACK + XDEL.
extern const std::string kAck;
// Marks a request id as never accepted (the daemon answered 503 after a write whose fate
// it could not know); returns 0 if the event had a final state already.
extern const std::string kTombstone;
// Many invocation records in one call, with the retention once per index.
extern const std::string kRecordBatch;
// The newest records (or those since a time), as JSON texts.
extern const std::string kListRecords;
// Every record of one request id (its key may be a list or a string).
extern const std::string kGetRecords;
// Moves a dead letter back to the stream as a new Event invocation.
extern const std::string kReplay;

}  // namespace ephemera::events::scripts
