#include "runtime/sandbox/holders.h"

#include <algorithm>

#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/core/log.h"
#include "runtime/sandbox/container_spec.h"

namespace ephemera::sandbox {

HolderPool::HolderPool(uv_loop_t* loop, docker::DockerClient* docker, HolderOptions options)
    : loop_(loop),
      docker_(docker),
      options_(std::move(options)),
      serve_timer_(loop),
      retry_timer_(loop),
      ahead_timer_(loop) {
  options_.ahead = std::min(options_.ahead, 4 * options_.spare);  // Release keeps no more
}

HolderPool::~HolderPool() {
  *alive_ = false;
}

void HolderPool::Acquire(std::function<void(Status, std::string)> done) {
  if (shutting_down_) {
    serve_timer_.Start(0,
                       [done = std::move(done)] { done(Cancelled("ephemera is stopping"), ""); });
    return;
  }
  waiting_.push_back(std::move(done));
  used_ = true;
  last_acquire_ms_ = MonotonicMs();
  // Served on a later loop turn: callbacks never run inside the call.
  if (!serve_timer_.active()) serve_timer_.Start(0, [this] { Serve(); });
  ArmAhead();
}

void HolderPool::ArmAhead() {
  if (ahead_left() == 0 || ahead_timer_.active()) return;
  double since = MonotonicMs() - last_acquire_ms_;
  uint64_t wait = since >= static_cast<double>(options_.idle_ms)
                      ? 0
                      : static_cast<uint64_t>(static_cast<double>(options_.idle_ms) - since) + 1;
  ahead_timer_.Start(wait, [this] { MakeAhead(); });
}

void HolderPool::MakeAhead() {
  if (shutting_down_ || retry_timer_.active()) return;  // a failed make re-arms nothing
  if (making_ > 0) return;  // a holder being made: its end arms this again
  if (MonotonicMs() - last_acquire_ms_ < static_cast<double>(options_.idle_ms)) {
    ArmAhead();  // an Acquire came meanwhile: wait for idle_ms past it
    return;
  }
  if (options_.engine_idle && !options_.engine_idle()) {
    ahead_timer_.Start(options_.idle_ms, [this] { MakeAhead(); });  // look again later
    return;
  }
  if (ahead_left() > 0) Make();
}

void HolderPool::Serve() {
  while (!waiting_.empty() && !ready_.empty()) {
    std::string id = std::move(ready_.back());
    ready_.pop_back();
    auto done = std::move(waiting_.front());
    waiting_.pop_front();
    done(Status::Ok(), std::move(id));
  }
  Fill();
}

void HolderPool::Fill() {
  if (shutting_down_ || retry_timer_.active()) return;
  // Enough for everyone waiting, plus the spares.
  while (static_cast<int>(ready_.size()) + making_ <
         options_.spare + static_cast<int>(waiting_.size())) {
    Make();
  }
}

void HolderPool::Make() {
  ++making_;
  docker::ContainerSpec spec;
  spec.image = options_.image;
  spec.name = "ephemera-holder-" + NewRequestId().substr(0, 12);
  spec.labels = {{"ephemera.managed", "1"},
                 {"ephemera.holder", "1"},
                 {"ephemera.daemon", options_.instance_label}};
  spec.network_mode = "none";
  spec.entrypoint = {kShimMountPoint};
  spec.cmd = {"--hold"};
  spec.binds = {options_.shim_path + ":" + kShimMountPoint + ":ro"};
  spec.cap_drop = {"ALL"};
  spec.security_opt = {"no-new-privileges"};
  spec.readonly_rootfs = true;
  spec.pids_limit = 8;
  spec.memory_bytes = 16 << 20;
  spec.user = kDefaultUser;
  double t0 = MonotonicMs();
  std::weak_ptr<bool> alive = alive_;
  auto failed = [this, alive](const std::string& id, const Status& s) {
    if (alive.expired()) return;
    --making_;
    if (!id.empty()) Remove(id);
    if (shutting_down_) {
      MaybeFinishShutdown();
      return;
    }
    ++failures_;
    uint64_t delay = std::min<uint64_t>(5000, 100u << std::min(failures_, 6));
    LOG_WARN("sandbox", "could not start a network namespace holder: %s; retrying in %llu ms",
             s.message().c_str(), static_cast<unsigned long long>(delay));
    // Whoever waits for a holder hears why, rather than waiting forever.
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& done : waiting) done(s, "");
    retry_timer_.Start(delay, [this] { Fill(); });
  };
  docker_->CreateContainer(spec, [this, alive, t0, failed](Status s, std::string id) {
    if (alive.expired()) return;
    if (!s.ok()) {
      // The docker client's message already says how to build the project's images.
      std::string hint = s.code() == StatusCode::kNotFound
                             ? "; every isolated function needs it (network host does not)"
                             : "";
      failed("", Status(s.code(), "network namespace holder: " + s.message() + hint));
      return;
    }
    all_.insert(id);
    starting_.insert(id);
    docker_->StartContainer(id, [this, alive, t0, failed, id](Status s) {
      if (alive.expired()) return;
      starting_.erase(id);
      if (!s.ok()) {
        failed(id, Status(s.code(), "network namespace holder: " + s.message()));
        return;
      }
      --making_;
      failures_ = 0;
      ++created_;
      start_ms_sum_ += MonotonicMs() - t0;
      if (shutting_down_) {
        Remove(id);
        return;
      }
      ready_.push_back(id);
      Serve();
      ArmAhead();  // the next one made ahead, if the pool is still idle and short
    });
  });
}

void HolderPool::Release(const std::string& holder_id, bool healthy) {
  if (all_.count(holder_id) == 0) return;
  if (!healthy || shutting_down_ || static_cast<int>(ready_.size()) >= options_.spare * 4) {
    Remove(holder_id);
    return;
  }
  ready_.push_back(holder_id);
  if (!waiting_.empty() && !serve_timer_.active()) serve_timer_.Start(0, [this] { Serve(); });
}

void HolderPool::Remove(const std::string& id) {
  all_.erase(id);
  ready_.erase(std::remove(ready_.begin(), ready_.end(), id), ready_.end());
  ++removing_;
  std::weak_ptr<bool> alive = alive_;
  docker_->RemoveContainer(id, [this, alive, id](Status s) {
    if (alive.expired()) return;
    --removing_;
    if (!s.ok()) {
      LOG_WARN("sandbox", "could not remove holder %s: %s (tried again when the engine is back)",
               id.c_str(), s.message().c_str());
    }
    MaybeFinishShutdown();
  });
}

void HolderPool::Prune(const std::vector<docker::ContainerSummary>& rows) {
  // Only a pool in use fills again: a daemon with no isolated function keeps none.
  bool in_use = !all_.empty() || !waiting_.empty();
  std::unordered_set<std::string> running;
  for (const auto& row : rows) {
    if (row.labels.count("ephemera.holder") == 0) continue;
    if (all_.count(row.id) == 0) {
      // Ours, but unknown to the pool: its removal failed while the engine was away, or
      // its create or start raced a disconnect. (One whose create is still in flight may
      // be removed too: its start then fails and the pool makes another.)
      Remove(row.id);
    } else if (row.state == "running" || starting_.count(row.id) != 0) {
      running.insert(row.id);  // a holder whose start is in flight is not gone either
    }
  }
  std::vector<std::string> gone;
  for (const auto& id : all_) {
    if (running.count(id) == 0) gone.push_back(id);
  }
  for (const auto& id : gone) Remove(id);  // forget it, and remove what the engine kept
  if (!gone.empty()) {
    LOG_INFO("sandbox", "forgot %zu network namespace holder(s) the engine no longer runs",
             gone.size());
  }
  retry_timer_.Stop();
  failures_ = 0;
  if (in_use) Fill();
  ArmAhead();
}

void HolderPool::Shutdown(std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  retry_timer_.Stop();
  ahead_timer_.Stop();
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& w : waiting) w(Cancelled("ephemera is stopping"), "");
  std::vector<std::string> ids(all_.begin(), all_.end());
  for (const auto& id : ids) Remove(id);
  MaybeFinishShutdown();
}

void HolderPool::MaybeFinishShutdown() {
  if (!shutdown_done_ || removing_ > 0 || making_ > 0 || !all_.empty()) return;
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  serve_timer_.Close();
  retry_timer_.Close();
  ahead_timer_.Close();
  done();
}

}  // namespace ephemera::sandbox
