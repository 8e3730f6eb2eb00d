#include "runtime/invoke/invoker.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "runtime/core/log.h"
#include "runtime/invoke/cold_invocation.h"

namespace ephemera::invoke {
namespace {
bool OwnerIsGone(const std::map<std::string, std::string>& labels);
}  // namespace

double PhaseTimes::overhead() const {
  double known = 0;
  for (double p : {image, create, start, init, handler}) {
    if (p > 0) known += p;
  }
  return total > known ? total - known : 0;
}

std::string PhaseTimes::ServerTiming() const {
  std::string out;
  char buf[48];
  auto add = [&](const char* name, double ms) {
    if (ms < 0) return;
    std::snprintf(buf, sizeof buf, "%s%s;dur=%.1f", out.empty() ? "" : ", ", name, ms);
    out += buf;
  };
  add("image", image);
  add("create", create);
  add("start", start);
  add("init", init);
  add("handler", handler);
  add("overhead", total >= 0 ? overhead() : -1);
  add("total", total);
  return out;
}

Invoker::Invoker(uv_loop_t* loop, docker::DockerClient* docker, InvokerOptions options)
    : loop_(loop), docker_(docker), options_(std::move(options)), refuse_timer_(loop) {
  if (reaper_.Init(loop_, uv_idle_init) == 0) reaper_.get()->data = this;
}

Invoker::~Invoker() {
  // Invocations hold raw pointers to us: drop them before our members go.
  live_.clear();
  retired_.clear();
}

Invoker::Handle Invoker::Invoke(InvokeRequest request, Done done) {
  const registry::FunctionSpec& fn = *request.function;
  int& running = per_function_[fn.name];
  const char* reason = nullptr;
  if (fn.concurrency > 0 && running >= fn.concurrency) {
    reason = "ReservedFunctionConcurrentInvocationLimitExceeded";
  } else if (options_.max_concurrency > 0 &&
             live_.size() >= static_cast<size_t>(options_.max_concurrency)) {
    reason = "ConcurrentInvocationLimitExceeded";
  }
  if (reason != nullptr) {
    ++stats_.throttled;
    InvokeOutcome out;
    out.kind = InvokeOutcome::Kind::kServiceError;
    out.http_status = 429;
    out.error_code = "TooManyRequestsException";
    out.body = reason;  // the Reason field
    out.status =
        Status(StatusCode::kConflict,
               fn.concurrency > 0 && running >= fn.concurrency
                   ? "Rate Exceeded. Function " + fn.name +
                         " has reached its concurrency limit of " + std::to_string(fn.concurrency)
                   : "Rate Exceeded. ephemera is running its limit of " +
                         std::to_string(options_.max_concurrency) + " invocations");
    // Callbacks never run inside the call that started them.
    refused_.push_back(
        [done = std::move(done), out = std::move(out)]() mutable { done(std::move(out)); });
    refuse_timer_.Start(0, [this] {
      auto pending = std::move(refused_);
      refused_.clear();
      for (auto& fn : pending) fn();
    });
    return 0;
  }
  ++running;
  ++stats_.started;
  Handle handle = next_handle_++;
  auto inv = std::make_shared<ColdInvocation>(this, handle, std::move(request), std::move(done));
  ColdInvocation* raw = inv.get();
  live_.emplace(handle, std::move(inv));
  raw->Begin();
  return handle;
}

void Invoker::Cancel(Handle handle) {
  auto it = live_.find(handle);
  if (it != live_.end()) it->second->Cancel();
}

void Invoker::Validate(const registry::FunctionSpec& spec, std::function<void(Status)> done) {
  docker_->InspectImage(
      spec.image, [done = std::move(done), name = spec.name](Status s, const docker::ImageConfig&) {
        if (!s.ok() && s.code() == StatusCode::kNotFound) {
          done(Status(s.code(), "function " + name + ": " + s.message()));
          return;
        }
        done(s);
      });
}

void Invoker::OnOutcome(ColdInvocation* inv, const InvokeOutcome& outcome) {
  auto it = per_function_.find(inv->function_name());
  if (it != per_function_.end() && --it->second <= 0) per_function_.erase(it);
  switch (outcome.kind) {
    case InvokeOutcome::Kind::kSuccess: {
      ++stats_.succeeded;
      const PhaseTimes& p = outcome.phases;
      auto acc = [](double& sum, double v) {
        if (v > 0) sum += v;
      };
      acc(stats_.sum.image, p.image);
      acc(stats_.sum.create, p.create);
      acc(stats_.sum.start, p.start);
      acc(stats_.sum.init, p.init);
      acc(stats_.sum.handler, p.handler);
      acc(stats_.sum.total, p.total);
      break;
    }
    case InvokeOutcome::Kind::kFunctionError: ++stats_.function_errors; break;
    case InvokeOutcome::Kind::kServiceError: ++stats_.service_errors; break;
  }
  ++disposing_;
}

void Invoker::OnDisposed(ColdInvocation* inv, bool removed_ok) {
  if (removed_ok) {
    ++stats_.containers_removed;
  } else {
    ++stats_.dispose_failures;
  }
  if (disposing_ > 0) --disposing_;
  RetireLater(inv);
}

// Never free an invocation inside its own callback (STYLE.md rule 4): move it to
// the retired list and free it from an idle callback on the next loop turn.
void Invoker::RetireLater(ColdInvocation* inv) {
  auto it = live_.find(inv->handle());
  if (it == live_.end()) return;
  retired_.push_back(std::move(it->second));
  live_.erase(it);
  if (reaper_) {
    uv_idle_start(reaper_.get(), [](uv_idle_t* h) {
      auto* self = static_cast<Invoker*>(h->data);
      if (self != nullptr) self->FreeRetired();
    });
  }
}

void Invoker::FreeRetired() {
  uv_idle_stop(reaper_.get());
  auto doomed = std::move(retired_);
  retired_.clear();
  doomed.clear();
  MaybeFinishShutdown();
}

// A container is a leftover when the process named by its ephemera.daemon label is
// gone (or is no longer an ephemera process: pids are reused). Containers of another
// daemon that is still running, a demo beside a test run say, are left alone.
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

void Invoker::ReapLeftovers(std::function<void(Status, size_t)> done) {
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
              LOG_WARN("invoke", "could not remove leftover container %s: %s", id.c_str(),
                       rs.message().c_str());
            }
            if (--*remaining == 0) (*shared_done)(Status::Ok(), count);
          });
        }
      });
}

void Invoker::Shutdown(std::function<void()> done) {
  shutdown_done_ = std::move(done);
  std::vector<Handle> handles;
  for (auto& [h, inv] : live_) handles.push_back(h);
  for (Handle h : handles) Cancel(h);
  MaybeFinishShutdown();
}

void Invoker::MaybeFinishShutdown() {
  if (!shutdown_done_ || !live_.empty() || !retired_.empty()) return;
  refuse_timer_.Stop();
  reaper_.Close();
  auto done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  done();
}

}  // namespace ephemera::invoke
