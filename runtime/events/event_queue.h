// runtime/events/event_queue.h: durable Event invocations on a Redis stream.
//
// Accept: an Event invocation is added to the stream <p>events (keys.h) by one script
// that also checks a deadline and the queue's bound (scripts.h kAccept); its callback says
// ok only once Redis has answered that the entry is there, so the caller sends 202 only
// for an event that is durable (as durable as Redis's persistence: with the append-only
// file fsynced every second, up to ~1 s of acknowledged writes can be lost if Redis
// itself crashes). Otherwise the caller answers 503 and the event never runs: a write
// refused (Redis down) was not made; one that reached a stalled Redis after its deadline
// is refused by the script; one whose answer did not come in time is marked "not
// accepted" (a tombstone) as soon as Redis answers again, and consumers skip marked
// events. Nothing is accepted and then dropped.
//
// Consume (docs/architecture.md "Durable Event invocations"; Redis commands in
// docs/protocols.md section 5): a consumer group <p>workers, consumer name = daemon id.
// The queue holds at most `concurrency` events at once (read with XREADGROUP COUNT = free
// slots, BLOCK on a connection of its own), so memory stays bounded whatever the
// backlog. For each event, in order (event_queue.cc reads top to bottom):
//   Begin     its final state and its function's event invoke config, in one script; an
//             event that has a final state already is acknowledged without running;
//   Run       through the Runner (the scheduler) with request.async = true: it waits for
//             capacity instead of being throttled;
//   Outcome   success -> Finish(Success); function error or timeout -> a retry after
//             retry_delays_ms[attempt-1] while attempts <= MaximumRetryAttempts and the
//             event is younger than MaximumEventAgeInSeconds, else Finish(RetriesExhausted
//             or EventAgeExceeded); a service error (throttled, engine down, image missing)
//             -> retried with backoff from service_retry_ms (doubling, at most 5 min) within
//             the event age, not counting as an attempt (as Lambda does); cancelled (the
//             daemon is stopping) -> left pending, run again later;
//   Finish    one script: the final state (set once), the invocation record, the
//             destination event (OnSuccess / OnFailure, Lambda's record) or, for a failure
//             without OnFailure, a dead letter in <p>dlq; then XACK + XDEL. An event is
//             acknowledged only in the same script that records its outcome.
//   Retry     one script: the next attempt stashed with its due time, the record, XACK +
//             XDEL; a mover puts due retries back into the stream.
// Entries pending on a consumer that stopped answering (a killed daemon) are taken over
// with XAUTOCLAIM once idle for claim_idle_ms; a live daemon keeps its running entries
// fresh (XCLAIM JUSTID every claim_idle_ms / 3), so only dead ones are taken. At start the
// daemon first reads its own pending entries (a restart under the same daemon id resumes
// at once). A function can therefore run more than once for one event (at least once, as
// in Lambda) when a daemon dies mid-invocation, but its final state is set exactly once.
//
// Thread: the loop thread only. Callbacks: Accept's `done` runs exactly once, never from
// inside Accept(). Runner callbacks are as the scheduler's (once, never inside Invoke).
// Ownership: borrows both Redis clients, which must outlive it. Destroying it drops
// pending callbacks; events it holds stay pending in Redis and are claimed again.
// Depends on: core, json, redis, sandbox, registry.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "registry/registry.h"
#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"
#include "runtime/events/event_invoke_config.h"
#include "runtime/events/invocation_record.h"
#include "runtime/events/keys.h"
#include "runtime/redis/redis_client.h"
#include "runtime/sandbox/invocation.h"

namespace ephemera::events {

// How Event invocations reach the machinery that runs them (the scheduler, in the
// daemon; a fake in tests), so this module does not depend on the scheduler.
struct Runner {
  std::function<std::shared_ptr<const registry::FunctionSpec>(const std::string& name)> find;
  std::function<uint64_t(sandbox::InvokeRequest, sandbox::InvokeDone)> invoke;
  std::function<void(uint64_t)> cancel;
};

struct RecordRetention {
  size_t max_count = 10000;        // records kept (the oldest requests' records go first)
  uint64_t max_age_ms = 86400000;  // and none older than this
};

struct EventQueueOptions {
  Keys keys;
  std::string daemon_id;  // the consumer name
  int concurrency = 32;   // events this daemon runs at once; 0 = accept only, run none
  uint64_t block_ms = 2000;
  uint64_t claim_idle_ms = 30000;
  std::vector<uint64_t> retry_delays_ms = {60000, 120000};  // before retry 1, 2 (Lambda's)
  uint64_t service_retry_ms = 1000;
  uint64_t service_retry_max_ms = 300000;
  size_t max_queued = 100000;          // entries in the stream before Accept says kConflict
  uint64_t accept_deadline_ms = 1000;  // Redis must run the XADD within this (< its timeout)
  uint64_t done_ttl_ms = 86400000;     // final states are kept this long
  RecordRetention retention;
};

struct AcceptRequest {
  std::string function;
  std::string request_id;
  std::string payload;
  std::string content_type = "application/json";
  std::string caller;  // sandbox::InvokeRequest::caller, kept for when it runs
};

struct EventQueueStats {
  uint64_t accepted = 0;
  uint64_t refused = 0;  // Accept answered not ok (503 / 429)
  uint64_t started = 0;  // handed to the runner
  uint64_t succeeded = 0;
  uint64_t function_errors = 0;  // attempts that ended in a function error or timeout
  uint64_t service_errors = 0;   // attempts the runner could not run
  uint64_t retries = 0;          // retries scheduled
  uint64_t exhausted = 0;        // final RetriesExhausted
  uint64_t expired = 0;          // final EventAgeExceeded
  uint64_t dead_letters = 0;     // written to the dead-letter stream
  uint64_t destinations = 0;     // destination events sent
  uint64_t skipped_done = 0;     // delivered again with a final state already: acknowledged
  uint64_t duplicates = 0;       // a second final state refused (another daemon was first)
  uint64_t claimed = 0;          // taken over from an idle consumer
  uint64_t left_pending = 0;     // cancelled at shutdown, left for a later run
  uint64_t tombstones = 0;       // answered 503 after an unconfirmed write, marked
};

class EventQueue {
 public:
  EventQueue(uv_loop_t* loop, redis::Client* commands, redis::Client* reader, Runner runner,
             EventQueueOptions options);
  ~EventQueue();
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Ok once durable; kUnavailable (Redis down, or it did not confirm in time: 503) or
  // kConflict (max_queued reached: 429). Messages name Redis and its URL.
  void Accept(AcceptRequest request, std::function<void(Status)> done);

  // Creates the consumer group if needed and starts consuming, claiming and moving due
  // retries; all of it retries by itself while Redis is down.
  void Start();
  // Redis (the command connection) is reachable again: marks unconfirmed writes, resumes.
  void OnRedisReady();
  // No more reads or claims. Events running now still record their outcome when it comes
  // (cancelled ones are left pending).
  void Stop();
  // True when nothing is held: no event in flight, no Redis write outstanding.
  bool idle() const { return deliveries_.empty() && writes_ == 0; }

  size_t in_flight() const { return deliveries_.size(); }
  // Held but not running in the runner now: being checked, waiting to retry a write, or
  // recording an outcome.
  size_t held_not_running() const { return deliveries_.size() - running_; }
  const EventQueueStats& stats() const { return stats_; }
  const EventQueueOptions& options() const { return options_; }

 private:
  struct Event;
  struct Delivery;
  using EntryId = std::string;

  // The pipeline, in order (event_queue.cc).
  void EnsureGroup();
  void ReadMore();
  void OnRead(const Status& s, const redis::Reply& r, bool own_pending);
  void Deliver(const EntryId& id, const redis::Reply& fields);
  void Begin(const EntryId& id);
  void Run(const EntryId& id);
  void OnOutcome(const EntryId& id, sandbox::InvokeOutcome outcome);
  void Finish(const EntryId& id, const std::string& condition);
  void Retry(const EntryId& id, int next_attempt, int service_retries, uint64_t delay_ms);
  void AckOnly(const EntryId& id);
  void Release(const EntryId& id);
  std::string RecordOf(const Delivery& d) const;
  // Around the pipeline.
  void Claim();
  void ForgetGoneConsumers();
  void Heartbeat();
  void MoveDue();
  void ScheduleMover(uint64_t ms);
  void FlushTombstones();
  void WriteLater(const EntryId& id, const Status& why, std::function<void()> write);
  void RunWriteRetries();
  void Eval(const std::string& script, std::vector<std::string> keys, std::vector<std::string> args,
            redis::Client::Callback cb);
  Delivery* Find(const EntryId& id);

  uv_loop_t* loop_;
  redis::Client* commands_;
  redis::Client* reader_;
  Runner runner_;
  EventQueueOptions options_;
  EventQueueStats stats_;
  std::map<EntryId, std::unique_ptr<Delivery>> deliveries_;
  std::vector<EntryId> write_retries_;
  std::deque<std::string> unconfirmed_;  // request ids answered 503 after a lost write
  size_t writes_ = 0;                    // Redis writes outstanding
  size_t running_ = 0;                   // deliveries handed to the runner, not answered
  bool started_ = false;
  bool stopping_ = false;
  bool group_ready_ = false;
  bool group_pending_ = false;
  bool reading_ = false;
  bool own_pending_done_ = false;
  std::string own_cursor_ = "0";
  bool claiming_ = false;
  uint64_t claims_ = 0;
  std::string claim_cursor_ = "0-0";
  bool moving_ = false;
  uint64_t write_backoff_ms_ = 200;
  Timer group_timer_, read_timer_, claim_timer_, heartbeat_timer_, mover_timer_, write_timer_,
      tombstone_timer_;
  std::shared_ptr<bool> alive_;
};

}  // namespace ephemera::events
