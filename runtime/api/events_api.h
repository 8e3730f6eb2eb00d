// runtime/api/events_api.h: the HTTP routes of runtime/events.
//
// Lambda's event invoke config API (botocore lambda 2015-03-31; docs/protocols.md section
// 2), so `aws lambda put-function-event-invoke-config` and friends work unchanged:
//   PUT    /2019-09-25/functions/{FunctionName}/event-invoke-config       Put (replace)
//   POST   /2019-09-25/functions/{FunctionName}/event-invoke-config       Update (merge)
//   GET    /2019-09-25/functions/{FunctionName}/event-invoke-config       Get
//   DELETE /2019-09-25/functions/{FunctionName}/event-invoke-config       Delete (204)
//   GET    /2019-09-25/functions/{FunctionName}/event-invoke-config/list  List
// Destinations must name a local function other than the function itself (no loops of
// one); Qualifier may only be $LATEST. And ephemera's own routes:
//   GET    /ephemera/invocations?function=NAME&limit=N&since=MS   records, newest first
//                                                                 (with since: oldest first)
//   GET    /ephemera/invocations/{request id}                    its records (attempts) and,
//                                                                 for Event invocations, the
//                                                                 final state
//   GET    /ephemera/dlq?limit=N                                 dead letters, newest first
//   POST   /ephemera/dlq/{id}/replay                             replay one as a new Event
//   DELETE /ephemera/dlq/{id}                                    drop one
// Errors use the AWS shape (aws_errors.h); Redis unavailable is 503 ServiceException.
// Thread: the loop thread. Ownership: borrows the registry and the Events, which must
// outlive it. Depends on: http, events, registry, core.
#pragma once

#include <memory>
#include <string>

#include "registry/registry.h"
#include "runtime/events/events.h"
#include "runtime/http/router.h"

namespace ephemera::api {

class EventsApi {
 public:
  EventsApi(registry::Registry* registry, events::Events* events);
  void AddRoutes(http::Router& router);

 private:
  using Ex = std::shared_ptr<http::HttpExchange>;
  void PutConfig(const Ex& ex, const std::string& ref, bool replace);
  void GetConfig(const Ex& ex, const std::string& ref, bool as_list);
  void DeleteConfig(const Ex& ex, const std::string& ref);
  void ListInvocations(const Ex& ex);
  void GetInvocation(const Ex& ex, const std::string& id);
  void ListDeadLetters(const Ex& ex);
  void ReplayDeadLetter(const Ex& ex, const std::string& id);
  void DeleteDeadLetter(const Ex& ex, const std::string& id);
  // The function a FunctionName path parameter names, or "" after replying with the error.
  std::string Resolve(const Ex& ex, const std::string& ref, const std::string& request_id);

  registry::Registry* registry_;
  events::Events* events_;
};

}  // namespace ephemera::api
