// runtime/scheduler/scheduler.h: where each invocation's environment comes from.
//
// The Scheduler owns every invocation and every execution environment
// (runtime/sandbox/environment.h). For each invocation, in order:
//   1. admission: the function's concurrency limit and the daemon-wide limit. Above
//      either, the invocation waits in the function's bounded FIFO queue (queue_size,
//      queue_timeout of the spec); a full queue or a wait past its deadline is a
//      kThrottled outcome (429 TooManyRequestsException with Lambda's Reason). Event
//      invocations (request.async) were accepted already: they wait as long as it takes
//      and are bounded where they are accepted (async_waiting()).
//   2. an environment, by the function's policy (docs/architecture.md "Policies"):
//        cold  a fresh container, removed after the invocation;
//        warm  an idle environment of the same function if one waits (its runtime parked
//              on /next), else a fresh one that is kept after the invocation for
//              idle_ttl seconds; at most `concurrency` environments (if set);
//        pool  one of the pool_size environments started ahead; each serves exactly one
//              invocation, is removed, and is replaced in the background. With none
//              ready, a cold start (the reply says cold).
//   3. container starts in flight (create -> start returned) are capped at
//      max_starts_in_flight, the engine's knee; invocations waiting for a start go
//      before pool refills.
// An environment is reused only while it is reusable (no failure, timeout, OOM or init
// error), its function's spec is the current one, and its image ID is the one the tag
// points to now: OnImageChanged (from the engine's event stream) drains the rest.
//
// Thread: the loop thread only; nothing blocks.
// Callbacks: `done` runs exactly once per Invoke, never from inside Invoke(). Cancel()
// still runs it (kCancelled). Shutdown() cancels everything, removes every container
// (warm and pooled ones included) and calls back once all are gone; destroying the
// Scheduler without Shutdown() drops callbacks and may leave containers (reaped by label
// at the next start).
// Depends on: core, docker, sandbox, registry.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/core/uv_handle.h"
#include "runtime/docker/docker_client.h"
#include "runtime/sandbox/environment.h"
#include "runtime/sandbox/invocation.h"

namespace ephemera::scheduler {

struct SchedulerOptions {
  sandbox::SandboxOptions sandbox;
  int max_concurrency = 64;  // daemon-wide invocations running at once; 0 = unlimited
  // Container starts in flight at once. Measured on this project's 2-core machines: the
  // engine's starts per second stop rising at 3 or 4 (docs/decisions.md decision 13), so
  // more only queue inside the engine.
  int max_starts_in_flight = 4;  // the engine's knee here (docs/decisions.md decision 13)
  // Event invocations waiting for capacity, daemon-wide, before new ones are refused
  // (refused before their 202, never dropped after it).
  size_t max_async_waiting = 10000;
  // Cold functions: create each function's next container ahead, after a cold start, so
  // the next cold start skips the create (created, never started: no process runs while
  // idle, but one created container per function that was used exists).
  bool precreate = false;
};

// Counters for /metrics.
struct SchedulerStats {
  uint64_t started = 0;  // invocations admitted
  uint64_t succeeded = 0;
  uint64_t function_errors = 0;
  uint64_t service_errors = 0;
  uint64_t timeouts = 0;
  uint64_t cancelled = 0;  // stopped: the caller went away, or the daemon is stopping
  uint64_t throttled = 0;
  uint64_t queued = 0;          // invocations that waited in an admission queue
  uint64_t queue_timeouts = 0;  // ... and were refused when their wait ran out
  uint64_t cold_starts = 0, warm_starts = 0, pool_starts = 0;
  uint64_t environments_created = 0;  // containers created
  uint64_t environments_removed = 0;
  uint64_t environments_lost = 0;                // failed while idle or provisioning
  uint64_t environments_drained = 0;             // removed because their image or spec changed
  sandbox::PhaseTimes sum{0, 0, 0, 0, 0, 0, 0};  // sums over successful invocations
};

class Scheduler {
 public:
  using Handle = uint64_t;  // identifies an invocation for Cancel(); never 0

  Scheduler(uv_loop_t* loop, docker::DockerClient* docker, SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  Handle Invoke(sandbox::InvokeRequest request, sandbox::InvokeDone done);
  // The caller no longer wants the answer. Unknown handles are ignored.
  void Cancel(Handle handle);
  // Checks that an invocation could run (DryRun): the image exists now (asked afresh).
  void Validate(const registry::FunctionSpec& spec, std::function<void(Status)> done);

  // The functions that exist now (at start-up and after every CreateFunction /
  // DeleteFunction): pools are filled; environments of functions that are gone or whose
  // spec changed are drained.
  void SyncFunctions(const std::vector<std::shared_ptr<const registry::FunctionSpec>>& specs);
  // The engine says `image` (a name or an ID; "" = anything) may point elsewhere now.
  void OnImageChanged(const std::string& image);
  // Told the same list at the start of every SyncFunctions (the data store keeps its
  // per-function Redis users in step with it, runtime/store/store_users.h).
  void set_functions_listener(
      std::function<void(const std::vector<std::shared_ptr<const registry::FunctionSpec>>&)>
          listener) {
    functions_listener_ = std::move(listener);
  }
  // Where Invoke calls made from inside environments go (see SandboxOptions).
  void set_invoke_handler(decltype(sandbox::SandboxOptions::invoke_handler) handler) {
    options_.sandbox.invoke_handler = std::move(handler);
  }
  // Whether the image cache can be trusted (the engine's event stream is up). When it
  // cannot, every cold start inspects its image afresh.
  void set_image_cache_trusted(std::function<bool()> trusted) {
    image_cache_trusted_ = std::move(trusted);
  }

  // The engine answers again after it was unreachable (its event stream reconnected):
  // removes containers of this daemon that no live environment owns (their removal failed
  // while the engine was down, or the engine restarted and left them exited), and lets
  // the holder pool forget holders that are no longer running (HolderPool::Prune).
  void ReapOrphans();

  // Removes containers labelled ephemera.managed whose daemon (label ephemera.daemon, a
  // pid) is no longer running: leftovers of a crashed or killed daemon.
  void ReapLeftovers(std::function<void(Status, size_t removed)> done);
  void Shutdown(std::function<void()> done);

  // Invocations admitted whose outcome is not known yet.
  size_t in_flight() const { return running_; }
  // Invocations waiting in admission queues (sync + async).
  size_t waiting() const { return waiting_sync_ + waiting_async_; }
  size_t async_waiting() const { return waiting_async_; }
  // Live environments (any state but gone), and how many of them are idle.
  size_t environments() const { return environments_.size(); }
  size_t idle_environments() const;
  // Environments being removed (their containers are still there).
  size_t disposing() const;
  size_t starts_in_flight() const { return static_cast<size_t>(starts_in_flight_); }
  // Network-namespace holders being made (for a burst, or ahead while idle).
  size_t holders_starting() const {
    return options_.sandbox.holders ? options_.sandbox.holders->starting() : 0;
  }
  size_t holders_ahead_left() const {
    return options_.sandbox.holders ? options_.sandbox.holders->ahead_left() : 0;
  }
  const SchedulerStats& stats() const { return stats_; }
  const SchedulerOptions& options() const { return options_; }
  docker::DockerClient* docker() const { return docker_; }

 private:
  struct Entry;
  struct FunctionState;
  using EnvPtr = std::shared_ptr<sandbox::Environment>;

  FunctionState& StateOf(const std::shared_ptr<const registry::FunctionSpec>& spec);
  bool CanAdmit(const FunctionState& fs) const;
  void Enqueue(Handle handle, FunctionState& fs);
  void Admit(Handle handle);
  void PumpQueue(FunctionState& fs);
  void LeftQueue(FunctionState& fs, Entry& e);
  void PumpAllQueues();
  EnvPtr TakeIdle(FunctionState& fs);
  void ResolveImage(const std::string& image,
                    std::function<void(Status, const docker::ImageConfig&)> done);
  void StartCold(Handle handle);
  void ProvisionCold(Handle handle, const docker::ImageConfig& image);
  void ScheduleStarts();
  void RunStarts();
  void RefillPool(FunctionState& fs);
  void ProvisionPool(FunctionState& fs, const docker::ImageConfig& image);
  EnvPtr NewEnvironment(FunctionState& fs, const docker::ImageConfig& image,
                        sandbox::StartKind kind, bool holds_start_slot = true);
  void PrepareAhead(FunctionState& fs, const docker::ImageConfig& image);
  void KeepIdle(FunctionState& fs, const EnvPtr& env);
  void DropIdle(FunctionState& fs, sandbox::Environment* env);
  void Drain(FunctionState& fs, const std::string& why);
  bool Current(const FunctionState& fs, const sandbox::Environment& env) const;
  // Environment events.
  void OnStarted(sandbox::Environment* env);
  void OnReady(sandbox::Environment* env);
  void OnEnvOutcome(sandbox::Environment* env, const sandbox::InvokeOutcome& outcome);
  void OnLost(sandbox::Environment* env, const Status& why);
  void OnGone(sandbox::Environment* env);
  // The end of an invocation.
  void Complete(Handle handle, sandbox::InvokeOutcome outcome);
  void Refuse(Handle handle, sandbox::OutcomeKind kind, std::string reason, Status status);
  void Count(const sandbox::InvokeOutcome& outcome);
  void Defer(std::function<void()> fn);
  void FreeRetired();
  void MaybeFinishShutdown();
  void DisposeAfterReply(EnvPtr env);

  uv_loop_t* loop_;
  docker::DockerClient* docker_;
  SchedulerOptions options_;
  std::unordered_map<Handle, std::unique_ptr<Entry>> entries_;
  std::map<std::string, std::unique_ptr<FunctionState>> functions_;
  std::unordered_map<sandbox::Environment*, EnvPtr> environments_;
  std::unordered_map<sandbox::Environment*, Handle> env_invocation_;  // busy env -> handle
  std::deque<Handle> start_waiting_;  // admitted, waiting for a start slot
  int starts_in_flight_ = 0;
  std::unordered_set<sandbox::Environment*> holding_slot_;  // environments counted above
  size_t running_ = 0;
  size_t waiting_sync_ = 0, waiting_async_ = 0;
  Handle next_handle_ = 1;
  SchedulerStats stats_;
  std::function<bool()> image_cache_trusted_;
  std::function<void(const std::vector<std::shared_ptr<const registry::FunctionSpec>>&)>
      functions_listener_;
  Timer starts_timer_;  // runs RunStarts on a later loop turn
  Timer defer_timer_;
  std::vector<std::function<void()>> deferred_;
  // Used pool environments, disposed (and their pools refilled) kAfterReplyMs after their
  // outcome (DisposeAfterReply).
  std::vector<EnvPtr> after_reply_;
  Timer after_reply_timer_;
  std::vector<EnvPtr> retired_;  // gone environments, freed on a later loop turn
  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
};

}  // namespace ephemera::scheduler
