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
  while (!shim::TerminationRequested()) {
    shim::Invocation invocation;
    shim::Status st = api.Next(&invocation);
    if (!st.ok()) {
      if (shim::TerminationRequested()) break;
      ShimLog("native mode: " + st.message());
      if (!api.IsReachable()) {
        ShimLog("native mode: the Runtime API at " + endpoint.Describe() + " is gone; exiting");
        return 3;
      }
      if (++failures >= 3) return 1;
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
    st = result.ok
             ? api.PostResponse(invocation.request_id, std::move(result.body), result.content_type)
             : api.PostError(invocation.request_id, result.error_type, result.error_message);
    if (!st.ok()) {
      ShimLog("native mode: cannot post the result of " + invocation.request_id + ": " +
              st.message());
      return api.IsReachable() ? 1 : 3;
    }
  }
  return 0;
}

}  // namespace ephemera::native
