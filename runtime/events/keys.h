// runtime/events/keys.h: the names of everything ephemera keeps in Redis.
//
// All keys start with one prefix (--redis-prefix, default "ephemera:"), so daemons that
// share a Redis and a prefix share one queue, and different prefixes are independent.
// Layout (docs/protocols.md section 5 for the commands):
//   <p>events                   stream: Event invocations waiting or running; an entry is
//                               deleted once acknowledged (so the stream holds only work)
//   group <p>workers            its consumer group; consumer name = daemon id
//   <p>events:retry             sorted set: retries waiting for their time (score = due ms)
//   <p>events:retry:<rid>       hash: the entry a retry will add to the stream
//   <p>events:done:<rid>        hash: the final state of an Event invocation (condition,
//                               attempt, daemon, finished_ms, duplicates); 24 h
//   <p>dlq                      stream: Event invocations that failed with no OnFailure
//                               destination (the dead-letter stream)
//   <p>event-invoke-config:<f>  string: a function's event invoke config (JSON)
//   <p>inv:<rid>                the invocation records of one request id (JSON): a list
//                               for Event invocations (one per attempt), a string for
//                               the others (one invocation, one record; no expiry of
//                               its own: the scripts that write and read records
//                               delete those past the age limit)
//   <p>invocations              sorted set: every record, "<rid>:<n>" by end time (ms)
//   <p>invocations:fn:<f>       sorted set: the same for one function
// Scripts use only standalone Redis (not Redis Cluster): some keys are computed inside them.
// Thread: any (pure). Depends on: nothing.
#pragma once

#include <string>

namespace ephemera::events {

struct Keys {
  std::string prefix = "ephemera:";

  std::string stream() const { return prefix + "events"; }
  std::string group() const { return prefix + "workers"; }
  std::string retries() const { return prefix + "events:retry"; }
  std::string retry(const std::string& request_id) const {
    return prefix + "events:retry:" + request_id;
  }
  std::string done(const std::string& request_id) const {
    return prefix + "events:done:" + request_id;
  }
  std::string dlq() const { return prefix + "dlq"; }
  std::string config(const std::string& function) const {
    return prefix + "event-invoke-config:" + function;
  }
  std::string records(const std::string& request_id) const { return prefix + "inv:" + request_id; }
  std::string record_index() const { return prefix + "invocations"; }
  std::string record_index(const std::string& function) const {
    return prefix + "invocations:fn:" + function;
  }
};

}  // namespace ephemera::events
