// runtime/sandbox/environment.h: one execution environment = one container + its own
// Runtime API listener, with one lifecycle (docs/architecture.md "Execution environments"):
//
//   provisioning ──first /next──▶ ready ◀──────────────┐
//        │                          │ Run()            │ outcome, reusable, kept (warm)
//        │ (Provision with          ▼                  │
//        │  a first invocation) ─▶ busy ───────────────┘
//        │                          │ outcome, not kept / not reusable
//        │                          ▼
//        └──── failure ──────────▶ disposing ──container removed──▶ gone
//                                   ▲
//   ready ── idle TTL, drained (image or spec changed), lost, shutdown ──┘
//
// The state is one value (state()), never a set of flags. An invocation is one event
// handed to the environment while it is ready (or, on the cold path, queued before the
// container is created so the runtime's first GET /next takes it at once). Each
// invocation has its own deadline, log tail and Max Memory Used.
//
// The stages of provisioning, in the order they run (environment.cc reads top to bottom):
//   OpenRuntimeApi -> CreateContainer -> WatchContainer -> StartContainer -> first /next.
// An environment that failed, timed out, ran out of memory, reported an init error, or
// whose image changed (MarkNotReusable) is never handed another invocation: the owner
// disposes of it after its outcome.
//
// Thread: the loop thread. Lifetime: owned by the scheduler through a shared_ptr;
// asynchronous callbacks hold only a weak_ptr, so a callback arriving after the owner
// dropped the environment does nothing. The owner's callbacks (Events) run from loop
// callbacks and must not drop the last reference synchronously (docs/style.md rule 4);
// on_gone is the last one and comes once the container is removed.
// Depends on: core, docker, runtime_api, registry, sandbox/container_spec.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "runtime/core/uv_handle.h"
#include "runtime/docker/docker_client.h"
#include "runtime/runtime_api/runtime_api_server.h"
#include "runtime/sandbox/forwarder.h"
#include "runtime/sandbox/holders.h"
#include "runtime/sandbox/invocation.h"
#include "runtime/sandbox/log_marks.h"

namespace ephemera::sandbox {

enum class EnvironmentState { kProvisioning, kReady, kBusy, kDisposing, kGone };
const char* EnvironmentStateName(EnvironmentState state);

// Daemon-wide settings every environment shares.
struct SandboxOptions {
  std::string shim_path;  // absolute host path of the static shim, bind-mounted read-only
  std::string runtime_api_host = "127.0.0.1";
  std::string region = "us-east-1";
  uint64_t init_timeout_ms = 10000;  // start -> first /next
  std::string instance_label;        // value of ephemera.daemon on our containers
  // Isolated environments: where their socket folders are made (a host path the engine
  // can bind-mount), and the holders of their network namespaces.
  std::string runtime_dir;
  HolderPool* holders = nullptr;
  // Serves an Invoke that a function sent from inside its environment; `caller` is the
  // calling function's name. Null: such calls get 404.
  std::function<void(const std::shared_ptr<http::HttpExchange>& ex, const std::string& ref,
                     const std::string& caller)>
      invoke_handler;
  // Variables the daemon adds to a function's container beyond the Lambda ones, e.g. the
  // data store's address and credentials (runtime/store/store_users.h). Null: none.
  std::function<std::vector<std::string>(const registry::FunctionSpec& fn)> daemon_environment;
  // Host services ("host:port") the daemon lets an isolated function reach beyond its
  // spec's `forward`, e.g. Redis for a function with a store. Null: none.
  std::function<std::vector<std::string>(const registry::FunctionSpec& fn)> daemon_forwards;
};

// One event for one environment, with where its outcome goes.
struct Invocation {
  InvokeRequest request;
  InvokeDone done;
  double accepted_ms = 0;  // monotonic time the invocation was accepted (for total)
  double queued_ms = -1;   // time spent waiting for admission, if it waited
  double image_ms = -1;    // time spent resolving the image for a cold start
};

class Environment : public std::enable_shared_from_this<Environment> {
 public:
  struct Events {
    // The engine's start call returned (or provisioning ended before it): the start slot
    // this environment held is free. Exactly once.
    std::function<void(Environment*)> on_started;
    // Provisioning finished without an invocation: the runtime waits on /next.
    std::function<void(Environment*)> on_ready;
    // The current invocation has its outcome (before it is delivered to its caller).
    // The owner decides here whether to keep the environment or Dispose() it.
    std::function<void(Environment*, const InvokeOutcome&)> on_outcome;
    // The environment failed while no invocation was in it (provisioning for a pool, or
    // idle): it is being disposed.
    std::function<void(Environment*, const Status&)> on_lost;
    // The container is removed (or never existed); nothing more will be called.
    std::function<void(Environment*)> on_gone;
  };

  Environment(uv_loop_t* loop, docker::DockerClient* docker, const SandboxOptions* options,
              std::shared_ptr<const registry::FunctionSpec> spec, docker::ImageConfig image,
              StartKind kind, Events events);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  // Starts provisioning. With `first`, the invocation rides along (the cold path): its
  // event is queued before the container exists, and its outcome says kCold with the
  // create/start/init phases. Without, on_ready runs once the runtime waits on /next.
  void Provision(std::optional<Invocation> first);
  // Creates the container and stops there (created, never started: no process runs), so a
  // later Provision(first) skips the create on the cold path. Only for cold environments.
  void Prepare();
  // Prepare() was called and Provision() not yet.
  bool prepared() const { return prepare_only_; }
  // Hands an invocation to a ready environment (state kReady). The start kind of the
  // outcome is the environment's kind (warm or pool).
  void Run(Invocation invocation);
  // Never hand this environment another invocation (a failure, an image change).
  void MarkNotReusable(const std::string& why);
  // Kills and removes the container and closes the listener; the current invocation, if
  // any, gets `why` as a service error of kind `kind`. Idempotent.
  void Dispose(OutcomeKind kind = OutcomeKind::kCancelled,
               Status why = Cancelled("the environment was disposed"));

  EnvironmentState state() const { return state_; }
  bool reusable() const { return reusable_; }
  const std::string& id() const { return id_; }
  const std::string& container_id() const { return container_id_; }
  const std::string& image_id() const { return image_.id; }
  StartKind kind() const { return kind_; }
  const registry::FunctionSpec& spec() const { return *spec_; }
  const std::shared_ptr<const registry::FunctionSpec>& spec_ptr() const { return spec_; }
  // Invocations this environment has served (finished).
  uint64_t served() const { return served_; }

 private:
  // Provisioning stages.
  void OpenRuntimeApi();
  void AcquireHolder();
  bool OpenForwarders();
  void ReleaseIsolation(bool healthy);
  void CreateContainer();
  void WatchContainer();
  void StartContainer();
  // What the runtime and the engine tell us.
  void BecomeReady();  // provisioning -> ready, and tells the owner
  void OnRuntimeNext(const runtime_api::Event* handed_out);
  void OnRuntimeResponse(std::string body, std::string content_type);
  void OnRuntimeError(runtime_api::RuntimeError error);
  void OnRuntimeInitError(runtime_api::RuntimeError error);
  void OnContainerExit(Status status, int exit_code);
  void OnTimeout();
  // The end of an invocation, or of the environment.
  // Queues its event on the Runtime API, or holds it (held_event_) until DeliverHeld.
  void Hand(Invocation invocation, bool deliver = true);
  void AttachOutput(void (*on_attached)(Environment*, Status));
  void AttachThenDeliver();
  // Queues the held event; `why_without_output`, if not empty, is logged: the attach did not
  // come, so the tail will hold no output of this invocation.
  void DeliverHeld(const std::string& why_without_output);
  void Finish(InvokeOutcome outcome);
  void Fail(OutcomeKind kind, Status status);
  void FailFunction(std::string error_type, std::string message);
  // Exit 137 during an invocation: Runtime.OutOfMemory if the container's cgroup, the
  // kernel's log or the engine (asked up to 7 times over 3.15 s) says the memory limit
  // killed it, else Runtime.ExitError (at once when, in an environment's first invocation,
  // the machine counted no OOM kill since the environment was provisioned).
  void ClassifyKill(const std::string& request_id, int attempt);
  // `message`: the error message of either outcome (ClassifyKill's).
  void ReadKernelLog(const std::string& request_id, const std::string& message);
  void Lose(Status why);  // a failure with no invocation in the environment
  void FlushDelivery();   // hands a finished invocation's outcome to its caller
  // Output of stream `s` (0 stdout, 1 stderr) goes to the outcome waiting for it, else to
  // the current invocation's tail, unless that invocation's mark came first.
  void AppendOutput(int s, std::string_view text);
  void OnLogMark(int s, std::string_view request_id);
  bool MarkedOnBothStreams(const std::string& request_id) const {
    return marked_[0] == request_id && marked_[1] == request_id;
  }
  void RemoveContainer();
  void Gone();  // the container is removed and no outcome waits for output: on_gone
  void SetState(EnvironmentState state);
  void ReportStarted();

  template <typename Fn>
  auto Guard(Fn fn);

  uv_loop_t* loop_;
  docker::DockerClient* docker_;
  const SandboxOptions* options_;
  std::shared_ptr<const registry::FunctionSpec> spec_;
  docker::ImageConfig image_;
  StartKind kind_;
  Events events_;
  std::string id_;
  EnvironmentState state_ = EnvironmentState::kProvisioning;
  bool reusable_ = true;
  std::unique_ptr<runtime_api::RuntimeApiServer> runtime_api_;
  std::string holder_id_;              // isolated: the namespace this container joined
  std::string socket_dir_;             // isolated: this environment's folder of sockets
  std::vector<std::string> forwards_;  // what forwarders_ listen for ("host:port")
  std::vector<std::unique_ptr<Forwarder>> forwarders_;
  std::string container_id_;
  docker::DockerClient::RequestId wait_request_ = 0, attach_request_ = 0;
  bool attach_wanted_ = false;
  int pending_watches_ = 0;  // wait/attach registrations still awaited before start
  std::optional<runtime_api::Event> held_event_;  // waits for the attach (AttachThenDeliver)
  bool create_in_flight_ = false;
  bool removed_ = false;  // the removal was answered; gone once the attach stream ends
  bool start_reported_ = false;
  bool prepare_only_ = false;   // Prepare()d: wait for Provision() after the create
  bool created_ahead_ = false;  // the container was created before its invocation came
  bool runtime_asked_ = false;  // the runtime has called /next at least once
  Timer timer_;                 // init backstop, then the handler's deadline
  Timer delivery_timer_;        // bounds how long an outcome waits for its last log bytes
  Timer kill_timer_;            // asks the engine again whether a kill was an OOM kill

  // The invocation in the environment, if any.
  std::optional<Invocation> current_;
  bool event_taken_ = false;
  std::string logs_;
  // A finished invocation whose outcome waits for the rest of its output.
  std::optional<std::pair<InvokeOutcome, InvokeDone>> delivery_;
  // Log marks (log_marks.h): one scanner per stream (0 stdout, 1 stderr) and the request
  // id of the last mark each one read. `mark_expected_`: the current invocation's runtime
  // was asked for a mark and writes them; `delivery_marked_`, the same for delivery_'s.
  LogMarkScanner mark_scanners_[2];
  std::string marked_[2];
  bool mark_expected_ = false;
  bool delivery_marked_ = false;
  std::string delivery_id_;
  uint64_t served_ = 0;
  long oom_kills_before_ = 0;           // the container's OOM-kill count when the invocation began
  long machine_oom_kills_before_ = -1;  // the machine's, when the environment was provisioned
  int oom_fd_ = -1;                     // its cgroup file with that count, once opened (OomKills)
  // Monotonic timestamps (ms) of this environment's provisioning and current invocation.
  double t_provision_ = 0, t_created_ = 0, t_started_ = 0, t_first_next_ = 0, t_handed_ = 0;
};

}  // namespace ephemera::sandbox
