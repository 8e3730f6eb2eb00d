// runtime/events/event_queue.cc: one Event invocation from Accept to its final state.
//
// Read top to bottom (docs/style.md rule 9): Accept, then the consumer's stages in the
// order they run (EnsureGroup -> ReadMore -> Deliver -> Begin -> Run -> OnOutcome ->
// Finish | Retry), then what runs around them (claims, heartbeats, the retry mover,
// tombstones, write retries). Every callback that reaches back into the queue goes
// through Guard(): the Redis clients and the scheduler may outlive the queue.
#include "runtime/events/event_queue.h"

#include <algorithm>
#include <utility>

#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/core/log.h"
#include "runtime/events/scripts.h"

namespace ephemera::events {

// One stream entry, as fields.
struct EventQueue::Event {
  std::string function;
  std::string request_id;
  std::string payload;
  std::string content_type = "application/json";
  std::string source = "invoke";  // invoke | destination | replay
  std::string caller;             // the function that sent it from its environment, if any
  int attempt = 1;
  int service_retries = 0;
  int64_t accepted_ms = 0;
};

// An entry this daemon holds (pending on its consumer) from delivery to release.
struct EventQueue::Delivery {
  EntryId entry_id;
  Event ev;
  EventInvokeConfig config;
  uint64_t handle = 0;
  bool running = false;
  bool has_outcome = false;
  sandbox::InvokeOutcome outcome;
  int64_t started_ms = 0;
  int64_t ended_ms = 0;
  std::function<void()> pending_write;  // a write to try again (Redis did not take it)
};

namespace {

constexpr size_t kMaxErrorBytes = 65536;  // of a function error kept in a dead letter

int ToInt(const std::string& s, int fallback) {
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  return end != nullptr && *end == '\0' && !s.empty() ? static_cast<int>(v) : fallback;
}

// The entries of an XREADGROUP reply ([[stream, [[id, fields], ...]]]) or of XAUTOCLAIM's
// second element ([[id, fields], ...]), as (id, fields) pairs; fields may be nil for an
// entry deleted while pending.
std::vector<std::pair<std::string, const redis::Reply*>> Entries(const redis::Reply& list) {
  std::vector<std::pair<std::string, const redis::Reply*>> out;
  if (!list.is_array()) return out;
  for (const auto& e : list.elements) {
    if (e.is_array() && e.elements.size() == 2 && e.elements[0].Text()) {
      out.emplace_back(e.elements[0].str, &e.elements[1]);
    }
  }
  return out;
}

}  // namespace

EventQueue::EventQueue(uv_loop_t* loop, redis::Client* commands, redis::Client* reader,
                       Runner runner, EventQueueOptions options)
    : loop_(loop),
      commands_(commands),
      reader_(reader),
      runner_(std::move(runner)),
      options_(std::move(options)),
      group_timer_(loop),
      read_timer_(loop),
      claim_timer_(loop),
      heartbeat_timer_(loop),
      mover_timer_(loop),
      write_timer_(loop),
      tombstone_timer_(loop),
      alive_(std::make_shared<bool>(true)) {
  if (options_.retry_delays_ms.empty()) options_.retry_delays_ms = {60000, 120000};
}

EventQueue::~EventQueue() {
  *alive_ = false;
  for (auto& [id, d] : deliveries_) {
    if (d->running && runner_.cancel) runner_.cancel(d->handle);
  }
}

// Wraps a callback so it does nothing once the queue is gone.
template <typename Fn>
static auto Guarded(const std::shared_ptr<bool>& alive, Fn fn) {
  return [alive, fn = std::move(fn)](auto&&... args) mutable {
    if (*alive) fn(std::forward<decltype(args)>(args)...);
  };
}

void EventQueue::Eval(const std::string& script, std::vector<std::string> keys,
                      std::vector<std::string> args, redis::Client::Callback cb) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVAL");
  argv.push_back(script);
  argv.push_back(std::to_string(keys.size()));
  for (auto& k : keys) argv.push_back(std::move(k));
  for (auto& a : args) argv.push_back(std::move(a));
  ++writes_;
  commands_->Command(std::move(argv),
                     [this, alive = alive_, cb = std::move(cb)](Status s, redis::Reply r) {
                       if (!*alive) return;
                       --writes_;
                       cb(std::move(s), std::move(r));
                     });
}

EventQueue::Delivery* EventQueue::Find(const EntryId& id) {
  auto it = deliveries_.find(id);
  return it == deliveries_.end() ? nullptr : it->second.get();
}

// ---- Accept: the 202 waits for this ----

void EventQueue::Accept(AcceptRequest a, std::function<void(Status)> done) {
  int64_t deadline = EpochMs() + static_cast<int64_t>(options_.accept_deadline_ms);
  std::string request_id = a.request_id;
  std::string function = a.function;
  Eval(scripts::kAccept, {options_.keys.stream()},
       {std::to_string(deadline), std::to_string(options_.max_queued), "function",
        std::move(a.function), "request_id", std::move(a.request_id), "payload",
        std::move(a.payload), "content_type", std::move(a.content_type), "attempt", "1", "source",
        "invoke", "caller", std::move(a.caller)},
       [this, request_id, function, done = std::move(done)](Status s, redis::Reply r) {
         if (s.ok()) {
           ++stats_.accepted;
           done(Status::Ok());
           return;
         }
         ++stats_.refused;
         const std::string& url = commands_->url();
         if (r.ErrorIs("EPHEMERA_FULL")) {
           done(Conflict("Redis at " + url + ": " + r.str.substr(14) +
                         "; the Event invocation was not accepted"));
         } else if (r.ErrorIs("EPHEMERA_LATE")) {
           done(Unavailable("Redis at " + url + " is too slow: " + r.str.substr(14) +
                            "; the Event invocation was not accepted and will not run"));
         } else if (s.code() == StatusCode::kTimeout) {
           // Redis may still run the write late, or may have run it: mark the request id
           // so no consumer runs it (FlushTombstones), and say it was not accepted.
           unconfirmed_.push_back(request_id);
           if (unconfirmed_.size() > 100000) unconfirmed_.pop_front();
           done(Unavailable("Redis at " + url + " did not confirm the write in time (" +
                            s.message() + "); the Event invocation was not accepted and will " +
                            "not run"));
         } else {
           done(Unavailable(s.message() + "; the Event invocation was not accepted"));
         }
         LOG_DEBUG("events", "refused event %s for %s", request_id.c_str(), function.c_str());
       });
}

// ---- The consumer, stage by stage ----

void EventQueue::Start() {
  if (started_) return;
  started_ = true;
  if (options_.concurrency == 0) {
    LOG_INFO("events", "accepting Event invocations on %s; running none here (concurrency 0)",
             commands_->url().c_str());
  }
  EnsureGroup();
  ScheduleMover(0);
  claim_timer_.Start(std::max<uint64_t>(options_.claim_idle_ms / 2, 100),
                     Guarded(alive_, [this] { Claim(); }));
  heartbeat_timer_.Start(std::max<uint64_t>(options_.claim_idle_ms / 3, 50),
                         Guarded(alive_, [this] { Heartbeat(); }));
}

void EventQueue::OnRedisReady() {
  FlushTombstones();
  if (started_ && !group_ready_) EnsureGroup();
  RunWriteRetries();
  ReadMore();
}

void EventQueue::Stop() {
  stopping_ = true;
  read_timer_.Stop();
  claim_timer_.Stop();
  group_timer_.Stop();
  // The heartbeat goes on while events run, so no other daemon takes them meanwhile.
}

// XGROUP CREATE ... 0 MKSTREAM: from the stream's start, so events accepted before any
// daemon created the group are delivered too.
void EventQueue::EnsureGroup() {
  if (group_ready_ || group_pending_ || stopping_) return;
  group_pending_ = true;
  commands_->Command(
      {"XGROUP", "CREATE", options_.keys.stream(), options_.keys.group(), "0", "MKSTREAM"},
      Guarded(alive_, [this](Status s, redis::Reply r) {
        group_pending_ = false;
        if (s.ok() || r.ErrorIs("BUSYGROUP")) {
          group_ready_ = true;
          ReadMore();
          return;
        }
        LOG_DEBUG("events", "consumer group not created yet: %s", s.message().c_str());
        group_timer_.Start(1000, Guarded(alive_, [this] { EnsureGroup(); }));
      }));
}

// Reads as many entries as there are free slots: first this consumer's own pending
// entries (left by a previous run under the same daemon id), then new ones, blocking.
void EventQueue::ReadMore() {
  if (stopping_ || !group_ready_ || reading_ || options_.concurrency <= 0) return;
  size_t cap = static_cast<size_t>(options_.concurrency);
  if (deliveries_.size() >= cap) return;
  std::string count = std::to_string(cap - deliveries_.size());
  reading_ = true;
  const Keys& k = options_.keys;
  if (!own_pending_done_) {
    commands_->Command({"XREADGROUP", "GROUP", k.group(), options_.daemon_id, "COUNT", count,
                        "STREAMS", k.stream(), own_cursor_},
                       Guarded(alive_, [this](Status s, redis::Reply r) { OnRead(s, r, true); }));
    return;
  }
  reader_->Command({"XREADGROUP", "GROUP", k.group(), options_.daemon_id, "COUNT", count, "BLOCK",
                    std::to_string(options_.block_ms), "STREAMS", k.stream(), ">"},
                   Guarded(alive_, [this](Status s, redis::Reply r) { OnRead(s, r, false); }),
                   options_.block_ms + reader_->options().command_timeout_ms);
}

void EventQueue::OnRead(const Status& s, const redis::Reply& r, bool own_pending) {
  reading_ = false;
  if (!s.ok()) {
    if (r.ErrorIs("NOGROUP")) {
      // Redis lost the group (restarted without persistence, or someone deleted it).
      LOG_WARN("events", "the consumer group %s is gone from %s; creating it again",
               options_.keys.group().c_str(), commands_->url().c_str());
      group_ready_ = false;
      own_pending_done_ = false;
      own_cursor_ = "0";
      EnsureGroup();
      return;
    }
    read_timer_.Start(500, Guarded(alive_, [this] { ReadMore(); }));
    return;
  }
  std::vector<std::pair<std::string, const redis::Reply*>> entries;
  if (r.is_array() && !r.elements.empty() && r.elements[0].is_array() &&
      r.elements[0].elements.size() == 2) {
    entries = Entries(r.elements[0].elements[1]);
  }
  if (own_pending) {
    if (entries.empty()) {
      own_pending_done_ = true;
    } else {
      own_cursor_ = entries.back().first;
      LOG_INFO("events", "resuming %zu event(s) left pending by an earlier run of %s",
               entries.size(), options_.daemon_id.c_str());
    }
  }
  for (const auto& [id, fields] : entries) Deliver(id, *fields);
  ReadMore();
}

void EventQueue::Deliver(const EntryId& id, const redis::Reply& fields) {
  if (stopping_ || deliveries_.count(id) > 0) return;  // left pending / already held here
  auto d = std::make_unique<Delivery>();
  d->entry_id = id;
  Event& ev = d->ev;
  std::string accepted;
  if (fields.is_array()) {
    for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
      const std::string& k = fields.elements[i].str;
      const std::string& v = fields.elements[i + 1].str;
      if (k == "function")
        ev.function = v;
      else if (k == "request_id")
        ev.request_id = v;
      else if (k == "payload")
        ev.payload = v;
      else if (k == "content_type")
        ev.content_type = v;
      else if (k == "source")
        ev.source = v;
      else if (k == "caller")
        ev.caller = v;
      else if (k == "attempt")
        ev.attempt = std::max(1, ToInt(v, 1));
      else if (k == "service_retries")
        ev.service_retries = std::max(0, ToInt(v, 0));
      else if (k == "accepted_ms")
        accepted = v;
    }
  }
  ev.accepted_ms = std::strtoll(accepted.c_str(), nullptr, 10);
  deliveries_.emplace(id, std::move(d));
  if (ev.function.empty() || ev.request_id.empty()) {
    // Deleted while pending (nil fields) or not written by ephemera: nothing to run.
    if (fields.is_array()) {
      LOG_WARN("events", "stream entry %s has no function or request_id; acknowledged unrun",
               id.c_str());
    }
    AckOnly(id);
    return;
  }
  Begin(id);
}

// Its final state (a duplicate delivery, or a request id answered 503) and the config.
void EventQueue::Begin(const EntryId& id) {
  Delivery* d = Find(id);
  if (d == nullptr) return;
  Eval(scripts::kBegin,
       {options_.keys.done(d->ev.request_id), options_.keys.config(d->ev.function)}, {},
       [this, id](Status s, redis::Reply r) {
         Delivery* d = Find(id);
         if (d == nullptr) return;
         if (!s.ok() || !r.is_array() || r.elements.size() != 2) {
           WriteLater(id, s, [this, id] { Begin(id); });
           return;
         }
         if (!r.elements[0].is_nil()) {
           ++stats_.skipped_done;
           LOG_INFO("events", "event %s of %s has a final state already (%s): acknowledged",
                    d->ev.request_id.c_str(), d->ev.function.c_str(), r.elements[0].str.c_str());
           AckOnly(id);
           return;
         }
         if (auto text = r.elements[1].Text()) {
           if (Status c = FromStored(*text, &d->config); !c.ok()) {
             LOG_WARN("events", "event invoke config of %s: %s; using the defaults",
                      d->ev.function.c_str(), c.message().c_str());
           }
         }
         Run(id);
       });
}

void EventQueue::Run(const EntryId& id) {
  Delivery* d = Find(id);
  if (d == nullptr) return;
  int64_t now = EpochMs();
  if (d->ev.accepted_ms > 0 &&
      now - d->ev.accepted_ms > static_cast<int64_t>(d->config.max_age_s()) * 1000) {
    Finish(id, "EventAgeExceeded");
    return;
  }
  auto spec = runner_.find ? runner_.find(d->ev.function) : nullptr;
  if (!spec) {
    d->has_outcome = true;
    d->outcome.kind = sandbox::OutcomeKind::kInternal;
    d->outcome.error_type = "ResourceNotFoundException";
    d->outcome.body = "{\"errorType\":\"ResourceNotFoundException\",\"errorMessage\":" +
                      json::Quote("Function not found: " + registry::FunctionArn(d->ev.function) +
                                  " (on daemon " + options_.daemon_id + ")") +
                      "}";
    Finish(id, "FunctionNotFound");
    return;
  }
  sandbox::InvokeRequest request;
  request.function = std::move(spec);
  request.request_id = d->ev.request_id;
  request.payload = d->ev.payload;
  request.content_type = d->ev.content_type;
  request.async = true;  // accepted already: waits for capacity, never throttled
  request.caller = d->ev.caller;
  d->started_ms = now;
  d->running = true;
  ++running_;
  ++stats_.started;
  d->handle = runner_.invoke(
      std::move(request),
      Guarded(alive_, [this, id](sandbox::InvokeOutcome out) { OnOutcome(id, std::move(out)); }));
}

void EventQueue::OnOutcome(const EntryId& id, sandbox::InvokeOutcome out) {
  Delivery* d = Find(id);
  if (d == nullptr) return;
  d->running = false;
  --running_;
  d->ended_ms = EpochMs();
  using K = sandbox::OutcomeKind;
  if (out.kind == K::kCancelled) {
    // The daemon is stopping: the entry stays pending, for this daemon's next start or
    // for another daemon's claim.
    ++stats_.left_pending;
    LOG_INFO("events", "event %s of %s cancelled; left pending to run again",
             d->ev.request_id.c_str(), d->ev.function.c_str());
    Release(id);
    return;
  }
  d->has_outcome = true;
  d->outcome = std::move(out);
  int64_t age_limit_ms = static_cast<int64_t>(d->config.max_age_s()) * 1000;
  auto too_old_after = [&](uint64_t delay) {
    return d->ev.accepted_ms > 0 &&
           d->ended_ms + static_cast<int64_t>(delay) - d->ev.accepted_ms > age_limit_ms;
  };
  if (d->outcome.kind == K::kSuccess) {
    ++stats_.succeeded;
    Finish(id, "Success");
  } else if (d->outcome.kind == K::kFunctionError) {
    ++stats_.function_errors;
    if (d->ev.attempt > d->config.retries()) {
      Finish(id, "RetriesExhausted");
      return;
    }
    size_t i = std::min<size_t>(static_cast<size_t>(d->ev.attempt - 1),
                                options_.retry_delays_ms.size() - 1);
    uint64_t delay = options_.retry_delays_ms[i];
    if (too_old_after(delay)) {
      Finish(id, "EventAgeExceeded");
      return;
    }
    Retry(id, d->ev.attempt + 1, d->ev.service_retries, delay);
  } else {
    // Throttled, engine down, image missing, ...: Lambda retries these for the event's
    // whole age, with backoff, without counting them as attempts.
    ++stats_.service_errors;
    int shift = std::min(d->ev.service_retries, 20);
    uint64_t delay = std::min(options_.service_retry_ms << shift, options_.service_retry_max_ms);
    if (too_old_after(delay)) {
      Finish(id, "EventAgeExceeded");
      return;
    }
    LOG_INFO("events", "event %s of %s could not run (%s); again in %llu ms",
             d->ev.request_id.c_str(), d->ev.function.c_str(), d->outcome.status.message().c_str(),
             static_cast<unsigned long long>(delay));
    Retry(id, d->ev.attempt, d->ev.service_retries + 1, delay);
  }
}

// The invocation record of the attempt a delivery ran ("" if it ran none).
std::string EventQueue::RecordOf(const Delivery& d) const {
  if (!d.has_outcome || d.started_ms == 0) return "";
  InvocationRecord rec = MakeRecord(d.outcome);
  rec.request_id = d.ev.request_id;
  rec.function = d.ev.function;
  rec.payload_bytes = d.ev.payload.size();
  rec.type = "Event";
  rec.attempt = d.ev.attempt;
  rec.accepted_ms = d.ev.accepted_ms;
  rec.started_ms = d.started_ms;
  rec.ended_ms = d.ended_ms;
  rec.daemon = options_.daemon_id;
  rec.response_preview = d.outcome.body.substr(0, kResponsePreviewBytes);
  return rec.ToJsonText();
}

void EventQueue::Finish(const EntryId& id, const std::string& condition) {
  Delivery* d = Find(id);
  if (d == nullptr) return;
  const Keys& k = options_.keys;
  const Event& ev = d->ev;
  bool failed = condition != "Success";
  std::string record = RecordOf(*d);
  // The follow-up: a destination event, or a dead letter for a failure with no OnFailure.
  std::string kind, target = k.stream();
  std::vector<std::string> follow;
  const std::string& destination = failed ? d->config.on_failure : d->config.on_success;
  std::string dest_function;
  if (!destination.empty() && condition != "FunctionNotFound" &&
      DestinationFunction(destination, &dest_function).ok()) {
    DestinationInput in;
    in.request_id = ev.request_id;
    in.function = ev.function;
    in.condition = condition;
    in.approximate_invoke_count = ev.attempt;
    in.request_payload = ev.payload;
    in.status_code = 200;
    in.function_error = d->has_outcome && d->outcome.kind != sandbox::OutcomeKind::kSuccess;
    in.response_payload = d->has_outcome ? d->outcome.body : "";
    in.timestamp_ms = EpochMs();
    kind = "event";
    follow = {"function",       dest_function,
              "request_id",     NewRequestId(),
              "payload",        DestinationRecord(in),
              "content_type",   "application/json",
              "attempt",        "1",
              "source",         "destination",
              "destination_of", ev.request_id};
  } else if (failed) {
    kind = "dlq";
    target = k.dlq();
    std::string error = d->has_outcome ? d->outcome.body.substr(0, kMaxErrorBytes)
                                       : "{\"errorType\":\"" + condition + "\"}";
    std::string error_type = condition;
    if (d->has_outcome) {
      error_type = d->outcome.error_type;
      if (error_type.empty()) {
        error_type = sandbox::IsFunctionOutcome(d->outcome.kind) ? "Unhandled"
                                                                 : OutcomeKindName(d->outcome.kind);
      }
    }
    follow = {"function",     ev.function,
              "request_id",   ev.request_id,
              "payload",      ev.payload,
              "content_type", ev.content_type,
              "accepted_ms",  std::to_string(ev.accepted_ms),
              "attempts",     std::to_string(ev.attempt),
              "condition",    condition,
              "error_type",   error_type,
              "error",        error,
              "daemon",       options_.daemon_id};
  }
  std::vector<std::string> args = {k.group(),
                                   id,
                                   condition,
                                   std::to_string(ev.attempt),
                                   options_.daemon_id,
                                   std::to_string(options_.done_ttl_ms),
                                   k.prefix,
                                   ev.request_id,
                                   ev.function,
                                   record,
                                   std::to_string(options_.retention.max_age_ms),
                                   std::to_string(options_.retention.max_count),
                                   kind};
  args.insert(args.end(), follow.begin(), follow.end());
  Eval(scripts::kFinish, {k.stream(), k.done(ev.request_id), target}, std::move(args),
       [this, id, condition, kind](Status s, redis::Reply r) {
         Delivery* d = Find(id);
         if (d == nullptr) return;
         if (!s.ok()) {
           WriteLater(id, s, [this, id, condition] { Finish(id, condition); });
           return;
         }
         if (r.Integer().value_or(0) == 1) {
           if (condition == "RetriesExhausted") ++stats_.exhausted;
           if (condition == "EventAgeExceeded") ++stats_.expired;
           if (kind == "dlq") ++stats_.dead_letters;
           if (kind == "event") ++stats_.destinations;
           if (condition != "Success") {
             LOG_INFO("events", "event %s of %s: %s after %d attempt(s)%s",
                      d->ev.request_id.c_str(), d->ev.function.c_str(), condition.c_str(),
                      d->ev.attempt,
                      kind == "dlq"     ? "; dead-lettered"
                      : kind == "event" ? "; sent to its destination"
                                        : "");
           }
         } else {
           ++stats_.duplicates;
           LOG_INFO("events", "event %s of %s was finished already elsewhere; acknowledged",
                    d->ev.request_id.c_str(), d->ev.function.c_str());
         }
         Release(id);
       });
}

void EventQueue::Retry(const EntryId& id, int next_attempt, int service_retries,
                       uint64_t delay_ms) {
  Delivery* d = Find(id);
  if (d == nullptr) return;
  const Keys& k = options_.keys;
  const Event& ev = d->ev;
  std::string record = RecordOf(*d);
  std::vector<std::string> args = {k.group(),
                                   id,
                                   std::to_string(delay_ms),
                                   k.prefix,
                                   ev.request_id,
                                   ev.function,
                                   record,
                                   std::to_string(options_.retention.max_age_ms),
                                   std::to_string(options_.retention.max_count),
                                   "function",
                                   ev.function,
                                   "request_id",
                                   ev.request_id,
                                   "payload",
                                   ev.payload,
                                   "content_type",
                                   ev.content_type,
                                   "accepted_ms",
                                   std::to_string(ev.accepted_ms),
                                   "attempt",
                                   std::to_string(next_attempt),
                                   "service_retries",
                                   std::to_string(service_retries),
                                   "source",
                                   ev.source,
                                   "caller",
                                   ev.caller};
  Eval(scripts::kRetry, {k.stream(), k.done(ev.request_id), k.retries(), k.retry(ev.request_id)},
       std::move(args),
       [this, id, next_attempt, service_retries, delay_ms](Status s, redis::Reply r) {
         Delivery* d = Find(id);
         if (d == nullptr) return;
         if (!s.ok()) {
           WriteLater(id, s, [this, id, next_attempt, service_retries, delay_ms] {
             Retry(id, next_attempt, service_retries, delay_ms);
           });
           return;
         }
         if (r.Integer().value_or(0) == 1) {
           ++stats_.retries;
           ScheduleMover(delay_ms);
         } else {
           ++stats_.duplicates;
         }
         Release(id);
       });
}

void EventQueue::AckOnly(const EntryId& id) {
  Eval(scripts::kAck, {options_.keys.stream()}, {options_.keys.group(), id},
       [this, id](Status s, redis::Reply) {
         if (Find(id) == nullptr) return;
         if (!s.ok()) {
           WriteLater(id, s, [this, id] { AckOnly(id); });
           return;
         }
         Release(id);
       });
}

void EventQueue::Release(const EntryId& id) {
  deliveries_.erase(id);
  ReadMore();
}

// ---- Around the pipeline ----

// Takes over entries idle for claim_idle_ms on any consumer (a daemon that died).
void EventQueue::Claim() {
  claim_timer_.Start(std::max<uint64_t>(options_.claim_idle_ms / 2, 100),
                     Guarded(alive_, [this] { Claim(); }));
  FlushTombstones();
  if (group_ready_ && ++claims_ % 600 == 1) ForgetGoneConsumers();
  size_t cap = static_cast<size_t>(std::max(options_.concurrency, 0));
  if (stopping_ || !group_ready_ || claiming_ || deliveries_.size() >= cap) return;
  claiming_ = true;
  commands_->Command(
      {"XAUTOCLAIM", options_.keys.stream(), options_.keys.group(), options_.daemon_id,
       std::to_string(options_.claim_idle_ms), claim_cursor_, "COUNT",
       std::to_string(cap - deliveries_.size())},
      Guarded(alive_, [this](Status s, redis::Reply r) {
        claiming_ = false;
        if (!s.ok() || !r.is_array() || r.elements.size() < 2) return;
        claim_cursor_ = r.elements[0].Text().value_or("0-0");
        for (const auto& [id, fields] : Entries(r.elements[1])) {
          if (deliveries_.count(id) > 0) continue;
          ++stats_.claimed;
          LOG_INFO("events", "claimed event entry %s, idle for over %llu ms on another consumer",
                   id.c_str(), static_cast<unsigned long long>(options_.claim_idle_ms));
          Deliver(id, *fields);
        }
      }));
}

// Consumers that hold nothing and have not read for an hour are daemons that are gone
// (a daemon on port 0 gets a new name at every start): their names are dropped. A live
// consumer reads at least every block_ms, and a dropped name comes back at its next read.
void EventQueue::ForgetGoneConsumers() {
  commands_->Command(
      {"XINFO", "CONSUMERS", options_.keys.stream(), options_.keys.group()},
      Guarded(alive_, [this](Status s, redis::Reply r) {
        if (!s.ok()) return;
        for (const auto& c : r.elements) {
          std::string name;
          long long pending = -1, idle = -1;
          for (size_t i = 0; i + 1 < c.elements.size(); i += 2) {
            const std::string& k = c.elements[i].str;
            if (k == "name") name = c.elements[i + 1].str;
            if (k == "pending") pending = c.elements[i + 1].Integer().value_or(-1);
            if (k == "idle") idle = c.elements[i + 1].Integer().value_or(-1);
          }
          if (name.empty() || name == options_.daemon_id || pending != 0 || idle < 3600000) {
            continue;
          }
          commands_->Command(
              {"XGROUP", "DELCONSUMER", options_.keys.stream(), options_.keys.group(), name},
              [](Status, redis::Reply) {});
        }
      }));
}

// Keeps the entries this daemon holds from looking idle (XCLAIM resets their idle time).
void EventQueue::Heartbeat() {
  heartbeat_timer_.Start(std::max<uint64_t>(options_.claim_idle_ms / 3, 50),
                         Guarded(alive_, [this] { Heartbeat(); }));
  if (deliveries_.empty() || !commands_->ready()) return;
  std::vector<std::string> argv = {"XCLAIM", options_.keys.stream(), options_.keys.group(),
                                   options_.daemon_id, "0"};
  for (const auto& [id, d] : deliveries_) argv.push_back(id);
  argv.push_back("JUSTID");
  commands_->Command(std::move(argv), [](Status, redis::Reply) {});
}

void EventQueue::ScheduleMover(uint64_t ms) {
  if (moving_) return;
  // A retry scheduled by another daemon is found within a second.
  ms = std::min<uint64_t>(ms, 1000);
  if (mover_timer_.active()) {
    // Restart only to make it sooner; the timer cannot say when it is due, so a retry
    // of our own simply restarts it.
    if (ms >= 1000) return;
  }
  mover_timer_.Start(ms, Guarded(alive_, [this] { MoveDue(); }));
}

void EventQueue::MoveDue() {
  moving_ = true;
  constexpr int kBatch = 100;
  Eval(scripts::kMoveDue, {options_.keys.retries(), options_.keys.stream()},
       {std::to_string(kBatch)}, [this](Status s, redis::Reply r) {
         moving_ = false;
         uint64_t next = 1000;
         if (s.ok() && r.is_array() && r.elements.size() == 2) {
           long long moved = r.elements[0].Integer().value_or(0);
           long long wait = r.elements[1].Integer().value_or(-1);
           if (moved >= kBatch)
             next = 1;
           else if (wait >= 0)
             next = static_cast<uint64_t>(wait) + 1;
         }
         if (stopping_ && deliveries_.empty()) return;
         ScheduleMover(next);
       });
}

void EventQueue::FlushTombstones() {
  while (!unconfirmed_.empty() && commands_->ready()) {
    std::string request_id = unconfirmed_.front();
    unconfirmed_.pop_front();
    Eval(scripts::kTombstone, {options_.keys.done(request_id)},
         {std::to_string(options_.done_ttl_ms), options_.daemon_id},
         [this, request_id](Status s, redis::Reply r) {
           if (!s.ok()) {
             unconfirmed_.push_back(request_id);
             return;
           }
           ++stats_.tombstones;
           if (r.Integer().value_or(1) == 0) {
             LOG_ERROR("events",
                       "event %s was answered 503 (Redis did not confirm its write in time), "
                       "but Redis had taken it and it ran",
                       request_id.c_str());
           }
         });
  }
}

// A write Redis did not take (down, or no answer in time) is tried again with backoff;
// the delivery keeps its slot meanwhile, so memory stays bounded.
void EventQueue::WriteLater(const EntryId& id, const Status& why, std::function<void()> write) {
  Delivery* d = Find(id);
  if (d == nullptr) return;
  if (commands_->ready()) {
    // Redis answered, with an error: not an outage, so say it (an outage is logged once by
    // the client).
    LOG_WARN("events", "a write for event %s of %s failed (%s); trying again",
             d->ev.request_id.c_str(), d->ev.function.c_str(), why.message().c_str());
  }
  d->pending_write = std::move(write);
  write_retries_.push_back(id);
  if (!write_timer_.active()) {
    write_timer_.Start(write_backoff_ms_, Guarded(alive_, [this] { RunWriteRetries(); }));
    write_backoff_ms_ = std::min<uint64_t>(write_backoff_ms_ * 2, 5000);
  }
}

void EventQueue::RunWriteRetries() {
  write_timer_.Stop();
  if (!commands_->ready()) {
    if (!write_retries_.empty()) {
      write_timer_.Start(write_backoff_ms_, Guarded(alive_, [this] { RunWriteRetries(); }));
    }
    return;
  }
  write_backoff_ms_ = 200;
  std::vector<EntryId> ids;
  ids.swap(write_retries_);
  for (const auto& id : ids) {
    Delivery* d = Find(id);
    if (d == nullptr || !d->pending_write) continue;
    auto write = std::move(d->pending_write);
    d->pending_write = nullptr;
    write();
  }
}

}  // namespace ephemera::events
