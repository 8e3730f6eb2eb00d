#include "runtime/events/events.h"

#include <cstdio>
#include <utility>

#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/core/log.h"
#include "runtime/events/scripts.h"

namespace ephemera::events {
namespace {

redis::ClientOptions ClientFor(const EventsOptions& o, const std::string& role, bool heartbeat) {
  redis::ClientOptions c;
  c.url = o.url;
  c.command_timeout_ms = o.redis_timeout_ms;
  c.heartbeat_ms = heartbeat ? 1000 : 0;
  std::string name = "ephemera-" + o.queue.daemon_id + "-" + role;
  for (char& ch : name) {
    if (ch == ' ' || ch == '\n' || ch == '\r') ch = '_';
  }
  c.name = name;
  return c;
}

std::map<std::string, std::string> FieldMap(const redis::Reply& fields) {
  std::map<std::string, std::string> m;
  for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    m[fields.elements[i].str] = fields.elements[i + 1].str;
  }
  return m;
}

// Stream entry ids are "<ms>-<seq>"; anything else is no entry (and Redis would refuse it).
bool IsEntryId(const std::string& id) {
  size_t dash = id.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == id.size()) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    if (i != dash && (id[i] < '0' || id[i] > '9')) return false;
  }
  return true;
}

}  // namespace

Events::Events(uv_loop_t* loop, EventsOptions options, Runner runner)
    : loop_(loop),
      options_(std::move(options)),
      commands_(std::make_unique<redis::Client>(loop, ClientFor(options_, "cmd", true))),
      reader_(std::make_unique<redis::Client>(loop, ClientFor(options_, "read", false))),
      record_timer_(loop),
      drain_timer_(loop),
      defer_timer_(loop),
      first_attempt_timer_(loop),
      alive_(std::make_shared<bool>(true)) {
  options_.queue.accept_deadline_ms = std::max<uint64_t>(options_.redis_timeout_ms / 2, 1);
  queue_ = std::make_unique<EventQueue>(loop, commands_.get(), reader_.get(), std::move(runner),
                                        options_.queue);
  commands_->set_state_listener(
      [this](bool ready, const Status& why) { OnCommandsState(ready, why); });
  reader_->set_state_listener([this](bool ready, const Status&) {
    if (ready) queue_->OnRedisReady();
  });
}

Events::~Events() {
  *alive_ = false;
  queue_.reset();  // before the clients it borrows
}

void Events::Start() {
  commands_->Connect();
  reader_->Connect();
}

void Events::StartConsuming() {
  queue_->Start();
}

void Events::WhenFirstAttemptDone(std::function<void()> done) {
  const redis::ClientStats& s = commands_->stats();
  if (s.connects + s.failed_attempts > 0) {
    Defer(std::move(done));
    return;
  }
  first_attempt_timer_.Start(
      10, [this, done = std::move(done)]() mutable { WhenFirstAttemptDone(std::move(done)); });
}

void Events::Stop() {
  queue_->Stop();
}

void Events::Drain(std::function<void()> done) {
  FlushRecords();
  double deadline = MonotonicMs() + 2.0 * static_cast<double>(options_.redis_timeout_ms);
  auto check = std::make_shared<std::function<void()>>();
  *check = [this, deadline, done = std::move(done), check] {
    if ((queue_->idle() && record_writes_ == 0) || MonotonicMs() >= deadline) {
      if (!queue_->idle()) {
        LOG_WARN("events", "stopping with %zu event(s) held; they stay pending in Redis",
                 queue_->in_flight());
      }
      auto fn = done;
      *check = nullptr;  // breaks the cycle
      fn();
      return;
    }
    drain_timer_.Start(20, [check] {
      if (*check) (*check)();
    });
  };
  drain_timer_.Start(0, [check] {
    if (*check) (*check)();
  });
}

// Answers known without Redis still come on a later loop turn (docs/style.md rule 5).
void Events::Defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (defer_timer_.active()) return;
  defer_timer_.Start(0, [this] {
    std::vector<std::function<void()>> batch;
    batch.swap(deferred_);
    for (auto& f : batch) f();
  });
}

void Events::OnCommandsState(bool ready, const Status& why) {
  if (ready) {
    if (records_skipped_this_outage_ > 0) {
      LOG_INFO("events", "invocation records are kept again; %llu skipped while Redis was down",
               static_cast<unsigned long long>(records_skipped_this_outage_));
    }
    records_skipped_this_outage_ = 0;
    records_outage_logged_ = false;
    queue_->OnRedisReady();
  } else {
    LOG_WARN("events",
             "Redis at %s is unavailable (%s): Event invocations get 503 and invocation records "
             "are skipped until it is back; synchronous invocations go on",
             commands_->url().c_str(), why.message().c_str());
    records_outage_logged_ = true;
  }
}

void Events::Eval(const std::string& script, std::vector<std::string> keys,
                  std::vector<std::string> args, redis::Client::Callback cb) {
  std::vector<std::string> argv = {"EVAL", script, std::to_string(keys.size())};
  for (auto& k : keys) argv.push_back(std::move(k));
  for (auto& a : args) argv.push_back(std::move(a));
  commands_->Command(std::move(argv),
                     [alive = alive_, cb = std::move(cb)](Status s, redis::Reply r) {
                       if (*alive) cb(std::move(s), std::move(r));
                     });
}

// ---- records ----

void Events::Record(const InvocationRecord& record) {
  if (!commands_->ready()) {
    SkipRecords(1);
    return;
  }
  // Buffered for up to kRecordFlushMs: the records of that window (dozens under load) go to
  // Redis in one script call, with the retention run once per index. Readers of records
  // flush first (ListRecords, GetRecords), so a caller sees its own invocation's record.
  record_batch_.push_back(record.request_id);
  record_batch_.push_back(record.function);
  record_batch_.push_back(record.ToJsonText());
  ++record_writes_;
  if (record_batch_.size() >= 3 * kMaxRecordBatch) {
    FlushRecords();
  } else if (!record_timer_.active()) {
    record_timer_.Start(kRecordFlushMs, [this] { FlushRecords(); });
  }
}

void Events::SkipRecords(size_t n) {
  records_skipped_ += n;
  records_skipped_this_outage_ += n;
  if (!records_outage_logged_) {
    LOG_WARN("events", "invocation records are not kept while Redis at %s is unavailable (%s)",
             commands_->url().c_str(), commands_->last_error().c_str());
    records_outage_logged_ = true;
  }
}

void Events::FlushRecords() {
  record_timer_.Stop();
  if (record_batch_.empty()) return;
  size_t n = record_batch_.size() / 3;
  std::vector<std::string> batch;
  batch.swap(record_batch_);
  if (!commands_->ready()) {
    record_writes_ -= n;
    SkipRecords(n);
    return;
  }
  const EventQueueOptions& q = options_.queue;
  std::vector<std::string> args = {q.keys.prefix, std::to_string(q.retention.max_age_ms),
                                   std::to_string(q.retention.max_count)};
  args.insert(args.end(), std::make_move_iterator(batch.begin()),
              std::make_move_iterator(batch.end()));
  Eval(scripts::kRecordBatch, {}, std::move(args), [this, n](Status s, redis::Reply) {
    record_writes_ -= n;
    if (s.ok()) {
      records_written_ += n;
    } else {
      records_skipped_ += n;
      LOG_DEBUG("events", "%zu invocation record(s) were not written: %s", n, s.message().c_str());
    }
  });
}

void Events::ListRecords(const std::string& function, size_t limit, const std::string& since_ms,
                         std::function<void(Status, std::vector<std::string>)> done) {
  FlushRecords();  // sent first on the same connection, so answered first
  const Keys& k = options_.queue.keys;
  Eval(scripts::kListRecords, {function.empty() ? k.record_index() : k.record_index(function)},
       {k.prefix, std::to_string(limit), since_ms,
        std::to_string(options_.queue.retention.max_age_ms),
        std::to_string(options_.queue.retention.max_count)},
       [done = std::move(done)](Status s, redis::Reply r) {
         std::vector<std::string> out;
         if (s.ok()) {
           for (const auto& e : r.elements) out.push_back(e.str);
         }
         done(std::move(s), std::move(out));
       });
}

void Events::GetRecords(
    const std::string& request_id,
    std::function<void(Status, std::vector<std::string>, std::map<std::string, std::string>)>
        done) {
  struct Both {
    Status status;
    std::vector<std::string> records;
    std::map<std::string, std::string> final_state;
    int left = 2;
  };
  FlushRecords();  // sent first on the same connection, so answered first
  auto both = std::make_shared<Both>();
  auto finish = [both, done = std::move(done)] {
    if (--both->left == 0)
      done(both->status, std::move(both->records), std::move(both->final_state));
  };
  const Keys& k = options_.queue.keys;
  auto alive = alive_;
  const RecordRetention& keep = options_.queue.retention;
  Eval(scripts::kGetRecords, {k.records(request_id)},
       {k.prefix, std::to_string(keep.max_age_ms), std::to_string(keep.max_count)},
       [both, finish, alive](Status s, redis::Reply r) mutable {
         if (!*alive) return;
         if (!s.ok()) both->status = s;
         for (const auto& e : r.elements) both->records.push_back(e.str);
         finish();
       });
  commands_->Command({"HGETALL", k.done(request_id)},
                     [both, finish, alive](Status s, redis::Reply r) mutable {
                       if (!*alive) return;
                       if (!s.ok() && both->status.ok()) both->status = s;
                       both->final_state = FieldMap(r);
                       finish();
                     });
}

// ---- configs ----

void Events::GetConfig(const std::string& function,
                       std::function<void(Status, std::optional<EventInvokeConfig>)> done) {
  commands_->Command({"GET", options_.queue.keys.config(function)},
                     [alive = alive_, done = std::move(done)](Status s, redis::Reply r) {
                       if (!*alive) return;
                       if (!s.ok()) return done(std::move(s), std::nullopt);
                       if (r.is_nil()) return done(Status::Ok(), std::nullopt);
                       EventInvokeConfig c;
                       Status p = FromStored(r.str, &c);
                       if (!p.ok()) return done(std::move(p), std::nullopt);
                       done(Status::Ok(), std::move(c));
                     });
}

void Events::PutConfig(const std::string& function, const EventInvokeConfig& config,
                       std::function<void(Status)> done) {
  commands_->Command({"SET", options_.queue.keys.config(function), ToStored(config)},
                     [alive = alive_, done = std::move(done)](Status s, redis::Reply) {
                       if (*alive) done(std::move(s));
                     });
}

void Events::DeleteConfig(const std::string& function,
                          std::function<void(Status, bool existed)> done) {
  commands_->Command({"DEL", options_.queue.keys.config(function)},
                     [alive = alive_, done = std::move(done)](Status s, redis::Reply r) {
                       if (*alive) done(std::move(s), r.Integer().value_or(0) > 0);
                     });
}

// ---- dead letters ----

void Events::ListDeadLetters(size_t limit,
                             std::function<void(Status, std::vector<DeadLetter>)> done) {
  commands_->Command(
      {"XREVRANGE", options_.queue.keys.dlq(), "+", "-", "COUNT", std::to_string(limit)},
      [alive = alive_, done = std::move(done)](Status s, redis::Reply r) {
        if (!*alive) return;
        std::vector<DeadLetter> out;
        for (const auto& e : r.elements) {
          if (e.elements.size() != 2) continue;
          out.push_back({e.elements[0].str, FieldMap(e.elements[1])});
        }
        done(std::move(s), std::move(out));
      });
}

void Events::ReplayDeadLetter(
    const std::string& id,
    std::function<void(Status, std::string request_id, std::string function)> done) {
  const Keys& k = options_.queue.keys;
  std::string request_id = NewRequestId();
  if (!IsEntryId(id)) {
    Defer([id, done = std::move(done)] {
      done(NotFound("no dead letter " + id + " (ids look like 1700000000000-0)"), "", "");
    });
    return;
  }
  Eval(scripts::kReplay, {k.dlq(), k.stream()}, {id, request_id},
       [id, request_id, done = std::move(done)](Status s, redis::Reply r) {
         if (!s.ok()) return done(std::move(s), "", "");
         if (r.is_nil() || r.elements.size() != 2) {
           return done(NotFound("no dead letter " + id + " (see GET /ephemera/dlq)"), "", "");
         }
         done(Status::Ok(), request_id, r.elements[1].str);
       });
}

void Events::DeleteDeadLetter(const std::string& id,
                              std::function<void(Status, bool existed)> done) {
  if (!IsEntryId(id)) {
    Defer([done = std::move(done)] { done(Status::Ok(), false); });
    return;
  }
  commands_->Command({"XDEL", options_.queue.keys.dlq(), id},
                     [alive = alive_, done = std::move(done)](Status s, redis::Reply r) {
                       if (*alive) done(std::move(s), r.Integer().value_or(0) > 0);
                     });
}

// ---- metrics ----

std::string Events::MetricsText() const {
  std::string out;
  char line[400];
  auto metric = [&](const char* name, const char* help, double v, const char* kind) {
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.6g\n", name, help, name,
                  kind, name, v);
    out += line;
  };
  const EventQueueStats& s = queue_->stats();
  metric("ephemera_redis_up", "1 if the daemon's Redis connection is ready.",
         commands_->ready() ? 1 : 0, "gauge");
  metric("ephemera_redis_reconnects_total", "Times the Redis connection came back after a loss.",
         double(commands_->stats().connects > 0 ? commands_->stats().connects - 1 : 0), "counter");
  metric("ephemera_events_accepted_total", "Event invocations made durable (answered 202).",
         double(s.accepted), "counter");
  metric("ephemera_events_refused_total",
         "Event invocations refused before their 202 (Redis unavailable, or the queue full).",
         double(s.refused), "counter");
  metric("ephemera_events_started_total", "Event invocation attempts handed to the scheduler.",
         double(s.started), "counter");
  metric("ephemera_events_succeeded_total", "Event invocations that succeeded.",
         double(s.succeeded), "counter");
  metric("ephemera_events_function_errors_total",
         "Event invocation attempts that ended in a function error or timeout.",
         double(s.function_errors), "counter");
  metric("ephemera_events_service_errors_total",
         "Event invocation attempts that could not run (retried within the event age).",
         double(s.service_errors), "counter");
  metric("ephemera_events_retries_total", "Retries scheduled.", double(s.retries), "counter");
  metric("ephemera_events_retries_exhausted_total", "Event invocations that ran out of retries.",
         double(s.exhausted), "counter");
  metric("ephemera_events_expired_total", "Event invocations past MaximumEventAgeInSeconds.",
         double(s.expired), "counter");
  metric("ephemera_events_dead_letters_total",
         "Event invocations written to the dead-letter stream.", double(s.dead_letters), "counter");
  metric("ephemera_events_destinations_total", "Destination invocations sent.",
         double(s.destinations), "counter");
  metric("ephemera_events_claimed_total", "Events taken over from a consumer that stopped.",
         double(s.claimed), "counter");
  metric("ephemera_events_skipped_total",
         "Events delivered again after their final state was set: acknowledged, not run.",
         double(s.skipped_done + s.duplicates), "counter");
  metric("ephemera_events_in_flight", "Event invocations this daemon holds now.",
         double(queue_->in_flight()), "gauge");
  metric("ephemera_records_written_total", "Invocation records written to Redis.",
         double(records_written_), "counter");
  metric("ephemera_records_skipped_total",
         "Invocation records not written because Redis was unavailable.", double(records_skipped_),
         "counter");
  return out;
}

}  // namespace ephemera::events
