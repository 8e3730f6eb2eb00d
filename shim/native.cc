// shim/native.cc: see native.h.
#include "shim/native.h"

#include <stdlib.h>
#include <time.h>

#include <exception>

#include "shim/modes.h"
#include "shim/runtime_api.h"
#include "shim/signals.h"

namespace ephemera::native {

long long Context::RemainingMs() const {
  if (deadline_ms <= 0) return 1LL << 40;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return deadline_ms - (ts.tv_sec * 1000LL + ts.tv_nsec / 1000000);
}

int Serve(Handler handler) {
  using shim::ShimLog;
  shim::InstallSignalHandlers(true);
  shim::Endpoint endpoint;
  if (shim::Status st = shim::UpstreamFromEnvironment(&endpoint); !st.ok()) {
    ShimLog("native mode: " + st.message());
    return 2;
  }
  shim::RuntimeApiClient api(endpoint);
  if (shim::Status st = api.Connect(1000); !st.ok()) {
    ShimLog("native mode: " + st.message());
    return 3;
  }
  int failures = 0;
  // A wait for the next event failed: 0 to try again, else the exit code.
  auto next_failed = [&](const shim::Status& st) {
    ShimLog("native mode: " + st.message());
    if (!api.IsReachable()) {
      ShimLog("native mode: the Runtime API at " + endpoint.Describe() + " is gone; exiting");
      return 3;
    }
    return ++failures >= 3 ? 1 : 0;
  };
  shim::Invocation invocation;
  bool have_event = false;  // the event came with the answer to the last result
  while (!shim::TerminationRequested()) {
    shim::Status st;
    if (!have_event) st = api.Next(&invocation);
    have_event = false;
    if (!st.ok()) {
      if (shim::TerminationRequested()) break;
      if (int code = next_failed(st); code != 0) return code;
      continue;
    }
    failures = 0;
    Context context;
    context.request_id = invocation.request_id;
    context.deadline_ms = invocation.deadline_ms;
    context.function_arn = invocation.function_arn;
    context.trace_id = invocation.trace_id;
    context.client_context = invocation.client_context;
    context.cognito_identity = invocation.cognito_identity;
    context.content_type = invocation.content_type;
    if (!invocation.trace_id.empty()) setenv("_X_AMZN_TRACE_ID", invocation.trace_id.c_str(), 1);
    Result result;
    try {
      result = handler(invocation.event, context);
    } catch (const std::exception& e) {
      result = Result::Failure("Function.UncaughtException", e.what());
    } catch (...) {
      result = Result::Failure("Function.UncaughtException", "unknown exception");
    }
    // The result and the next GET /next go in one write (see PostResponseThenNext).
    const std::string request_id = std::move(invocation.request_id);
    bool posted = false;
    st = result.ok ? api.PostResponseThenNext(request_id, std::move(result.body),
                                              result.content_type, &invocation, &posted)
                   : api.PostErrorThenNext(request_id, result.error_type, result.error_message,
                                           &invocation, &posted);
    if (st.ok()) {
      have_event = true;
      continue;
    }
    if (!posted) {
      ShimLog("native mode: cannot post the result of " + request_id + ": " + st.message());
      return api.IsReachable() ? 1 : 3;
    }
    // The result was taken; only the wait for the next event failed, as a Next can.
    if (shim::TerminationRequested()) break;
    if (int code = next_failed(st); code != 0) return code;
  }
  return 0;
}

}  // namespace ephemera::native
