#include "runtime/scheduler/scheduler.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <unordered_set>

#include "runtime/core/clock.h"
#include "runtime/core/log.h"
#include "runtime/sandbox/container_spec.h"

namespace ephemera::scheduler {

using sandbox::Environment;
using sandbox::EnvironmentState;
using sandbox::InvokeOutcome;
using sandbox::OutcomeKind;
using sandbox::StartKind;

namespace {

bool OwnerIsGone(const std::map<std::string, std::string>& labels);

// Pool refills that keep failing (a broken image, an engine that is down) back off from
// this delay, doubling, up to the cap; one success resets it.
constexpr uint64_t kRefillBackoffMs = 100;
constexpr uint64_t kRefillBackoffMaxMs = 10000;

// A pool environment taken by an invocation is replaced once that invocation ends, or
// after this long if it runs on: a container start burns both cores of a small machine
// for ~150 ms, and started at once it would slow the very invocation that took the
// environment (pool p99 above the handler: 3.5 ms with the refill at once). The pool's
// last idle environment is the exception: the next caller waits for its replacement, so
// that one starts at once (a pool of 2 drained as fast as it refills: 5.4-7.3 fresh
// containers/s in four runs before, 6.9-7.9/s in three after; bench/README.md).
constexpr uint64_t kRefillAfterTakeMs = 50;

// A used pool environment is disposed, and its replacement started, this long after its
// outcome: the engine's work for both (a kill, a removal, a create and a start, ~200 ms of
// CPU) would otherwise land on the two cores while the answer is still reaching the caller
// (the pool's latency above the handler, p99 4.1 ms in a run with both at once).
constexpr uint64_t kAfterReplyMs = 10;

}  // namespace

struct Scheduler::Entry {
  enum class Stage { kQueued, kStarting, kRunning };
  Stage stage = Stage::kQueued;
  std::string function;
  sandbox::Invocation inv;  // moved into the environment when it is handed over
  sandbox::InvokeDone done;
  double enqueued_ms = -1;
  std::unique_ptr<Timer> deadline;  // the admission queue's wait limit (sync only)
  docker::ImageConfig image;        // resolved, while it waits for a start slot
};

struct Scheduler::FunctionState {
  std::shared_ptr<const registry::FunctionSpec> spec;  // the current one
  std::deque<Handle> queue;                            // waiting for admission, FIFO
  size_t sync_waiting = 0;
  int running = 0;           // admitted, outcome not known yet
  int live = 0;              // environments of this function that are not gone
  std::vector<EnvPtr> idle;  // ready, waiting on /next for an invocation
  std::unordered_map<Environment*, std::unique_ptr<Timer>> ttl;  // warm idle timers
  std::unordered_set<Environment*> pool_pending;                 // pool, provisioning
  int pool_resolving = 0;  // pool refills resolving their image (each holds a start slot)
  bool refill_wanted = false;
  int refill_failures = 0;
  std::unique_ptr<Timer> refill_backoff;
  std::unique_ptr<Timer> refill_soon;  // kRefillAfterTakeMs after a pool environment is taken
  std::string image_id;                // what the spec's image tag pointed to when last inspected
  EnvPtr ahead;  // cold, precreate: the next container, created and not started
  std::optional<docker::ImageConfig> ahead_image;  // to create it with, once a start returns
  bool listed = true;                              // present in the last SyncFunctions
};

Scheduler::Scheduler(uv_loop_t* loop, docker::DockerClient* docker, SchedulerOptions options)
    : loop_(loop),
      docker_(docker),
      options_(std::move(options)),
      starts_timer_(loop),
      defer_timer_(loop),
      after_reply_timer_(loop) {}

Scheduler::~Scheduler() {
  // Environments call back into us: drop them before our members go.
  env_invocation_.clear();
  for (auto& [name, fs] : functions_) {
    fs->idle.clear();
    fs->ttl.clear();
  }
  environments_.clear();
  retired_.clear();
}

size_t Scheduler::idle_environments() const {
  size_t n = 0;
  for (const auto& [name, fs] : functions_) n += fs->idle.size();
  return n;
}

size_t Scheduler::disposing() const {
  size_t n = 0;
  for (const auto& [raw, env] : environments_) {
    if (env->state() == EnvironmentState::kDisposing) ++n;
  }
  return n;
}

Scheduler::FunctionState& Scheduler::StateOf(
    const std::shared_ptr<const registry::FunctionSpec>& spec) {
  auto& slot = functions_[spec->name];
  if (!slot) {
    slot = std::make_unique<FunctionState>();
    slot->spec = spec;
    slot->refill_backoff = std::make_unique<Timer>(loop_);
    slot->refill_soon = std::make_unique<Timer>(loop_);
    return *slot;
  }
  if (slot->spec != spec && *slot->spec != *spec) {
    // The function was created again with other settings: what ran the old spec is not
    // reused.
    slot->spec = spec;
    Drain(*slot, "its function was changed");
  } else {
    slot->spec = spec;
  }
  return *slot;
}

// ---- 1. Admission ----

Scheduler::Handle Scheduler::Invoke(sandbox::InvokeRequest request, sandbox::InvokeDone done) {
  Handle handle = next_handle_++;
  auto entry = std::make_unique<Entry>();
  entry->function = request.function->name;
  entry->done = std::move(done);
  entry->inv.accepted_ms = MonotonicMs();
  auto spec = request.function;
  entry->inv.request = std::move(request);
  entries_.emplace(handle, std::move(entry));
  if (shutting_down_) {
    Refuse(handle, OutcomeKind::kCancelled, "", Cancelled("ephemera is stopping"));
    return handle;
  }
  FunctionState& fs = StateOf(spec);
  if (fs.queue.empty() && CanAdmit(fs)) {
    Admit(handle);
  } else {
    Enqueue(handle, fs);
  }
  return handle;
}

bool Scheduler::CanAdmit(const FunctionState& fs) const {
  if (fs.spec->concurrency > 0 && fs.running >= fs.spec->concurrency) return false;
  return options_.max_concurrency <= 0 || running_ < static_cast<size_t>(options_.max_concurrency);
}

void Scheduler::Enqueue(Handle handle, FunctionState& fs) {
  Entry& e = *entries_.at(handle);
  const registry::FunctionSpec& spec = *fs.spec;
  bool function_limit = spec.concurrency > 0 && fs.running >= spec.concurrency;
  const char* reason = function_limit ? "ReservedFunctionConcurrentInvocationLimitExceeded"
                                      : "ConcurrentInvocationLimitExceeded";
  std::string limit = function_limit
                          ? "Function " + spec.name + " has reached its concurrency limit of " +
                                std::to_string(spec.concurrency)
                          : "ephemera is running its limit of " +
                                std::to_string(options_.max_concurrency) + " invocations";
  if (!e.inv.request.async) {
    if (fs.sync_waiting >= static_cast<size_t>(spec.queue_size)) {
      ++stats_.throttled;
      Refuse(handle, OutcomeKind::kThrottled, reason,
             Conflict("Rate Exceeded. " + limit + " and " + std::to_string(spec.queue_size) +
                      " invocations already wait for it"));
      return;
    }
    ++fs.sync_waiting;
    ++waiting_sync_;
    e.deadline = std::make_unique<Timer>(loop_);
    e.deadline->Start(static_cast<uint64_t>(spec.queue_timeout_s) * 1000,
                      [this, handle, reason, limit, name = spec.name] {
                        auto it = entries_.find(handle);
                        if (it == entries_.end()) return;
                        auto& fs = *functions_.at(name);
                        fs.queue.erase(std::find(fs.queue.begin(), fs.queue.end(), handle));
                        --fs.sync_waiting;
                        --waiting_sync_;
                        ++stats_.throttled;
                        ++stats_.queue_timeouts;
                        Refuse(
                            handle, OutcomeKind::kThrottled, reason,
                            Conflict("Rate Exceeded. " + limit + "; waited " +
                                     std::to_string(fs.spec->queue_timeout_s) + " s for capacity"));
                      });
  } else {
    ++waiting_async_;
  }
  ++stats_.queued;
  e.enqueued_ms = MonotonicMs();
  fs.queue.push_back(handle);
}

// An entry left its function's queue (admitted or cancelled): the counts follow.
void Scheduler::LeftQueue(FunctionState& fs, Entry& e) {
  if (e.deadline) {
    e.deadline->Stop();
    --fs.sync_waiting;
    --waiting_sync_;
  } else {
    --waiting_async_;
  }
}

void Scheduler::PumpQueue(FunctionState& fs) {
  while (!fs.queue.empty() && CanAdmit(fs)) {
    Handle handle = fs.queue.front();
    fs.queue.pop_front();
    auto it = entries_.find(handle);
    if (it == entries_.end()) continue;
    Entry& e = *it->second;
    LeftQueue(fs, e);
    e.inv.queued_ms = MonotonicMs() - e.enqueued_ms;
    Admit(handle);
  }
}

void Scheduler::PumpAllQueues() {
  for (auto& [name, fs] : functions_) {
    if (!fs->queue.empty()) PumpQueue(*fs);
  }
}

void Scheduler::Admit(Handle handle) {
  Entry& e = *entries_.at(handle);
  FunctionState& fs = *functions_.at(e.function);
  ++fs.running;
  ++running_;
  ++stats_.started;
  if (EnvPtr env = TakeIdle(fs)) {
    e.stage = Entry::Stage::kRunning;
    ++(env->kind() == StartKind::kPool ? stats_.pool_starts : stats_.warm_starts);
    env_invocation_[env.get()] = handle;
    sandbox::Invocation inv = std::move(e.inv);
    inv.done = [this, handle](InvokeOutcome out) { Complete(handle, std::move(out)); };
    bool pooled = env->kind() == StartKind::kPool;
    env->Run(std::move(inv));
    if (pooled && fs.idle.empty()) {
      // The pool is empty: the next caller waits for this replacement, so it starts now.
      RefillPool(fs);
    } else if (pooled && !fs.refill_soon->active()) {
      // Replaced when the invocation ends (OnOutcome), or after kRefillAfterTakeMs.
      fs.refill_soon->Start(kRefillAfterTakeMs, [this, name = fs.spec->name] {
        auto it = functions_.find(name);
        if (it != functions_.end()) RefillPool(*it->second);
      });
    }
    return;
  }
  StartCold(handle);
}

// ---- 2. Environments: kept ones first, else a cold start ----

bool Scheduler::Current(const FunctionState& fs, const Environment& env) const {
  return env.spec_ptr() == fs.spec && (fs.image_id.empty() || env.image_id() == fs.image_id);
}

Scheduler::EnvPtr Scheduler::TakeIdle(FunctionState& fs) {
  // Most recently used first, so a burst leaves the fewest environments warm.
  while (!fs.idle.empty()) {
    EnvPtr env = std::move(fs.idle.back());
    fs.idle.pop_back();
    fs.ttl.erase(env.get());
    if (env->state() == EnvironmentState::kReady && env->reusable() && Current(fs, *env)) {
      return env;
    }
    env->Dispose();
  }
  return nullptr;
}

void Scheduler::ResolveImage(const std::string& image,
                             std::function<void(Status, const docker::ImageConfig&)> done) {
  // Without the engine's event stream a rebuilt tag would go unseen: ask every time.
  if (!image_cache_trusted_ || !image_cache_trusted_()) docker_->ForgetImage(image);
  docker_->InspectImage(image, std::move(done));
}

void Scheduler::StartCold(Handle handle) {
  Entry& e = *entries_.at(handle);
  e.stage = Entry::Stage::kStarting;
  double t0 = MonotonicMs();
  std::string image = functions_.at(e.function)->spec->image;
  ResolveImage(image, [this, handle, t0](Status status, const docker::ImageConfig& config) {
    auto it = entries_.find(handle);
    if (it == entries_.end()) return;  // cancelled meanwhile (its capacity was released)
    Entry& e = *it->second;
    FunctionState& fs = *functions_.at(e.function);
    e.inv.image_ms = MonotonicMs() - t0;
    if (!status.ok()) {
      --fs.running;
      --running_;
      OutcomeKind kind = status.code() == StatusCode::kNotFound ? OutcomeKind::kImageNotReady
                         : status.code() == StatusCode::kUnavailable
                             ? OutcomeKind::kEngineUnavailable
                             : OutcomeKind::kEngineFailed;
      Refuse(handle, kind, "",
             Status(status.code(), "function " + e.function + ": " + status.message()));
      PumpQueue(fs);
      return;
    }
    if (fs.image_id != config.id) {
      bool changed = !fs.image_id.empty();
      fs.image_id = config.id;
      if (changed) Drain(fs, "its image changed");
    }
    if (starts_in_flight_ < options_.max_starts_in_flight) {
      ProvisionCold(handle, config);
    } else {
      e.image = config;
      start_waiting_.push_back(handle);
    }
  });
}

Scheduler::EnvPtr Scheduler::NewEnvironment(FunctionState& fs, const docker::ImageConfig& image,
                                            StartKind kind, bool holds_start_slot) {
  Environment::Events ev;
  ev.on_started = [this](Environment* env) { OnStarted(env); };
  ev.on_ready = [this](Environment* env) { OnReady(env); };
  ev.on_outcome = [this](Environment* env, const InvokeOutcome& out) { OnEnvOutcome(env, out); };
  ev.on_lost = [this](Environment* env, const Status& why) { OnLost(env, why); };
  ev.on_gone = [this](Environment* env) { OnGone(env); };
  auto env = std::make_shared<Environment>(loop_, docker_, &options_.sandbox, fs.spec, image, kind,
                                           std::move(ev));
  environments_.emplace(env.get(), env);
  ++fs.live;
  if (holds_start_slot) {
    ++starts_in_flight_;
    holding_slot_.insert(env.get());
  }
  ++stats_.environments_created;
  return env;
}

void Scheduler::PrepareAhead(FunctionState& fs, const docker::ImageConfig& image) {
  if (!options_.precreate || shutting_down_ || !fs.listed || fs.ahead ||
      fs.spec->policy.kind != registry::PolicyKind::kCold) {
    return;
  }
  // No start slot: a create alone; the slots guard the engine's starts.
  fs.ahead = NewEnvironment(fs, image, StartKind::kCold, false);
  fs.ahead->Prepare();
}

void Scheduler::ProvisionCold(Handle handle, const docker::ImageConfig& image) {
  Entry& e = *entries_.at(handle);
  FunctionState& fs = *functions_.at(e.function);
  e.stage = Entry::Stage::kRunning;
  EnvPtr env;
  if (fs.ahead && fs.ahead->prepared() && fs.ahead->reusable() && Current(fs, *fs.ahead) &&
      fs.ahead->image_id() == image.id) {
    // The container created ahead: its start now takes a slot.
    env = std::move(fs.ahead);
    fs.ahead.reset();
    ++starts_in_flight_;
    holding_slot_.insert(env.get());
  } else {
    env = NewEnvironment(fs, image, StartKind::kCold);
  }
  ++stats_.cold_starts;
  env_invocation_[env.get()] = handle;
  sandbox::Invocation inv = std::move(e.inv);
  inv.done = [this, handle](InvokeOutcome out) { Complete(handle, std::move(out)); };
  env->Provision(std::move(inv));
  // The next one is created once this start is on its way (see OnStarted).
  if (options_.precreate && !fs.ahead) fs.ahead_image = image;
}

// ---- 3. Start slots: waiting invocations first, then pool refills ----

void Scheduler::ScheduleStarts() {
  if (!starts_timer_.active()) starts_timer_.Start(0, [this] { RunStarts(); });
}

void Scheduler::RunStarts() {
  while (starts_in_flight_ < options_.max_starts_in_flight && !start_waiting_.empty()) {
    Handle handle = start_waiting_.front();
    start_waiting_.pop_front();
    auto it = entries_.find(handle);
    if (it == entries_.end() || it->second->stage != Entry::Stage::kStarting) continue;
    ProvisionCold(handle, it->second->image);
  }
  for (auto& [name, fs] : functions_) {
    if (starts_in_flight_ >= options_.max_starts_in_flight) break;
    if (fs->refill_wanted) RefillPool(*fs);
  }
}

void Scheduler::RefillPool(FunctionState& fs) {
  const registry::FunctionSpec& spec = *fs.spec;
  if (shutting_down_ || !fs.listed || spec.policy.kind != registry::PolicyKind::kPool) return;
  if (fs.refill_backoff->active()) return;
  while (static_cast<int>(fs.idle.size() + fs.pool_pending.size()) + fs.pool_resolving <
         spec.policy.pool_size) {
    if (starts_in_flight_ >= options_.max_starts_in_flight || !start_waiting_.empty()) {
      fs.refill_wanted = true;  // RunStarts comes back when a slot frees
      return;
    }
    fs.refill_wanted = false;
    // Hold the slot while the image is resolved, so refills cannot overshoot.
    ++starts_in_flight_;
    ++fs.pool_resolving;
    ResolveImage(
        spec.image, [this, name = spec.name](Status status, const docker::ImageConfig& image) {
          --starts_in_flight_;
          auto it = functions_.find(name);
          if (it == functions_.end()) return;
          FunctionState& fs = *it->second;
          --fs.pool_resolving;
          if (!status.ok() || shutting_down_ || !fs.listed) {
            if (!status.ok()) {
              uint64_t delay = std::min(kRefillBackoffMaxMs,
                                        kRefillBackoffMs << std::min(fs.refill_failures, 10));
              ++fs.refill_failures;
              LOG_WARN("scheduler", "pool of %s: %s; retrying in %llu ms", name.c_str(),
                       status.message().c_str(), static_cast<unsigned long long>(delay));
              fs.refill_backoff->Start(delay, [this, name] {
                auto it = functions_.find(name);
                if (it != functions_.end()) RefillPool(*it->second);
              });
            }
            ScheduleStarts();
            return;
          }
          if (fs.image_id != image.id) {
            bool changed = !fs.image_id.empty();
            fs.image_id = image.id;
            if (changed) Drain(fs, "its image changed");
          }
          ProvisionPool(fs, image);
        });
  }
}

void Scheduler::ProvisionPool(FunctionState& fs, const docker::ImageConfig& image) {
  EnvPtr env = NewEnvironment(fs, image, StartKind::kPool);
  fs.pool_pending.insert(env.get());
  env->Provision(std::nullopt);
}

void Scheduler::KeepIdle(FunctionState& fs, const EnvPtr& env) {
  fs.idle.push_back(env);
  if (env->kind() == StartKind::kPool) return;  // pooled ones wait until used
  auto timer = std::make_unique<Timer>(loop_);
  Environment* raw = env.get();
  std::string name = fs.spec->name;
  timer->Start(static_cast<uint64_t>(fs.spec->policy.idle_ttl_s) * 1000, [this, raw, name] {
    auto it = functions_.find(name);
    if (it == functions_.end()) return;
    FunctionState& fs = *it->second;
    auto found = std::find_if(fs.idle.begin(), fs.idle.end(),
                              [raw](const EnvPtr& e) { return e.get() == raw; });
    if (found == fs.idle.end()) return;
    EnvPtr env = *found;
    LOG_DEBUG("scheduler", "%s: warm environment %s idle for %d s, removing", name.c_str(),
              env->id().c_str(), fs.spec->policy.idle_ttl_s);
    DropIdle(fs, raw);  // destroys this timer: touch nothing captured after it
    env->Dispose();
  });
  fs.ttl[raw] = std::move(timer);
}

void Scheduler::DropIdle(FunctionState& fs, Environment* env) {
  fs.idle.erase(std::remove_if(fs.idle.begin(), fs.idle.end(),
                               [env](const EnvPtr& e) { return e.get() == env; }),
                fs.idle.end());
  auto t = fs.ttl.find(env);
  if (t != fs.ttl.end()) {
    // A timer may be running this very callback: free it on a later turn.
    auto doomed = std::shared_ptr<Timer>(std::move(t->second));
    fs.ttl.erase(t);
    doomed->Stop();
    Defer([doomed] {});
  }
}

void Scheduler::Drain(FunctionState& fs, const std::string& why) {
  // An environment is stale when its function is gone or it does not run the current spec
  // and image; fresh ones (a pool refilled after the change) stay.
  auto stale = [&](const Environment& env) { return !fs.listed || !Current(fs, env); };
  std::vector<EnvPtr> idle;
  for (const EnvPtr& env : fs.idle) {
    if (stale(*env)) idle.push_back(env);
  }
  for (const EnvPtr& env : idle) DropIdle(fs, env.get());
  for (auto& env : idle) {
    ++stats_.environments_drained;
    env->Dispose();
  }
  if (fs.ahead && stale(*fs.ahead)) {
    fs.ahead->Dispose();
    fs.ahead.reset();
  }
  for (auto& [raw, env] : environments_) {
    if (env->spec().name != fs.spec->name || !stale(*env)) continue;
    if (env->state() == EnvironmentState::kBusy) env->MarkNotReusable(why);
    if (env->state() == EnvironmentState::kProvisioning && fs.pool_pending.count(raw) != 0) {
      ++stats_.environments_drained;
      env->Dispose();
    }
  }
  if (!idle.empty()) {
    LOG_INFO("scheduler", "%s: removed %zu idle environment(s): %s", fs.spec->name.c_str(),
             idle.size(), why.c_str());
  }
  RefillPool(fs);
}

// ---- What environments tell us ----

void Scheduler::OnStarted(Environment* env) {
  if (holding_slot_.erase(env) != 0) --starts_in_flight_;
  // A cold start is on its way: create the function's next container now, off its path.
  auto it = functions_.find(env->spec().name);
  if (it != functions_.end() && it->second->ahead_image) {
    docker::ImageConfig image = std::move(*it->second->ahead_image);
    it->second->ahead_image.reset();
    PrepareAhead(*it->second, image);
  }
  ScheduleStarts();
}

void Scheduler::OnReady(Environment* env) {
  auto it = functions_.find(env->spec().name);
  if (it == functions_.end()) return;
  FunctionState& fs = *it->second;
  fs.pool_pending.erase(env);
  fs.refill_failures = 0;
  auto shared = environments_.find(env);
  if (shared == environments_.end()) return;
  if (!Current(fs, *env) || shutting_down_ || !fs.listed) {
    env->Dispose();
    return;
  }
  KeepIdle(fs, shared->second);
  PumpQueue(fs);
}

void Scheduler::OnEnvOutcome(Environment* env, const InvokeOutcome& outcome) {
  auto it = env_invocation_.find(env);
  if (it == env_invocation_.end()) return;
  env_invocation_.erase(it);
  FunctionState& fs = *functions_.at(env->spec().name);
  --fs.running;
  --running_;
  Count(outcome);
  bool keep = !shutting_down_ && fs.listed && env->reusable() &&
              env->state() == EnvironmentState::kReady &&
              env->spec().policy.kind == registry::PolicyKind::kWarm && Current(fs, *env) &&
              (fs.spec->concurrency == 0 || fs.live <= fs.spec->concurrency);
  bool pooled = env->kind() == StartKind::kPool;
  bool later = false;
  if (keep) {
    KeepIdle(fs, environments_.at(env));
  } else if (pooled && !shutting_down_ && env->state() == EnvironmentState::kReady) {
    DisposeAfterReply(environments_.at(env));  // and refills the pool then
    later = true;
  } else {
    env->Dispose();
  }
  PumpQueue(fs);
  if (waiting_sync_ + waiting_async_ > 0) PumpAllQueues();
  if (pooled && !later) RefillPool(fs);
}

void Scheduler::DisposeAfterReply(EnvPtr env) {
  after_reply_.push_back(std::move(env));
  if (after_reply_timer_.active()) return;
  after_reply_timer_.Start(kAfterReplyMs, [this] {
    std::vector<EnvPtr> due;
    due.swap(after_reply_);
    std::set<std::string> pools;
    for (const EnvPtr& env : due) {
      pools.insert(env->spec().name);
      env->Dispose();
    }
    for (const std::string& name : pools) {
      auto it = functions_.find(name);
      if (it != functions_.end()) RefillPool(*it->second);
    }
  });
}

void Scheduler::OnLost(Environment* env, const Status& why) {
  ++stats_.environments_lost;
  auto it = functions_.find(env->spec().name);
  if (it == functions_.end()) return;
  FunctionState& fs = *it->second;
  DropIdle(fs, env);
  if (fs.pool_pending.erase(env) != 0) {
    uint64_t delay =
        std::min(kRefillBackoffMaxMs, kRefillBackoffMs << std::min(fs.refill_failures, 10));
    ++fs.refill_failures;
    LOG_WARN("scheduler", "pool of %s: an environment failed to start (%s); retrying in %llu ms",
             fs.spec->name.c_str(), why.message().c_str(), static_cast<unsigned long long>(delay));
    std::string name = fs.spec->name;
    fs.refill_backoff->Start(delay, [this, name] {
      auto it = functions_.find(name);
      if (it != functions_.end()) RefillPool(*it->second);
    });
  }
}

void Scheduler::OnGone(Environment* env) {
  ++stats_.environments_removed;
  auto it = environments_.find(env);
  if (it == environments_.end()) return;
  EnvPtr shared = std::move(it->second);
  environments_.erase(it);
  env_invocation_.erase(env);
  auto fit = functions_.find(env->spec().name);
  if (fit != functions_.end()) {
    FunctionState& fs = *fit->second;
    --fs.live;
    if (fs.ahead.get() == env) fs.ahead.reset();
    DropIdle(fs, env);
    fs.pool_pending.erase(env);
    if (env->kind() == StartKind::kPool) RefillPool(fs);
    PumpQueue(fs);
  }
  // Never free an object inside its own callback (docs/style.md rule 4).
  retired_.push_back(std::move(shared));
  Defer([this] { FreeRetired(); });
}

// ---- The end of an invocation ----

void Scheduler::Count(const InvokeOutcome& out) {
  switch (out.kind) {
    case OutcomeKind::kSuccess: {
      ++stats_.succeeded;
      const sandbox::PhaseTimes& p = out.phases;
      auto acc = [](double& sum, double v) {
        if (v > 0) sum += v;
      };
      acc(stats_.sum.queue, p.queue);
      acc(stats_.sum.image, p.image);
      acc(stats_.sum.create, p.create);
      acc(stats_.sum.start, p.start);
      acc(stats_.sum.init, p.init);
      acc(stats_.sum.handler, p.handler);
      acc(stats_.sum.total, p.total);
      break;
    }
    case OutcomeKind::kFunctionError:
      ++stats_.function_errors;
      if (out.error_type == "Sandbox.Timedout") ++stats_.timeouts;
      break;
    case OutcomeKind::kCancelled: ++stats_.cancelled; break;  // not ephemera failing
    default: ++stats_.service_errors; break;
  }
}

void Scheduler::Complete(Handle handle, InvokeOutcome outcome) {
  auto it = entries_.find(handle);
  if (it == entries_.end()) return;
  sandbox::InvokeDone done = std::move(it->second->done);
  entries_.erase(it);
  if (done) done(std::move(outcome));
  MaybeFinishShutdown();
}

void Scheduler::Refuse(Handle handle, OutcomeKind kind, std::string reason, Status status) {
  auto it = entries_.find(handle);
  if (it == entries_.end()) return;
  InvokeOutcome out;
  out.kind = kind;
  out.throttle_reason = std::move(reason);
  out.body = status.message();
  out.status = std::move(status);
  out.phases.total = MonotonicMs() - it->second->inv.accepted_ms;
  if (kind != OutcomeKind::kThrottled) Count(out);
  // The entry goes now, so no callback still on its way (an image inspection, a start
  // slot) can find it; its caller hears on a later loop turn (never inside the call).
  sandbox::InvokeDone done = std::move(it->second->done);
  entries_.erase(it);
  Defer([this, done = std::move(done), out = std::move(out)]() mutable {
    if (done) done(std::move(out));
    MaybeFinishShutdown();
  });
}

void Scheduler::Defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (defer_timer_.active()) return;
  defer_timer_.Start(0, [this] {
    auto pending = std::move(deferred_);
    deferred_.clear();
    for (auto& fn : pending) fn();
  });
}

void Scheduler::FreeRetired() {
  retired_.clear();
  MaybeFinishShutdown();
}

void Scheduler::Cancel(Handle handle) {
  auto it = entries_.find(handle);
  if (it == entries_.end()) return;
  Entry& e = *it->second;
  FunctionState& fs = *functions_.at(e.function);
  switch (e.stage) {
    case Entry::Stage::kQueued:
      fs.queue.erase(std::find(fs.queue.begin(), fs.queue.end(), handle));
      LeftQueue(fs, e);
      Refuse(handle, OutcomeKind::kCancelled, "", Cancelled("the caller went away"));
      return;
    case Entry::Stage::kStarting:
      // Admitted, waiting for its image or a start slot: give the capacity back. The
      // entry goes, so the image callback and RunStarts find nothing.
      --fs.running;
      --running_;
      Refuse(handle, OutcomeKind::kCancelled, "", Cancelled("the caller went away"));
      PumpQueue(fs);
      return;
    case Entry::Stage::kRunning:
      for (auto& [env, h] : env_invocation_) {
        if (h == handle) {
          env->Dispose(OutcomeKind::kCancelled, Cancelled("the caller went away"));
          return;
        }
      }
      return;
  }
}

void Scheduler::Validate(const registry::FunctionSpec& spec, std::function<void(Status)> done) {
  // DryRun and CreateFunction ask the engine afresh: a removed image must fail now.
  docker_->ForgetImage(spec.image);
  docker_->InspectImage(
      spec.image, [done = std::move(done), name = spec.name](Status s, const docker::ImageConfig&) {
        if (!s.ok() && s.code() == StatusCode::kNotFound) {
          done(Status(s.code(), "function " + name + ": " + s.message()));
          return;
        }
        done(s);
      });
}

void Scheduler::SyncFunctions(
    const std::vector<std::shared_ptr<const registry::FunctionSpec>>& specs) {
  if (functions_listener_) functions_listener_(specs);
  for (auto& [name, fs] : functions_) fs->listed = false;
  bool isolated = false;
  for (const auto& spec : specs) {
    FunctionState& fs = StateOf(spec);
    fs.listed = true;
    isolated = isolated || sandbox::IsIsolated(*spec);
  }
  // Namespace holders are made ahead only when some function will need one.
  if (isolated && options_.sandbox.holders != nullptr) options_.sandbox.holders->Fill();
  for (auto& [name, fs] : functions_) {
    if (!fs->listed) {
      Drain(*fs, "its function was deleted");
    } else if (fs->spec->policy.kind == registry::PolicyKind::kPool) {
      RefillPool(*fs);
    }
  }
}

void Scheduler::OnImageChanged(const std::string& image) {
  for (auto& [name, fs] : functions_) {
    if (!image.empty() && fs->spec->image != image && fs->image_id != image) continue;
    docker_->ForgetImage(fs->spec->image);
    docker_->InspectImage(fs->spec->image,
                          [this, name = name](Status s, const docker::ImageConfig& config) {
                            auto it = functions_.find(name);
                            if (it == functions_.end()) return;
                            FunctionState& fs = *it->second;
                            std::string now = s.ok() ? config.id : "";
                            if (now == fs.image_id) return;
                            fs.image_id = now;
                            Drain(fs, s.ok() ? "its image was rebuilt" : "its image was removed");
                          });
  }
}

// A container is a leftover when the process named by its ephemera.daemon label is gone
// (or is no longer an ephemera process: pids are reused). Containers of another daemon
// that is still running, a demo beside a test run say, are left alone.
namespace {
bool OwnerIsGone(const std::map<std::string, std::string>& labels) {
  auto it = labels.find("ephemera.daemon");
  if (it == labels.end()) return true;
  char* end = nullptr;
  long pid = std::strtol(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || pid <= 0) return true;
  if (pid == getpid())
    return true;  // ours from before a restart cannot exist; ours now are not listed yet
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  if (!std::getline(comm, name)) return true;
  return name.rfind("ephemera", 0) != 0;
}
}  // namespace

void Scheduler::ReapLeftovers(std::function<void(Status, size_t)> done) {
  docker_->ListContainerSummaries(
      "ephemera.managed",
      [this, done = std::move(done)](Status s, std::vector<docker::ContainerSummary> rows) mutable {
        std::vector<std::string> ids;
        for (const auto& row : rows) {
          if (OwnerIsGone(row.labels)) ids.push_back(row.id);
        }
        if (!s.ok() || ids.empty()) {
          done(s, 0);
          return;
        }
        auto remaining = std::make_shared<size_t>(ids.size());
        auto shared_done = std::make_shared<std::function<void(Status, size_t)>>(std::move(done));
        size_t count = ids.size();
        for (const auto& id : ids) {
          docker_->RemoveContainer(id, [remaining, shared_done, count, id](Status rs) {
            if (!rs.ok()) {
              LOG_WARN("scheduler", "could not remove leftover container %s: %s", id.c_str(),
                       rs.message().c_str());
            }
            if (--*remaining == 0) (*shared_done)(Status::Ok(), count);
          });
        }
      });
}

void Scheduler::ReapOrphans() {
  if (shutting_down_) return;
  docker_->ListContainerSummaries(
      "ephemera.daemon=" + options_.sandbox.instance_label,
      [this](Status s, std::vector<docker::ContainerSummary> rows) {
        if (!s.ok()) return;  // the next reconnect tries again
        std::unordered_set<std::string> live;
        for (const auto& [raw, env] : environments_) live.insert(env->id());
        // Holders are the holder pool's to judge (it knows which it lent out).
        if (options_.sandbox.holders != nullptr) options_.sandbox.holders->Prune(rows);
        for (const auto& row : rows) {
          if (row.labels.count("ephemera.holder") != 0) continue;
          auto it = row.labels.find("ephemera.environment");
          if (it != row.labels.end() && live.count(it->second) != 0) continue;
          LOG_INFO("scheduler", "removing container %s: no environment of ours owns it",
                   row.id.c_str());
          docker_->RemoveContainer(row.id, [id = row.id](Status rs) {
            if (!rs.ok()) {
              LOG_WARN("scheduler", "could not remove container %s: %s", id.c_str(),
                       rs.message().c_str());
            }
          });
        }
      });
}

void Scheduler::Shutdown(std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  std::vector<Handle> handles;
  for (auto& [h, e] : entries_) {
    if (e->stage != Entry::Stage::kRunning) handles.push_back(h);
  }
  for (Handle h : handles) Cancel(h);
  after_reply_timer_.Stop();
  after_reply_.clear();  // still in environments_: disposed below
  std::vector<EnvPtr> all;
  for (auto& [raw, env] : environments_) all.push_back(env);
  for (auto& env : all) env->Dispose(OutcomeKind::kCancelled, Cancelled("ephemera is stopping"));
  MaybeFinishShutdown();
}

void Scheduler::MaybeFinishShutdown() {
  if (!shutdown_done_ || !entries_.empty() || !environments_.empty() || !retired_.empty()) return;
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  starts_timer_.Close();
  after_reply_timer_.Close();
  for (auto& [name, fs] : functions_) {
    fs->refill_backoff->Close();
    fs->refill_soon->Close();
  }
  // The deferred queue may still hold timer releases: run them, then close.
  Defer([this, done = std::move(done)] {
    defer_timer_.Close();
    done();
  });
}

}  // namespace ephemera::scheduler
