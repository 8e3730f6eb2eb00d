// runtime/invoke/cold_invocation.h: one invocation in one fresh container.
//
// The stages, in the order they run (cold_invocation.cc reads top to bottom):
//   ResolveImage -> OpenEnvironment -> CreateContainer -> WatchContainer ->
//   StartContainer -> [the runtime takes the event, runs, answers] -> Finish ->
//   Dispose
// Every stage is timed; PhaseTimes goes back in the outcome. Finish runs exactly
// once, whichever comes first: the runtime's response or error, an init error, the
// container exiting, the timeout, a failed stage, or Cancel(). Dispose removes the
// container (force, so it is killed too) and closes the Runtime API listener.
//
// Thread: the loop thread. Lifetime: owned by the Invoker through a shared_ptr;
// every asynchronous callback holds only a weak_ptr, so a callback that arrives
// after the Invoker retired the invocation does nothing.
// Depends on: core, docker, runtime_api, registry.
#pragma once

#include <memory>
#include <string>

#include "runtime/core/uv_handle.h"
#include "runtime/invoke/invoker.h"
#include "runtime/runtime_api/runtime_api_server.h"

namespace ephemera::invoke {

class ColdInvocation : public std::enable_shared_from_this<ColdInvocation> {
 public:
  ColdInvocation(Invoker* owner, Invoker::Handle handle, InvokeRequest request, Invoker::Done done);
  ~ColdInvocation();

  void Begin();
  void Cancel();

  Invoker::Handle handle() const { return handle_; }
  const std::string& function_name() const { return request_.function->name; }
  bool finished() const { return finished_; }

 private:
  // The stages.
  void ResolveImage();
  void OpenEnvironment(const docker::ImageConfig& image);
  void CreateContainer(const docker::ImageConfig& image);
  void WatchContainer();
  void StartContainer();
  // What the runtime and the engine tell us.
  void OnRuntimeNext(const runtime_api::Event* handed_out);
  void OnRuntimeResponse(std::string body, std::string content_type);
  void OnRuntimeError(runtime_api::RuntimeError error);
  void OnRuntimeInitError(runtime_api::RuntimeError error);
  void OnContainerExit(Status status, int exit_code);
  void OnTimeout();
  // The end.
  void Finish(InvokeOutcome outcome);
  void FailService(int http_status, std::string code, Status status);
  void FailFunction(std::string error_type, std::string message);
  void Dispose();
  void Deliver();  // hands the outcome to `done_` (once)

  // Runs `fn` only if this invocation is still owned.
  template <typename Fn>
  auto Guard(Fn fn);

  Invoker* owner_;
  Invoker::Handle handle_;
  InvokeRequest request_;
  Invoker::Done done_;
  std::unique_ptr<runtime_api::RuntimeApiServer> environment_;
  std::string container_id_;
  Timer timer_;
  Timer logs_grace_;
  InvokeOutcome outcome_;
  std::string logs_;
  bool finished_ = false;
  bool delivered_ = false;
  bool disposing_ = false;
  bool wait_ready_ = false;
  bool attach_ready_ = false;
  bool attach_ended_ = false;
  bool started_ = false;
  bool create_in_flight_ = false;
  bool event_taken_ = false;
  // Monotonic timestamps (ms).
  double t_begin_ = 0, t_image_ = 0, t_created_ = 0, t_started_ = 0, t_next_ = 0;
};

}  // namespace ephemera::invoke
