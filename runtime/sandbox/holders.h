// runtime/sandbox/holders.h: network namespaces prepared ahead, for isolated environments.
//
// An isolated environment runs in a network namespace of its own with only a loopback
// interface, so nothing in it can reach the host's ports or see another environment's
// sockets or traffic. Creating a namespace is what makes `NetworkMode: none` start slowly
// (about 249 ms against 128 ms on the host network here, docs/decisions.md decision 1);
// joining one created earlier (`NetworkMode: container:<holder>`) starts in about 113 ms.
// So the namespaces belong to holders: idle containers (NetworkMode none, the shim's
// `--hold`, which only sleeps) started ahead, off the critical path, and reused: when an
// environment is gone its holder goes back to the pool for the next one (the namespace is
// empty again: every process and socket of the old environment went with its container,
// and with no capabilities nothing in it could have changed its interfaces or routes).
//
// The pool keeps `spare` holders ready. Acquire hands one out (from the pool at once, or
// once a new one has started); Release takes it back. A burst lends out more than `spare`
// (a holder is lent from its environment's create until its removal is answered), and
// the holders made for it mid-burst cost the burst's starts engine time. So once the pool
// has been used, it also makes holders ahead while the daemon is idle (no Acquire for
// `idle_ms` and `engine_idle` says nothing else is being started or run), one at a time,
// until it has `ahead` in all; a daemon whose isolated functions are never called keeps
// `spare` only. Holders are labelled like every container of ours (ephemera.managed,
// ephemera.daemon) plus ephemera.holder=1, and are hardened like environments.
//
// Thread: the loop thread. Callbacks: Acquire's `done` runs exactly once, never inside
// the call; Shutdown's once every holder is removed. Destroying the pool drops pending
// callbacks (holders left behind are reaped by label at the next start).
// Depends on: core, docker.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/uv_handle.h"
#include "runtime/docker/docker_client.h"

namespace ephemera::sandbox {

struct HolderOptions {
  std::string image = "ephemera/holder:latest";  // anything works: the shim is all it runs
  std::string shim_path;                         // bind-mounted, run as `--hold`
  std::string instance_label;                    // ephemera.daemon
  int spare = 2;  // holders kept ready (`ephemera serve`: one per start that may be in flight)
  int ahead = 0;  // holders in all made ahead while idle, once used (0: none); at most 4 × spare
  uint64_t idle_ms = 100;  // how long without an Acquire counts as idle, and how often to look
  // True when the daemon starts, runs and removes nothing (unset: always idle).
  std::function<bool()> engine_idle;
};

class HolderPool {
 public:
  HolderPool(uv_loop_t* loop, docker::DockerClient* docker, HolderOptions options);
  ~HolderPool();
  HolderPool(const HolderPool&) = delete;
  HolderPool& operator=(const HolderPool&) = delete;

  // A running holder's container id.
  void Acquire(std::function<void(Status, std::string holder_id)> done);
  // Gives a holder back. `healthy` = false (its environment failed to join it, say)
  // removes it instead.
  void Release(const std::string& holder_id, bool healthy = true);
  // Starts filling the pool to `spare` (at daemon start, once the engine answers).
  void Fill();
  // After the engine was unreachable: `rows` are this daemon's containers as the engine
  // lists them now. Holders it no longer runs are forgotten (after an engine restart, all
  // of them), holders of ours the pool does not know are removed, and a pool in use fills
  // again. Holders still running and lent out stay lent out.
  void Prune(const std::vector<docker::ContainerSummary>& rows);
  void Shutdown(std::function<void()> done);

  bool IsHolder(const std::string& id) const { return all_.count(id) != 0; }
  size_t ready() const { return ready_.size(); }
  size_t total() const { return all_.size(); }
  size_t starting() const { return static_cast<size_t>(making_); }  // being created or started
  // How many more it will make ahead once the daemon is idle (0 until it is used).
  size_t ahead_left() const {
    if (!used_ || shutting_down_ || static_cast<int>(all_.size()) >= options_.ahead) return 0;
    return static_cast<size_t>(options_.ahead) - all_.size();
  }
  uint64_t created() const { return created_; }
  double mean_start_ms() const { return created_ ? start_ms_sum_ / created_ : 0; }

 private:
  void Make();
  void Serve();
  void ArmAhead();   // schedules MakeAhead if the pool is short of `ahead`
  void MakeAhead();  // one holder more, if the pool is idle
  void Remove(const std::string& id);
  void MaybeFinishShutdown();

  uv_loop_t* loop_;
  docker::DockerClient* docker_;
  HolderOptions options_;
  std::vector<std::string> ready_;
  std::unordered_set<std::string> all_;       // ready, lent out, or being made
  std::unordered_set<std::string> starting_;  // created, start call in flight
  std::deque<std::function<void(Status, std::string)>> waiting_;
  int making_ = 0;
  int removing_ = 0;
  uint64_t created_ = 0;
  double start_ms_sum_ = 0;
  Timer serve_timer_;
  Timer retry_timer_;
  Timer ahead_timer_;
  bool used_ = false;           // some Acquire came
  double last_acquire_ms_ = 0;  // MonotonicMs of the latest
  int failures_ = 0;
  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ephemera::sandbox
