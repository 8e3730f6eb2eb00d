// runtime/events/events.h: everything the daemon keeps in Redis, behind one object.
//
// Owns two Redis connections to one URL (redis_client.h): one for commands (heartbeat on)
// and one that only carries the consumer's blocking XREADGROUP. On top of them:
//   - the durable Event queue (event_queue.h): Accept before the 202, the consumer;
//   - invocation records (invocation_record.h): Record() for every invocation, kept with
//     retention by count and age, listed newest first or followed by time;
//   - event invoke configs per function (event_invoke_config.h), one key each;
//   - the dead-letter stream: list, replay (as a new Event invocation), delete.
// When Redis is down, synchronous work goes on: Record() skips the record (counted in
// /metrics as ephemera_records_skipped_total, logged once per outage), Accept and the
// other calls fail with kUnavailable naming Redis and its URL; everything resumes by itself
// when Redis answers again.
// Thread: the loop thread only. Callbacks: exactly once, never from inside the call;
// dropped if the Events is destroyed first. Depends on: redis, events, sandbox, core, json.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"
#include "runtime/events/event_invoke_config.h"
#include "runtime/events/event_queue.h"
#include "runtime/events/invocation_record.h"
#include "runtime/redis/redis_client.h"

namespace ephemera::events {

struct EventsOptions {
  redis::RedisUrl url;
  uint64_t redis_timeout_ms = 2000;  // every command; the accept deadline is half of it
  EventQueueOptions queue;           // keys, daemon id, concurrency, retries, retention, ...
};

struct DeadLetter {
  std::string id;  // its entry id in the dead-letter stream
  std::map<std::string, std::string> fields;
};

class Events {
 public:
  Events(uv_loop_t* loop, EventsOptions options, Runner runner);
  ~Events();
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;

  // Connects: Accept and the other calls work from here on.
  void Start();
  // Starts consuming (the queue's reads, claims and retries). The daemon calls it once the
  // engine is clean: a run before a killed daemon's leftovers are removed could meet their
  // containers (names derive from the request id).
  void StartConsuming();
  // Calls back once the first connection attempt has ended, connected or not (at most the
  // Redis timeout after Start), so a daemon can say it is ready only after Redis answered.
  void WhenFirstAttemptDone(std::function<void()> done);
  // No more reads or claims (the daemon is stopping); outcomes still get recorded.
  void Stop();
  // Calls back once nothing is held and no write is outstanding, or after twice the Redis
  // timeout, whichever comes first.
  void Drain(std::function<void()> done);

  EventQueue& queue() { return *queue_; }
  bool redis_ready() const { return commands_->ready(); }
  const std::string& redis_url() const { return commands_->url(); }
  const EventsOptions& options() const { return options_; }

  // ---- invocation records ----
  // Fire and forget: written with retention, or skipped (and counted) while Redis is down.
  // Buffered until the loop's next turn, then written with that turn's others in one call.
  void Record(const InvocationRecord& record);
  // Newest first (since_ms empty), or those that ended at or after since_ms, oldest first;
  // `function` "" = all. JSON texts of the records.
  void ListRecords(const std::string& function, size_t limit, const std::string& since_ms,
                   std::function<void(Status, std::vector<std::string>)> done);
  // Every record of one request id (its attempts), and its final state for Event
  // invocations (empty map if none).
  void GetRecords(const std::string& request_id,
                  std::function<void(Status, std::vector<std::string> records,
                                     std::map<std::string, std::string> final_state)>
                      done);

  // ---- event invoke configs ----
  void GetConfig(const std::string& function,
                 std::function<void(Status, std::optional<EventInvokeConfig>)> done);
  void PutConfig(const std::string& function, const EventInvokeConfig& config,
                 std::function<void(Status)> done);
  // `existed` false if there was none.
  void DeleteConfig(const std::string& function, std::function<void(Status, bool existed)> done);

  // ---- the dead-letter stream ----
  void ListDeadLetters(size_t limit, std::function<void(Status, std::vector<DeadLetter>)> done);
  // A new Event invocation (new request id) with the dead letter's function and payload;
  // the dead letter is removed. NotFound if there is no such id.
  void ReplayDeadLetter(
      const std::string& id,
      std::function<void(Status, std::string request_id, std::string function)> done);
  void DeleteDeadLetter(const std::string& id, std::function<void(Status, bool existed)> done);

  // Prometheus text: Redis state, the queue's counters, records written and skipped.
  std::string MetricsText() const;

 private:
  void OnCommandsState(bool ready, const Status& why);
  // Sends the buffered records (request id, function, JSON per record) in one call.
  void FlushRecords();
  void SkipRecords(size_t n);
  static constexpr size_t kMaxRecordBatch = 256;
  // How long a record waits for others to share its write (at 5,000 invocations/s, 25).
  static constexpr uint64_t kRecordFlushMs = 5;
  void Defer(std::function<void()> fn);
  void Eval(const std::string& script, std::vector<std::string> keys, std::vector<std::string> args,
            redis::Client::Callback cb);

  uv_loop_t* loop_;
  EventsOptions options_;
  std::unique_ptr<redis::Client> commands_;
  std::unique_ptr<redis::Client> reader_;
  std::unique_ptr<EventQueue> queue_;
  uint64_t records_written_ = 0;
  uint64_t records_skipped_ = 0;
  uint64_t records_skipped_this_outage_ = 0;
  bool records_outage_logged_ = false;
  size_t record_writes_ = 0;  // buffered or sent, not yet answered
  std::vector<std::string> record_batch_;
  Timer record_timer_;
  Timer drain_timer_;
  Timer defer_timer_;
  Timer first_attempt_timer_;
  std::vector<std::function<void()>> deferred_;
  std::shared_ptr<bool> alive_;
};

}  // namespace ephemera::events
