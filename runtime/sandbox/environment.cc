#include "runtime/sandbox/environment.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "runtime/core/clock.h"
#include "runtime/core/ids.h"
#include "runtime/core/log.h"
#include "runtime/json/json.h"
#include "runtime/sandbox/container_spec.h"

namespace ephemera::sandbox {
namespace {

// Output kept per invocation for X-Amz-Log-Result; Lambda returns the last 4 KB, we keep
// a margin.
constexpr size_t kMaxLogBytes = 64 * 1024;
// How long past the init timeout the daemon waits for the runtime's own init error.
constexpr uint64_t kInitReportGraceMs = 1000;
// How long a finished invocation's outcome may wait for its last output on the attach
// stream, which trails the Runtime API by milliseconds, or by over a second on a busy
// engine. When the runtime writes log marks (log_marks.h) the outcome waits for its mark on
// both streams, or for the stream's end, and the outcome of a removed container without
// them for the stream's end: the engine ends it once it has written all the container
// wrote. kLogBackstopMs is only for an engine that never sends either. A kept environment
// whose runtime writes no marks waits until the runtime asks for its next event and
// kLogSettleMs more, never longer than kLogGraceMs: that can lose the last lines when the
// stream trails by more.
constexpr uint64_t kLogGraceMs = 1000;
constexpr uint64_t kLogBackstopMs = 10000;
constexpr uint64_t kLogSettleMs = 50;
// How long a kept environment's event waits for the attach its log tail asked for; past
// it the event goes without (an engine that never answers must not hold an invocation).
constexpr uint64_t kAttachBackstopMs = 2000;

std::string ErrorJson(const std::string& type, const std::string& message) {
  return "{\"errorType\":" + json::Quote(type) + ",\"errorMessage\":" + json::Quote(message) + "}";
}

// "2026-11-23T05:46:57.874Z", as Lambda prefixes its timeout message.
std::string IsoNow() {
  return IsoTimestamp(EpochMs());
}

// The container's memory cgroup files: v1 with the cgroupfs driver (this project's
// machines), then v2 with the systemd driver.
std::string CgroupV1(const std::string& container_id, const char* file) {
  return "/sys/fs/cgroup/memory/docker/" + container_id + "/" + file;
}

// Peak memory of the container since the last reset, in MB rounded up; 0 if unknown.
int MaxMemoryUsedMb(const std::string& container_id) {
  for (const std::string& path :
       {CgroupV1(container_id, "memory.max_usage_in_bytes"),
        "/sys/fs/cgroup/system.slice/docker-" + container_id + ".scope/memory.peak"}) {
    std::ifstream in(path);
    long long bytes = 0;
    if (in >> bytes) return static_cast<int>((bytes + (1 << 20) - 1) >> 20);
  }
  return 0;
}

// How many times the memory limit's OOM killer struck in the container (cgroup v1
// memory.oom_control, v2 memory.events); -1 if unknown. `*fd` keeps the file open for the
// next call: a kept environment reads it at every invocation, and one pread is a third of
// open, read and close.
long OomKills(const std::string& container_id, int* fd) {
  if (*fd < 0) {
    for (const std::string& path :
         {CgroupV1(container_id, "memory.oom_control"),
          "/sys/fs/cgroup/system.slice/docker-" + container_id + ".scope/memory.events"}) {
      *fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (*fd >= 0) break;
    }
    if (*fd < 0) return -1;
  }
  char buf[512];
  ssize_t n = ::pread(*fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  // Lines of "key value"; the one we want is "oom_kill N".
  for (const char* line = buf; *line != '\0';) {
    const char* end = std::strchr(line, '\n');
    if (std::strncmp(line, "oom_kill ", 9) == 0) return std::strtol(line + 9, nullptr, 10);
    if (end == nullptr) break;
    line = end + 1;
  }
  return -1;
}

// The kernel's count of OOM kills on the whole machine (/proc/vmstat oom_kill), which it
// raises before the killed process gets its SIGKILL; -1 if unknown.
long MachineOomKills() {
  int fd = ::open("/proc/vmstat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[16384];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* at = std::strstr(buf, "\noom_kill ");
  return at == nullptr ? -1 : std::strtol(at + 10, nullptr, 10);
}

// Whether the kernel's log holds an OOM kill in the container's memory cgroup: the kernel
// writes one "oom-kill:" line per kill, naming the cgroup (which holds the container id),
// before the process gets its SIGKILL. Reads the whole ring buffer (/dev/kmsg, one record
// per read), so it runs on the thread pool. 1 if found, 0 if the log was read to its end
// without it, -1 if it cannot be read (the log needs CAP_SYSLOG when dmesg_restrict is set).
int KernelLogHasOomKill(const std::string& container_id) {
  int fd = ::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  char record[8192];
  int found = -1;
  while (found != 1) {
    ssize_t n = ::read(fd, record, sizeof record - 1);
    if (n < 0 && errno == EPIPE) continue;    // the record was overwritten; go on
    if (n < 0 && errno == EAGAIN) found = 0;  // the end of the log
    if (n <= 0) break;
    record[n] = '\0';
    if (std::strstr(record, "oom-kill:") != nullptr &&
        std::strstr(record, container_id.c_str()) != nullptr) {
      found = 1;
    }
  }
  ::close(fd);
  return found;
}

// Starts a new peak for the next invocation of a kept environment (cgroup v1 allows it;
// on v2 the peak stays the environment's).
void ResetMaxMemory(const std::string& container_id) {
  std::ofstream out(CgroupV1(container_id, "memory.max_usage_in_bytes"));
  if (out) out << "0";
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

OutcomeKind EngineKind(const Status& s) {
  if (s.code() == StatusCode::kUnavailable) return OutcomeKind::kEngineUnavailable;
  if (s.code() == StatusCode::kNotFound) return OutcomeKind::kImageNotReady;
  return OutcomeKind::kEngineFailed;
}

}  // namespace

const char* StartKindName(StartKind kind) {
  switch (kind) {
    case StartKind::kCold: return "cold";
    case StartKind::kWarm: return "warm";
    case StartKind::kPool: return "pool";
  }
  return "cold";
}

const char* EnvironmentStateName(EnvironmentState state) {
  switch (state) {
    case EnvironmentState::kProvisioning: return "provisioning";
    case EnvironmentState::kReady: return "ready";
    case EnvironmentState::kBusy: return "busy";
    case EnvironmentState::kDisposing: return "disposing";
    case EnvironmentState::kGone: return "gone";
  }
  return "gone";
}

template <typename Fn>
auto Environment::Guard(Fn fn) {
  return [weak = weak_from_this(), fn = std::move(fn)](auto&&... args) mutable {
    if (auto self = weak.lock()) fn(self.get(), std::forward<decltype(args)>(args)...);
  };
}

Environment::Environment(uv_loop_t* loop, docker::DockerClient* docker,
                         const SandboxOptions* options,
                         std::shared_ptr<const registry::FunctionSpec> spec,
                         docker::ImageConfig image, StartKind kind, Events events)
    : loop_(loop),
      docker_(docker),
      options_(options),
      spec_(std::move(spec)),
      image_(std::move(image)),
      kind_(kind),
      events_(std::move(events)),
      id_(NewRequestId()),
      timer_(loop),
      delivery_timer_(loop),
      kill_timer_(loop) {}

Environment::~Environment() {
  if (oom_fd_ >= 0) ::close(oom_fd_);
  if (wait_request_ != 0) docker_->Cancel(wait_request_);
  if (attach_request_ != 0) docker_->Cancel(attach_request_);
  forwarders_.clear();
  runtime_api_.reset();
  if (!socket_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(socket_dir_, ec);
  }
}

void Environment::ReportStarted() {
  if (start_reported_) return;
  start_reported_ = true;
  if (events_.on_started) events_.on_started(this);
}

void Environment::SetState(EnvironmentState state) {
  LOG_DEBUG("sandbox", "environment %s of %s: %s -> %s", id_.c_str(), spec_->name.c_str(),
            EnvironmentStateName(state_), EnvironmentStateName(state));
  state_ = state;
}

// ---- Provisioning, stage 1: a Runtime API listener for this environment alone ----

void Environment::Prepare() {
  prepare_only_ = true;
  created_ahead_ = true;
  t_provision_ = MonotonicMs();
  OpenRuntimeApi();
  if (state_ != EnvironmentState::kProvisioning) return;
  if (IsIsolated(*spec_)) {
    AcquireHolder();
  } else {
    CreateContainer();
  }
}

void Environment::Provision(std::optional<Invocation> first) {
  // The machine's OOM kills before the container runs (ClassifyKill): read here, so a pool
  // environment's invocation does not pay for it.
  machine_oom_kills_before_ = MachineOomKills();
  if (prepare_only_) {
    // Created ahead: the cold path goes on from the wait, with the event queued first.
    prepare_only_ = false;
    attach_wanted_ = first && first->request.capture_logs;
    t_provision_ = MonotonicMs();
    if (first) Hand(std::move(*first));
    if (!container_id_.empty() && !create_in_flight_) {
      t_created_ = t_provision_;
      WatchContainer();
    }
    return;  // else the create (or holder) callback goes on
  }
  t_provision_ = MonotonicMs();
  // An environment attaches at its start only when its first invocation asked for the log
  // tail; a kept one (warm, pool) attaches when an invocation first asks (Run).
  attach_wanted_ = first && first->request.capture_logs;
  OpenRuntimeApi();
  if (state_ != EnvironmentState::kProvisioning) return;
  if (first) {
    // The event waits in the listener's queue; the runtime's first /next takes it.
    Hand(std::move(*first));
  }
  if (IsIsolated(*spec_)) {
    AcquireHolder();
  } else {
    CreateContainer();
  }
}

// An isolated environment joins a network namespace prepared ahead (holders.h).
void Environment::AcquireHolder() {
  create_in_flight_ = true;  // Dispose waits for the holder, then releases it
  options_->holders->Acquire(Guard([](Environment* self, Status s, std::string holder) {
    self->create_in_flight_ = false;
    self->holder_id_ = std::move(holder);
    if (self->state_ == EnvironmentState::kDisposing) {
      self->RemoveContainer();
      return;
    }
    if (!s.ok()) {
      self->Fail(s.code() == StatusCode::kUnavailable ? OutcomeKind::kEngineUnavailable
                                                      : OutcomeKind::kEngineFailed,
                 s);
      return;
    }
    self->CreateContainer();
  }));
}

// The host services the function's spec lets it reach, one socket each in its folder.
bool Environment::OpenForwarders() {
  forwards_ = Forwards(*spec_, options_->daemon_forwards ? options_->daemon_forwards(*spec_)
                                                         : std::vector<std::string>{});
  for (const std::string& target : forwards_) {
    registry::ForwardTarget t;
    if (!registry::ParseForward(target, &t).ok()) continue;  // Forwards() kept valid ones
    auto fwd = std::make_unique<Forwarder>(loop_);
    if (Status s =
            fwd->Listen(socket_dir_ + "/fwd-" + std::to_string(t.port) + ".sock", t.host, t.port);
        !s.ok()) {
      reusable_ = false;
      LOG_WARN("sandbox", "%s: cannot forward %s: %s", spec_->name.c_str(), target.c_str(),
               s.message().c_str());
      return false;
    }
    forwarders_.push_back(std::move(fwd));
  }
  return true;
}

void Environment::ReleaseIsolation(bool healthy) {
  forwarders_.clear();
  if (!holder_id_.empty() && options_->holders != nullptr) {
    options_->holders->Release(holder_id_, healthy);
    holder_id_.clear();
  }
  if (!socket_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(socket_dir_, ec);
    socket_dir_.clear();
  }
}

void Environment::OpenRuntimeApi() {
  runtime_api::RuntimeApiServer::Callbacks cb;
  cb.on_next = [this](const runtime_api::Event* e) { OnRuntimeNext(e); };
  cb.on_response = [this](const std::string&, std::string body, std::string type) {
    OnRuntimeResponse(std::move(body), std::move(type));
  };
  cb.on_error = [this](const std::string&, runtime_api::RuntimeError e) {
    OnRuntimeError(std::move(e));
  };
  cb.on_init_error = [this](runtime_api::RuntimeError e) { OnRuntimeInitError(std::move(e)); };
  if (options_->invoke_handler) {
    cb.on_invoke = [this](const std::shared_ptr<http::HttpExchange>& ex, const std::string& ref) {
      options_->invoke_handler(ex, ref, spec_->name);
    };
  }
  runtime_api_ = std::make_unique<runtime_api::RuntimeApiServer>(loop_, std::move(cb));
  Status s;
  if (IsIsolated(*spec_)) {
    // A folder for this environment alone; the container sees it at /run/ephemera.
    socket_dir_ = options_->runtime_dir + "/" + id_;
    if (::mkdir(socket_dir_.c_str(), 0755) != 0) {
      s = Internal("cannot make the socket folder " + socket_dir_ + ": " + std::strerror(errno));
    } else {
      s = runtime_api_->ListenUnix(socket_dir_ + "/runtime.sock");
      if (s.ok() && !OpenForwarders()) s = Internal("cannot forward the function's host services");
    }
  } else {
    s = runtime_api_->Listen(options_->runtime_api_host);
  }
  if (!s.ok()) {
    reusable_ = false;
    SetState(EnvironmentState::kDisposing);
    ReportStarted();
    // Reported from a later loop turn: callbacks never run inside the call.
    timer_.Start(0, Guard([s](Environment* self) {
                   if (self->events_.on_lost) self->events_.on_lost(self, s);
                   self->runtime_api_.reset();
                   self->ReleaseIsolation(true);
                   self->Gone();
                 }));
  }
}

// ---- Stage 2: create the container (shim injected, labelled with the environment) ----

void Environment::CreateContainer() {
  ContainerParams params;
  params.runtime_api_address = runtime_api_->address();
  params.environment_id = id_;
  params.shim_path = options_->shim_path;
  params.init_timeout_ms = options_->init_timeout_ms;
  params.region = options_->region;
  params.instance_label = options_->instance_label;
  params.holder_id = holder_id_;
  params.runtime_dir = socket_dir_;
  if (options_->daemon_environment) params.daemon_env = options_->daemon_environment(*spec_);
  params.forwards = forwards_;
  if (spec_->mode == registry::ShimMode::kHttp && spec_->http_port == 0) {
    params.http_port = PickFreeLoopbackPort();
  }
  docker::ContainerSpec spec;
  if (Status s = BuildContainerSpec(*spec_, image_, params, &spec); !s.ok()) {
    FailFunction("Runtime.InvalidEntrypoint", s.message());
    return;
  }
  create_in_flight_ = true;
  docker_->CreateContainer(spec, Guard([](Environment* self, Status status, std::string id) {
                             self->create_in_flight_ = false;
                             self->t_created_ = MonotonicMs();
                             if (status.ok()) self->container_id_ = std::move(id);
                             if (self->state_ == EnvironmentState::kDisposing) {
                               self->RemoveContainer();  // disposed while creating
                               return;
                             }
                             if (!status.ok()) {
                               self->Fail(EngineKind(status), status);
                               return;
                             }
                             if (self->prepare_only_) return;  // Provision() goes on
                             self->WatchContainer();
                           }));
}

// ---- Stage 3: register the wait (and the attach for logs) before start ----
//
// The start always waits for the wait (an exit must never go unseen), and for the attach
// when one is wanted (the first invocation asked for its log tail), so none of its output is
// missed. Other environments start unattached: a pool environment, or a warm one whose
// first call did not ask, attaches when an invocation first asks for its tail (Run), and
// the event waits for the attach's answer. Attaching costs the engine a stream per
// container; a pool that attached every environment at its start also had to wait for it
// (20 ms per start at 2 in flight, docker events from create to start), or become ready
// only once it was answered. (Asking the engine to replay the output so far, logs=1,
// would spare the wait, but an attach made before the start then gets some output twice.)

void Environment::WatchContainer() {
  pending_watches_ = attach_wanted_ ? 2 : 1;
  auto watched = [](Environment* self, Status status) {
    if (self->state_ == EnvironmentState::kDisposing) return;
    if (!status.ok()) {
      self->Fail(EngineKind(status), status);
      return;
    }
    if (--self->pending_watches_ == 0) self->StartContainer();
  };
  wait_request_ = docker_->WaitContainer(container_id_, Guard(watched),
                                         Guard([](Environment* self, Status status, int code) {
                                           self->wait_request_ = 0;
                                           self->OnContainerExit(std::move(status), code);
                                         }));
  if (attach_wanted_) AttachOutput(watched);
}

// The container's output goes to the invocation's log tail (or, once its outcome waits
// for trailing output, to that outcome's) from the attach's answer on.
void Environment::AttachOutput(void (*on_attached)(Environment*, Status)) {
  attach_request_ =
      docker_->Attach(container_id_, Guard(on_attached),
                      Guard([](Environment* self, docker::StreamType type, std::string_view data) {
                        const int s = type == docker::StreamType::kStderr ? 1 : 0;
                        self->mark_scanners_[s].Feed(
                            data, [self, s](std::string_view text) { self->AppendOutput(s, text); },
                            [self, s](std::string_view id) { self->OnLogMark(s, id); });
                      }),
                      Guard([](Environment* self, Status) {
                        self->attach_request_ = 0;
                        // No more output will come, nor marks: the waiting outcome has all there
                        // is.
                        self->FlushDelivery();
                        if (self->removed_) self->Gone();
                      }));
}

void Environment::AppendOutput(int s, std::string_view text) {
  std::string* sink = &logs_;
  if (delivery_ && (!delivery_marked_ || marked_[s] != delivery_id_)) {
    sink = &delivery_->first.logs;
  } else if (current_ && mark_expected_ && marked_[s] == current_->request.request_id) {
    return;  // written after the invocation's result: between invocations, in no tail
  }
  sink->append(text);
  if (sink->size() > kMaxLogBytes) sink->erase(0, sink->size() - kMaxLogBytes);
}

void Environment::OnLogMark(int s, std::string_view request_id) {
  marked_[s].assign(request_id);
  if (delivery_ && delivery_marked_ && MarkedOnBothStreams(delivery_id_)) {
    FlushDelivery();
    if (removed_) Gone();
  }
}

// A kept environment's first invocation that asks for its log tail: the event waits until
// the attach is answered (or kAttachBackstopMs), so all of its output is seen.
void Environment::AttachThenDeliver() {
  timer_.Start(kAttachBackstopMs, [this] {
    DeliverHeld("the engine did not answer the attach within " + std::to_string(kAttachBackstopMs) +
                " ms");
  });
  AttachOutput([](Environment* self, Status status) {
    if (self->state_ == EnvironmentState::kDisposing) return;
    self->DeliverHeld(status.ok() ? "" : "the attach failed: " + status.message());
  });
}

void Environment::DeliverHeld(const std::string& why_without_output) {
  if (!held_event_) return;
  timer_.Stop();
  if (!why_without_output.empty()) {
    LOG_WARN("sandbox", "%s environment %s: the log tail holds no output of this invocation (%s)",
             spec_->name.c_str(), id_.c_str(), why_without_output.c_str());
  }
  runtime_api::Event event = std::move(*held_event_);
  held_event_.reset();
  if (!current_ || current_->request.request_id != event.request_id) return;
  runtime_api_->Deliver(std::move(event));
}

// ---- Stage 4: start; the init clock runs until the runtime's first /next ----

void Environment::StartContainer() {
  docker_->StartContainer(container_id_, Guard([](Environment* self, Status status) {
                            self->t_started_ = MonotonicMs();
                            self->ReportStarted();
                            if (self->state_ == EnvironmentState::kDisposing) return;
                            if (!status.ok()) {
                              if (status.code() == StatusCode::kInvalidArgument ||
                                  status.code() == StatusCode::kInternal) {
                                // The engine refused to run the process (a missing executable,
                                // say): the function's entrypoint is wrong, which Lambda reports as
                                // a function error.
                                self->FailFunction("Runtime.InvalidEntrypoint", status.message());
                              } else {
                                self->Fail(EngineKind(status), status);
                              }
                              return;
                            }
                            if (!self->runtime_asked_) {
                              // The shim has the same init budget and reports a failed init itself
                              // (with the service's last log lines); this timer is the backstop.
                              self->timer_.Start(
                                  self->options_->init_timeout_ms + kInitReportGraceMs,
                                  [self] { self->OnTimeout(); });
                            }
                          }));
}

// ---- Invocations ----

void Environment::Run(Invocation invocation) {
  if (state_ != EnvironmentState::kReady || !reusable_) {
    // The owner only hands invocations to ready environments; answer rather than lose it.
    InvokeOutcome out;
    out.kind = OutcomeKind::kInternal;
    out.status = Internal("environment " + id_ + " of " + spec_->name + " is " +
                          EnvironmentStateName(state_) + ", not ready");
    if (invocation.done) invocation.done(std::move(out));
    return;
  }
  // The previous outcome goes out before the next event starts, unless its marks will tell
  // its output from the next invocation's.
  if (!delivery_marked_) FlushDelivery();
  SetState(EnvironmentState::kBusy);
  if (invocation.request.capture_logs && !container_id_.empty()) ResetMaxMemory(container_id_);
  oom_kills_before_ = container_id_.empty() ? 0 : OomKills(container_id_, &oom_fd_);
  const bool attach_first =
      invocation.request.capture_logs && attach_request_ == 0 && !container_id_.empty();
  Hand(std::move(invocation), /*deliver=*/!attach_first);
  if (attach_first) AttachThenDeliver();
}

void Environment::Hand(Invocation invocation, bool deliver) {
  // The count read at Provision holds for the first invocation only; a kill in a kept
  // environment's later one is decided by the kernel's log (ClassifyKill).
  if (served_ > 0) machine_oom_kills_before_ = -1;
  logs_.clear();
  event_taken_ = false;
  mark_expected_ = false;
  runtime_api::Event event;
  event.request_id = invocation.request.request_id;
  event.payload = std::move(invocation.request.payload);  // not read again: no 6 MB copy
  event.content_type = invocation.request.content_type;
  event.timeout_ms = static_cast<uint64_t>(spec_->timeout_s) * 1000;
  event.function_arn = registry::FunctionArn(spec_->name);
  event.client_context = invocation.request.client_context;
  event.trace_id = TraceId(invocation.request.request_id);
  event.log_mark = invocation.request.capture_logs;
  current_ = std::move(invocation);
  if (deliver) {
    runtime_api_->Deliver(std::move(event));
  } else {
    held_event_ = std::move(event);
  }
}

void Environment::OnRuntimeNext(const runtime_api::Event* handed_out) {
  if (!runtime_asked_) {
    runtime_asked_ = true;
    t_first_next_ = MonotonicMs();
  }
  if (handed_out == nullptr) {
    // The runtime is waiting for an event.
    // A kept environment's previous outcome has its output by now, give or take the
    // stream's lag; a disposed one's waits for the stream's end instead.
    if (delivery_ && !delivery_marked_ && state_ != EnvironmentState::kDisposing) {
      delivery_timer_.Start(kLogSettleMs, [this] { FlushDelivery(); });
    }
    if (state_ == EnvironmentState::kProvisioning && !current_) {
      timer_.Stop();
      BecomeReady();
    }
    return;
  }
  if (!current_ || state_ == EnvironmentState::kDisposing) return;
  SetState(EnvironmentState::kBusy);
  event_taken_ = true;
  mark_expected_ =
      handed_out->log_mark && (InjectsShim(*spec_) || runtime_api_->runtime_offers_log_marks());
  t_handed_ = MonotonicMs();
  timer_.Start(static_cast<uint64_t>(spec_->timeout_s) * 1000, [this] { OnTimeout(); });
}

void Environment::BecomeReady() {
  SetState(EnvironmentState::kReady);
  if (events_.on_ready) events_.on_ready(this);
}

void Environment::OnRuntimeResponse(std::string body, std::string content_type) {
  if (!current_) return;
  InvokeOutcome out;
  out.kind = OutcomeKind::kSuccess;
  out.body = std::move(body);
  out.content_type = std::move(content_type);
  Finish(std::move(out));
}

void Environment::OnRuntimeError(runtime_api::RuntimeError error) {
  if (!current_) return;
  InvokeOutcome out;
  out.kind = OutcomeKind::kFunctionError;
  out.error_type = error.error_type;
  out.body = error.body.empty() ? ErrorJson(error.error_type, "") : std::move(error.body);
  // The runtime survived a function error and asks for the next event; a runtime that ran
  // out of memory did not really survive.
  if (out.error_type == "Runtime.OutOfMemory") MarkNotReusable("it ran out of memory");
  Finish(std::move(out));
}

void Environment::OnRuntimeInitError(runtime_api::RuntimeError error) {
  LOG_INFO("sandbox", "%s environment %s: init error %s", spec_->name.c_str(), id_.c_str(),
           error.error_type.c_str());
  MarkNotReusable("its runtime reported an init error");
  if (!current_) {
    Lose(Status(StatusCode::kInternal, "function " + spec_->name + ": init error " +
                                           error.error_type + ": " + error.body.substr(0, 300)));
    return;
  }
  InvokeOutcome out;
  out.kind = OutcomeKind::kFunctionError;
  out.error_type = error.error_type;
  out.body =
      error.body.empty() ? ErrorJson(error.error_type, "init failed") : std::move(error.body);
  Finish(std::move(out));
}

void Environment::OnContainerExit(Status status, int exit_code) {
  if (state_ == EnvironmentState::kDisposing || state_ == EnvironmentState::kGone) return;
  MarkNotReusable("its container exited");
  if (!status.ok()) {
    // The wait broke (the engine went away): the container's fate is unknown.
    Fail(status.code() == StatusCode::kUnavailable ? OutcomeKind::kEngineUnavailable
                                                   : OutcomeKind::kEngineFailed,
         Status(status.code(), "lost the container of " + spec_->name + ": " + status.message()));
    return;
  }
  if (!current_) {
    Lose(Internal("the container of " + spec_->name + " exited with status " +
                  std::to_string(exit_code) + " while idle"));
    return;
  }
  std::string request_id = current_->request.request_id;
  if (exit_code != 137) {
    std::string reason =
        exit_code == 0 ? "Runtime exited without providing a reason"
                       : "Runtime exited with error: exit status " + std::to_string(exit_code);
    FailFunction("Runtime.ExitError", "RequestId: " + request_id + " Error: " + reason);
    return;
  }
  ClassifyKill(request_id, 0);
}

// SIGKILL: the memory limit or something else? The container's cgroup counts OOM kills
// (read through the file kept open since the invocation began, if the kernel still answers
// for it: not once the container's last process is gone, as when a native runtime, PID 1,
// was the one killed). Else the machine's count says whether any OOM kill happened since
// the environment was provisioned (its first invocation only): none, and it was an ordinary
// kill. If one did (or the count is not known), the kernel's log says whether it was in
// this container (KernelLogHasOomKill). Last, if the log cannot be read, the engine: it
// records an OOM kill from its own event, which can come after the exit or not at all
// (bench/README.md "Soak": 2 of 10,000 invocations with re-asks over 750 ms, and 2 of
// 10,000 again with re-asks over 3.15 s, were OOM kills the engine never marked), so a kill
// not marked OOM is asked about again 50, 100, ... 1600 ms later (3.15 s in all) before it
// is called an ordinary exit.
void Environment::ClassifyKill(const std::string& request_id, int attempt) {
  constexpr int kAsks = 6;
  std::string message =
      "RequestId: " + request_id + " Error: Runtime exited with error: signal: killed";
  if (attempt == 0 && !container_id_.empty()) {
    long kills = OomKills(container_id_, &oom_fd_);
    if (kills > 0 && kills > oom_kills_before_) {
      FailFunction("Runtime.OutOfMemory", message);
      return;
    }
    long machine = MachineOomKills();
    if (machine >= 0 && machine_oom_kills_before_ >= 0 && machine == machine_oom_kills_before_) {
      FailFunction("Runtime.ExitError", message);
      return;
    }
    ReadKernelLog(request_id, message);
    return;
  }
  docker_->InspectContainer(
      container_id_, Guard([request_id, attempt, message](Environment* self, Status s,
                                                          const docker::ContainerState& st) {
        if (!self->current_ || self->current_->request.request_id != request_id) return;
        bool oom = s.ok() && st.oom_killed;
        if (!oom && s.ok() && attempt < kAsks) {
          self->kill_timer_.Start(50u << attempt,
                                  self->Guard([request_id, attempt](Environment* self) {
                                    self->ClassifyKill(request_id, attempt + 1);
                                  }));
          return;
        }
        self->FailFunction(oom ? "Runtime.OutOfMemory" : "Runtime.ExitError", message);
      }));
}

// KernelLogHasOomKill on the thread pool; then OutOfMemory or an ordinary exit, or the
// engine's answer if the log could not be read (ClassifyKill from attempt 1).
void Environment::ReadKernelLog(const std::string& request_id, const std::string& message) {
  struct Work {
    uv_work_t req;
    std::string container_id;
    int found = -1;
    std::function<void(int)> done;
  };
  auto* w = new Work;
  w->req.data = w;
  w->container_id = container_id_;
  w->done = Guard([request_id, message](Environment* self, int found) {
    if (!self->current_ || self->current_->request.request_id != request_id) return;
    if (found < 0) {
      self->ClassifyKill(request_id, 1);
      return;
    }
    self->FailFunction(found == 1 ? "Runtime.OutOfMemory" : "Runtime.ExitError", message);
  });
  int rc = uv_queue_work(
      loop_, &w->req,
      [](uv_work_t* req) {
        auto* w = static_cast<Work*>(req->data);
        w->found = KernelLogHasOomKill(w->container_id);
      },
      [](uv_work_t* req, int) {
        std::unique_ptr<Work> w(static_cast<Work*>(req->data));
        w->done(w->found);
      });
  if (rc != 0) {
    std::unique_ptr<Work> w_owned(w);
    w_owned->done(-1);
  }
}

void Environment::OnTimeout() {
  MarkNotReusable("it timed out");
  if (!current_) {
    Lose(Timeout("function " + spec_->name + ": the runtime did not ask for an event within " +
                 std::to_string(options_->init_timeout_ms) + " ms of starting"));
    return;
  }
  char msg[256];
  const std::string& id = current_->request.request_id;
  if (event_taken_) {
    std::snprintf(msg, sizeof msg, "%s %s Task timed out after %d.00 seconds", IsoNow().c_str(),
                  id.c_str(), spec_->timeout_s);
  } else {
    std::snprintf(msg, sizeof msg,
                  "%s %s Task timed out after %.2f seconds during init: the runtime never asked "
                  "for the event",
                  IsoNow().c_str(), id.c_str(),
                  static_cast<double>(options_->init_timeout_ms) / 1000.0);
  }
  FailFunction("Sandbox.Timedout", msg);
}

void Environment::MarkNotReusable(const std::string& why) {
  if (reusable_) {
    LOG_DEBUG("sandbox", "environment %s of %s will not be reused: %s", id_.c_str(),
              spec_->name.c_str(), why.c_str());
  }
  reusable_ = false;
}

// ---- The end of an invocation ----

void Environment::Fail(OutcomeKind kind, Status status) {
  MarkNotReusable(status.message());
  if (!current_) {
    Lose(std::move(status));
    return;
  }
  InvokeOutcome out;
  out.kind = kind;
  out.status = std::move(status);
  out.body = out.status.message();
  Finish(std::move(out));
}

void Environment::FailFunction(std::string error_type, std::string message) {
  MarkNotReusable(error_type);
  if (!current_) {
    Lose(Internal("function " + spec_->name + ": " + error_type + ": " + message));
    return;
  }
  InvokeOutcome out;
  out.kind = OutcomeKind::kFunctionError;
  out.body = ErrorJson(error_type, message);
  out.error_type = std::move(error_type);
  Finish(std::move(out));
}

void Environment::Finish(InvokeOutcome outcome) {
  if (!current_) return;
  Invocation inv = std::move(*current_);
  current_.reset();
  timer_.Stop();
  ++served_;
  double now = MonotonicMs();
  PhaseTimes& p = outcome.phases;
  // A cold outcome is the first invocation of an environment provisioned for it: its
  // creation and start belong to it. Kept environments list only what happened now.
  bool cold = kind_ == StartKind::kCold && served_ == 1;
  p.queue = inv.queued_ms;
  if (cold) {
    p.image = inv.image_ms;
    if (t_created_ > 0 && !created_ahead_) p.create = t_created_ - t_provision_;
    if (t_started_ > 0 && (t_first_next_ == 0 || t_started_ <= t_first_next_)) {
      p.start = t_started_ - t_created_;
      if (t_first_next_ > 0) p.init = t_first_next_ - t_started_;
    } else if (t_first_next_ > 0 && t_created_ > 0) {
      // The runtime asked for its event before the engine's start call returned: the
      // process was running by then, so start ends there and init is zero.
      p.start = t_first_next_ - t_created_;
      p.init = 0;
    }
  }
  if (event_taken_) p.handler = now - t_handed_;
  p.total = now - inv.accepted_ms;
  outcome.start = cold                        ? StartKind::kCold
                  : kind_ == StartKind::kPool ? StartKind::kPool
                                              : StartKind::kWarm;
  outcome.environment_id = id_;
  outcome.memory_mb = spec_->memory_mb;
  outcome.init_duration_ms = cold && p.init >= 0 ? p.init : -1;
  if (outcome.kind == OutcomeKind::kFunctionError && outcome.error_type != "Runtime.OutOfMemory" &&
      !container_id_.empty()) {
    // Whatever the mode said (a web service that exited, a signal), a kill by the memory
    // limit during this invocation is what happened: Lambda calls it OutOfMemory.
    long kills = OomKills(container_id_, &oom_fd_);
    if (kills > 0 && kills > oom_kills_before_) {
      outcome.error_type = "Runtime.OutOfMemory";
      outcome.body = ErrorJson(outcome.error_type, "RequestId: " + inv.request.request_id +
                                                       " Error: Runtime exited with error: "
                                                       "signal: killed");
      MarkNotReusable("it ran out of memory");
    }
  }
  if (inv.request.capture_logs) {
    outcome.logs = std::move(logs_);
    if (!container_id_.empty()) outcome.max_memory_used_mb = MaxMemoryUsedMb(container_id_);
  }
  logs_.clear();
  const std::string& id = inv.request.request_id;
  const bool marked = mark_expected_ && event_taken_;
  // With marks read on both streams the tail is complete already.
  bool wait_for_logs =
      inv.request.capture_logs && attach_request_ != 0 && !(marked && MarkedOnBothStreams(id));
  if (reusable_) SetState(EnvironmentState::kReady);
  // The owner decides first (keep or dispose), then the caller gets the outcome; the
  // caller's copy waits for trailing output when it asked for the log tail.
  if (events_.on_outcome) events_.on_outcome(this, outcome);
  if (!reusable_ && state_ != EnvironmentState::kDisposing && state_ != EnvironmentState::kGone) {
    Dispose();
  }
  if (wait_for_logs) {
    FlushDelivery();  // an earlier outcome still waiting for its marks goes without them
    delivery_.emplace(std::move(outcome), std::move(inv.done));
    delivery_marked_ = marked;
    delivery_id_ = id;
    const bool removing = state_ == EnvironmentState::kDisposing;
    delivery_timer_.Start(removing || marked ? kLogBackstopMs : kLogGraceMs,
                          Guard([](Environment* self) {
                            self->FlushDelivery();
                            if (self->removed_) self->Gone();
                          }));
    return;
  }
  if (inv.done) inv.done(std::move(outcome));
}

void Environment::FlushDelivery() {
  delivery_timer_.Stop();
  if (!delivery_) return;
  auto [outcome, done] = std::move(*delivery_);
  delivery_.reset();
  delivery_marked_ = false;
  if (done) done(std::move(outcome));
}

void Environment::Lose(Status why) {
  MarkNotReusable(why.message());
  if (state_ == EnvironmentState::kDisposing || state_ == EnvironmentState::kGone) return;
  LOG_INFO("sandbox", "environment %s of %s lost: %s", id_.c_str(), spec_->name.c_str(),
           why.message().c_str());
  if (events_.on_lost) events_.on_lost(this, why);
  Dispose();
}

// ---- Disposal: kill + remove, off the critical path ----

void Environment::Dispose(OutcomeKind kind, Status why) {
  if (state_ == EnvironmentState::kDisposing || state_ == EnvironmentState::kGone) return;
  reusable_ = false;
  if (current_) {
    Fail(kind, std::move(why));  // Finish disposes (the environment is not reusable)
    return;
  }
  SetState(EnvironmentState::kDisposing);
  timer_.Stop();
  ReportStarted();                // a start that will not happen frees its slot now
  if (create_in_flight_) return;  // the create callback removes what it made
  RemoveContainer();
}

void Environment::RemoveContainer() {
  if (container_id_.empty()) {
    // Nothing was created: gone on the next loop turn (never inside the caller's call).
    timer_.Start(0, Guard([](Environment* self) {
                   self->FlushDelivery();
                   self->runtime_api_.reset();
                   self->ReleaseIsolation(true);
                   self->Gone();
                 }));
    return;
  }
  docker_->RemoveContainer(container_id_, Guard([](Environment* self, Status status) {
                             if (!status.ok()) {
                               LOG_WARN("sandbox", "could not remove container %s of %s: %s",
                                        self->container_id_.c_str(), self->spec_->name.c_str(),
                                        status.message().c_str());
                             }
                             // The runtime's last request (its 202) had its answer by now.
                             self->runtime_api_.reset();
                             self->ReleaseIsolation(status.ok());
                             self->removed_ = true;
                             // An outcome waiting for the rest of its output is flushed
                             // when the stream ends (or at its backstop): then it is gone.
                             if (self->attach_request_ != 0 && self->delivery_) return;
                             self->FlushDelivery();
                             self->Gone();
                           }));
}

void Environment::Gone() {
  if (state_ == EnvironmentState::kGone) return;
  SetState(EnvironmentState::kGone);
  if (events_.on_gone) events_.on_gone(this);
}

}  // namespace ephemera::sandbox
