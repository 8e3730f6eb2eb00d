#include "runtime/invoke/cold_invocation.h"

#include <cstdio>
#include <ctime>
#include <fstream>

#include "runtime/core/clock.h"
#include "runtime/core/log.h"
#include "runtime/invoke/container_spec.h"
#include "runtime/json/json.h"

namespace ephemera::invoke {
namespace {

// Output kept for X-Amz-Log-Result; Lambda returns the last 4 KB, we keep a margin.
constexpr size_t kMaxLogBytes = 64 * 1024;
// How long past the init timeout the daemon waits for the runtime's own init error.
constexpr uint64_t kInitReportGraceMs = 1000;

std::string ErrorJson(const std::string& type, const std::string& message) {
  return "{\"errorType\":" + json::Quote(type) + ",\"errorMessage\":" + json::Quote(message) + "}";
}

// "2026-11-23T05:46:57.874Z", as Lambda prefixes its timeout message.
std::string IsoNow() {
  int64_t ms = EpochMs();
  time_t secs = static_cast<time_t>(ms / 1000);
  tm utc{};
  gmtime_r(&secs, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

// Peak memory of the container from its cgroup (v1 with the cgroupfs driver, as on
// this project's machines; v2 exposes memory.peak on newer kernels). 0 if unknown.
int MaxMemoryUsedMb(const std::string& container_id) {
  for (const std::string& path :
       {"/sys/fs/cgroup/memory/docker/" + container_id + "/memory.max_usage_in_bytes",
        "/sys/fs/cgroup/system.slice/docker-" + container_id + ".scope/memory.peak"}) {
    std::ifstream in(path);
    long long bytes = 0;
    if (in >> bytes) return static_cast<int>((bytes + (1 << 20) - 1) >> 20);
  }
  return 0;
}

// An X-Ray style trace header derived from the request id:
// "Root=1-<epoch seconds, 8 hex>-<24 hex>;Parent=<16 hex>;Sampled=0".
std::string TraceId(const std::string& request_id) {
  std::string hex;
  for (char c : request_id) {
    if (c != '-') hex.push_back(c);
  }
  hex.resize(32, '0');
  char buf[96];
  std::snprintf(buf, sizeof buf, "Root=1-%08llx-%s;Parent=%s;Sampled=0",
                static_cast<unsigned long long>(EpochMs() / 1000), hex.substr(0, 24).c_str(),
                hex.substr(16, 16).c_str());
  return buf;
}

}  // namespace

template <typename Fn>
auto ColdInvocation::Guard(Fn fn) {
  return [weak = weak_from_this(), fn = std::move(fn)](auto&&... args) mutable {
    if (auto self = weak.lock()) fn(self.get(), std::forward<decltype(args)>(args)...);
  };
}

ColdInvocation::ColdInvocation(Invoker* owner, Invoker::Handle handle, InvokeRequest request,
                               Invoker::Done done)
    : owner_(owner),
      handle_(handle),
      request_(std::move(request)),
      done_(std::move(done)),
      timer_(owner->loop()),
      logs_grace_(owner->loop()) {}

ColdInvocation::~ColdInvocation() = default;

// ---- Stage 1: find out what the image runs (cached after the first call) ----

void ColdInvocation::Begin() {
  t_begin_ = MonotonicMs();
  ResolveImage();
}

void ColdInvocation::ResolveImage() {
  owner_->docker()->InspectImage(
      request_.function->image,
      Guard([](ColdInvocation* self, Status status, const docker::ImageConfig& image) {
        if (self->finished_) return;
        self->t_image_ = MonotonicMs();
        if (!status.ok()) {
          if (status.code() == StatusCode::kNotFound) {
            self->FailService(502, "ResourceNotReadyException",
                              Status(status.code(), "function " + self->function_name() + ": " +
                                                        status.message()));
          } else {
            self->FailService(status.code() == StatusCode::kUnavailable ? 503 : 502,
                              "ServiceException", status);
          }
          return;
        }
        self->OpenEnvironment(image);
      }));
}

// ---- Stage 2: a Runtime API listener for this environment alone ----

void ColdInvocation::OpenEnvironment(const docker::ImageConfig& image) {
  runtime_api::RuntimeApiServer::Callbacks cb;
  cb.on_next = [this](const runtime_api::Event* e) { OnRuntimeNext(e); };
  cb.on_response = [this](const std::string&, std::string body, std::string type) {
    OnRuntimeResponse(std::move(body), std::move(type));
  };
  cb.on_error = [this](const std::string&, runtime_api::RuntimeError e) {
    OnRuntimeError(std::move(e));
  };
  cb.on_init_error = [this](runtime_api::RuntimeError e) { OnRuntimeInitError(std::move(e)); };
  environment_ = std::make_unique<runtime_api::RuntimeApiServer>(owner_->loop(), std::move(cb));
  if (Status s = environment_->Listen(owner_->options().runtime_api_host); !s.ok()) {
    FailService(500, "ServiceException", s);
    return;
  }
  // The event waits in the environment's queue; the runtime's first /next takes it.
  runtime_api::Event event;
  event.request_id = request_.request_id;
  event.payload = std::move(request_.payload);  // not read again: no 6 MB copy
  event.content_type = request_.content_type;
  event.timeout_ms = static_cast<uint64_t>(request_.function->timeout_s) * 1000;
  event.function_arn = registry::FunctionArn(request_.function->name);
  event.client_context = request_.client_context;
  event.trace_id = TraceId(request_.request_id);
  environment_->Deliver(std::move(event));
  CreateContainer(image);
}

// ---- Stage 3: create the container (shim injected, labelled, host network) ----

void ColdInvocation::CreateContainer(const docker::ImageConfig& image) {
  const InvokerOptions& o = owner_->options();
  ContainerParams params;
  params.runtime_api_address = environment_->address();
  params.request_id = request_.request_id;
  params.shim_path = o.shim_path;
  params.init_timeout_ms = o.init_timeout_ms;
  params.region = o.region;
  params.instance_label = o.instance_label;
  if (request_.function->mode == registry::ShimMode::kHttp && request_.function->http_port == 0) {
    params.http_port = PickFreeLoopbackPort();
  }
  docker::ContainerSpec spec;
  if (Status s = BuildContainerSpec(*request_.function, image, params, &spec); !s.ok()) {
    FailFunction("Runtime.InvalidEntrypoint", s.message());
    return;
  }

  create_in_flight_ = true;
  owner_->docker()->CreateContainer(
      spec, Guard([](ColdInvocation* self, Status status, std::string id) {
        self->create_in_flight_ = false;
        self->t_created_ = MonotonicMs();
        if (status.ok()) {
          self->container_id_ = std::move(id);
          ++self->owner_->stats_.containers_created;
        }
        if (self->finished_) {  // cancelled while creating: Finish already ran
          self->Dispose();
          return;
        }
        if (!status.ok()) {
          int http = status.code() == StatusCode::kUnavailable ? 503 : 502;
          self->FailService(http,
                            status.code() == StatusCode::kNotFound ? "ResourceNotReadyException"
                                                                   : "ServiceException",
                            status);
          return;
        }
        self->WatchContainer();
      }));
}

// ---- Stage 4: register the wait (and the attach for logs) before start ----

void ColdInvocation::WatchContainer() {
  auto* docker = owner_->docker();
  docker->WaitContainer(container_id_, Guard([](ColdInvocation* self, Status status) {
                          if (self->finished_) return;
                          if (!status.ok()) {
                            self->FailService(502, "ServiceException", status);
                            return;
                          }
                          self->wait_ready_ = true;
                          self->StartContainer();
                        }),
                        Guard([](ColdInvocation* self, Status status, int code) {
                          self->OnContainerExit(status, code);
                        }));
  if (!request_.capture_logs) {
    attach_ready_ = true;
    return;
  }
  docker->Attach(container_id_, Guard([](ColdInvocation* self, Status status) {
                   if (self->finished_) return;
                   if (!status.ok()) {
                     self->FailService(502, "ServiceException", status);
                     return;
                   }
                   self->attach_ready_ = true;
                   self->StartContainer();
                 }),
                 Guard([](ColdInvocation* self, docker::StreamType, std::string_view data) {
                   self->logs_.append(data);
                   if (self->logs_.size() > kMaxLogBytes)
                     self->logs_.erase(0, self->logs_.size() - kMaxLogBytes);
                 }),
                 Guard([](ColdInvocation* self, Status) {
                   self->attach_ended_ = true;
                   if (self->finished_) self->Deliver();
                 }));
}

// ---- Stage 5: start; the init clock runs until the runtime's first /next ----

void ColdInvocation::StartContainer() {
  if (!wait_ready_ || !attach_ready_ || started_) return;
  started_ = true;
  owner_->docker()->StartContainer(
      container_id_, Guard([](ColdInvocation* self, Status status) {
        self->t_started_ = MonotonicMs();
        if (self->finished_) return;
        if (!status.ok()) {
          if (status.code() == StatusCode::kInvalidArgument ||
              status.code() == StatusCode::kInternal) {
            // The engine refused to run the process (e.g. a missing executable): the
            // function's entrypoint is wrong, which Lambda reports as a function error.
            self->FailFunction("Runtime.InvalidEntrypoint", status.message());
          } else {
            self->FailService(status.code() == StatusCode::kUnavailable ? 503 : 502,
                              "ServiceException", status);
          }
          return;
        }
        if (!self->event_taken_) {
          // The shim has the same init budget and reports a failed init itself (with
          // the service's last log lines); the daemon's timer is the backstop.
          self->timer_.Start(self->owner_->options().init_timeout_ms + kInitReportGraceMs,
                             [self] { self->OnTimeout(); });
        }
      }));
}

// ---- The runtime at work ----

void ColdInvocation::OnRuntimeNext(const runtime_api::Event* handed_out) {
  if (handed_out == nullptr || finished_) return;  // a runtime looping back for more
  event_taken_ = true;
  t_next_ = MonotonicMs();
  uint64_t ms = static_cast<uint64_t>(request_.function->timeout_s) * 1000;
  timer_.Start(ms, [this] { OnTimeout(); });
}

void ColdInvocation::OnRuntimeResponse(std::string body, std::string content_type) {
  if (finished_) return;
  InvokeOutcome out;
  out.kind = InvokeOutcome::Kind::kSuccess;
  out.body = std::move(body);
  out.content_type = std::move(content_type);
  Finish(std::move(out));
}

void ColdInvocation::OnRuntimeError(runtime_api::RuntimeError error) {
  if (finished_) return;
  InvokeOutcome out;
  out.kind = InvokeOutcome::Kind::kFunctionError;
  out.body = error.body.empty() ? ErrorJson(error.error_type, "") : std::move(error.body);
  Finish(std::move(out));
}

void ColdInvocation::OnRuntimeInitError(runtime_api::RuntimeError error) {
  if (finished_) return;
  LOG_INFO("invoke", "%s %s: init error %s", function_name().c_str(), request_.request_id.c_str(),
           error.error_type.c_str());
  InvokeOutcome out;
  out.kind = InvokeOutcome::Kind::kFunctionError;
  out.body =
      error.body.empty() ? ErrorJson(error.error_type, "init failed") : std::move(error.body);
  Finish(std::move(out));
}

void ColdInvocation::OnContainerExit(Status status, int exit_code) {
  if (finished_) return;
  if (!status.ok()) {
    FailService(502, "ServiceException", status);
    return;
  }
  std::string reason = exit_code == 0
                           ? "Runtime exited without providing a reason"
                           : "Runtime exited with error: exit status " + std::to_string(exit_code);
  FailFunction("Runtime.ExitError", "RequestId: " + request_.request_id + " Error: " + reason);
}

void ColdInvocation::OnTimeout() {
  if (finished_) return;
  ++owner_->stats_.timeouts;
  char msg[200];
  if (event_taken_) {
    std::snprintf(msg, sizeof msg, "%s %s Task timed out after %d.00 seconds", IsoNow().c_str(),
                  request_.request_id.c_str(), request_.function->timeout_s);
  } else {
    std::snprintf(msg, sizeof msg,
                  "%s %s Task timed out after %.2f seconds during init: the runtime never asked "
                  "for the event",
                  IsoNow().c_str(), request_.request_id.c_str(),
                  static_cast<double>(owner_->options().init_timeout_ms) / 1000.0);
  }
  FailFunction("Sandbox.Timedout", msg);
}

void ColdInvocation::Cancel() {
  if (finished_) return;
  FailService(499, "RequestCanceled", Cancelled("the caller went away"));
}

// ---- The end: report, then dispose (kill + remove) off the critical path ----

void ColdInvocation::FailService(int http_status, std::string code, Status status) {
  InvokeOutcome out;
  out.kind = InvokeOutcome::Kind::kServiceError;
  out.http_status = http_status;
  out.error_code = std::move(code);
  out.body = status.message();
  out.status = std::move(status);
  Finish(std::move(out));
}

void ColdInvocation::FailFunction(std::string error_type, std::string message) {
  InvokeOutcome out;
  out.kind = InvokeOutcome::Kind::kFunctionError;
  out.body = ErrorJson(error_type, message);
  Finish(std::move(out));
}

void ColdInvocation::Finish(InvokeOutcome outcome) {
  if (finished_) return;
  finished_ = true;
  timer_.Stop();
  double now = MonotonicMs();
  PhaseTimes& p = outcome.phases;
  if (t_image_ > 0) p.image = t_image_ - t_begin_;
  if (t_created_ > 0) p.create = t_created_ - t_image_;
  if (t_started_ > 0 && (t_next_ == 0 || t_started_ <= t_next_)) {
    p.start = t_started_ - t_created_;
    if (t_next_ > 0) p.init = t_next_ - t_started_;
  } else if (t_next_ > 0 && t_created_ > 0) {
    // The runtime asked for its event before the engine's start call returned:
    // the process was running by then, so start ends there and init is zero.
    p.start = t_next_ - t_created_;
    p.init = 0;
  }
  if (t_next_ > 0) p.handler = now - t_next_;
  p.total = now - t_begin_;
  outcome.memory_mb = request_.function->memory_mb;
  outcome.init_duration_ms = p.init >= 0 ? p.init : -1;
  outcome_ = std::move(outcome);
  owner_->OnOutcome(this, outcome_);
  if (request_.capture_logs && !container_id_.empty()) {
    // The last output may still be in flight on the attach stream: removing the
    // container ends the stream, and the outcome goes out then (or after a grace).
    Dispose();
    if (!attach_ended_) {
      logs_grace_.Start(1000, [this] { Deliver(); });
      return;
    }
  }
  Deliver();
  Dispose();
}

void ColdInvocation::Deliver() {
  if (delivered_) return;
  delivered_ = true;
  logs_grace_.Stop();
  outcome_.logs = std::move(logs_);
  if (auto done = std::move(done_)) done(std::move(outcome_));
}

void ColdInvocation::Dispose() {
  if (disposing_ || create_in_flight_) return;  // a pending create disposes when it returns
  disposing_ = true;
  // The environment stays open until the container is gone: the runtime's last
  // request (its 202) must not be cut off; it closes when the Invoker retires us.
  if (container_id_.empty()) {
    owner_->OnDisposed(this, true);
    return;
  }
  // Read the peak before the cgroup disappears; only the log REPORT line needs it.
  if (!delivered_ && request_.capture_logs)
    outcome_.max_memory_used_mb = MaxMemoryUsedMb(container_id_);
  owner_->docker()->RemoveContainer(
      container_id_, Guard([](ColdInvocation* self, Status status) {
        if (!status.ok()) {
          LOG_WARN("invoke", "could not remove container %s of %s: %s", self->container_id_.c_str(),
                   self->function_name().c_str(), status.message().c_str());
        }
        self->owner_->OnDisposed(self, status.ok());
      }));
}

}  // namespace ephemera::invoke
