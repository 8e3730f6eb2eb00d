// runtime/invoke/invoker.h: runs invocations in fresh containers and admits them.
//
// The Invoker owns every invocation in flight. Invoke() checks admission (the
// function's concurrency limit and the daemon-wide one), then starts a
// ColdInvocation: a new container per invocation, destroyed after it (DESIGN.md
// "The cold path"). The outcome is reported as soon as it is known; disposal of
// the container happens afterwards, off the critical path.
//
// Thread: the loop thread only; nothing blocks.
// Callbacks: `done` runs exactly once, never from inside Invoke(). Cancel() (the
// caller went away) still runs `done` (with a Cancelled service error) and
// disposes of the container. Shutdown() cancels everything in flight and calls
// back once every container has been removed; destroying the Invoker without
// Shutdown() drops callbacks and may leave containers (they are reaped by label
// at the next start).
// Depends on: core, docker, runtime_api, registry.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/core/uv_handle.h"
#include "runtime/docker/docker_client.h"
#include "runtime/invoke/invocation.h"

namespace ephemera::invoke {

class ColdInvocation;

struct InvokerOptions {
  std::string shim_path;  // absolute host path of the static shim, bind-mounted read-only
  std::string runtime_api_host = "127.0.0.1";
  std::string region = "us-east-1";
  uint64_t init_timeout_ms = 10000;  // start -> first /next
  int max_concurrency = 64;          // daemon-wide; above it 429
  std::string instance_label;        // value of ephemera.daemon on our containers
};

// Counters for /metrics.
struct InvokerStats {
  uint64_t started = 0;
  uint64_t succeeded = 0;
  uint64_t function_errors = 0;
  uint64_t service_errors = 0;
  uint64_t timeouts = 0;
  uint64_t throttled = 0;
  uint64_t containers_created = 0;
  uint64_t containers_removed = 0;
  uint64_t dispose_failures = 0;
  PhaseTimes sum;  // sums over successful invocations (for averages)
};

class Invoker {
 public:
  using Done = std::function<void(InvokeOutcome)>;
  using Handle = uint64_t;  // identifies an invocation for Cancel()

  Invoker(uv_loop_t* loop, docker::DockerClient* docker, InvokerOptions options);
  ~Invoker();
  Invoker(const Invoker&) = delete;
  Invoker& operator=(const Invoker&) = delete;

  // Starts an invocation. Returns its handle (0 if it was refused at admission;
  // `done` still runs, later, with the 429).
  Handle Invoke(InvokeRequest request, Done done);
  // The caller no longer wants the answer: stop and dispose. Unknown handles are ignored.
  void Cancel(Handle handle);
  // Checks that an invocation could run (DryRun): the image exists.
  void Validate(const registry::FunctionSpec& spec, std::function<void(Status)> done);

  // Removes containers labelled ephemera.managed whose daemon (label ephemera.daemon,
  // a pid) is no longer running: leftovers of a crashed or killed daemon.
  void ReapLeftovers(std::function<void(Status, size_t removed)> done);
  void Shutdown(std::function<void()> done);

  // Invocations whose outcome is not known yet (disposal not counted).
  size_t in_flight() const { return live_.size() - disposing_; }
  size_t disposing() const { return disposing_; }
  const InvokerStats& stats() const { return stats_; }
  const InvokerOptions& options() const { return options_; }
  docker::DockerClient* docker() const { return docker_; }
  uv_loop_t* loop() const { return loop_; }

 private:
  friend class ColdInvocation;
  // Called by an invocation when its outcome is known and when it is fully gone.
  void OnOutcome(ColdInvocation* inv, const InvokeOutcome& outcome);
  void OnDisposed(ColdInvocation* inv, bool removed_ok);
  void RetireLater(ColdInvocation* inv);
  void FreeRetired();
  void MaybeFinishShutdown();

  uv_loop_t* loop_;
  docker::DockerClient* docker_;
  InvokerOptions options_;
  std::unordered_map<Handle, std::shared_ptr<ColdInvocation>> live_;
  std::unordered_map<std::string, int> per_function_;
  std::vector<std::shared_ptr<ColdInvocation>> retired_;
  UvHandle<uv_idle_t> reaper_;
  Timer refuse_timer_;
  std::vector<std::function<void()>> refused_;
  Handle next_handle_ = 1;
  size_t disposing_ = 0;
  InvokerStats stats_;
  std::function<void()> shutdown_done_;
};

}  // namespace ephemera::invoke
