// runtime/events/event_invoke_config.h: a function's asynchronous-invocation settings.
//
// Lambda's event invoke config (docs/protocols.md section 2, "Asynchronous invocation"):
// MaximumRetryAttempts 0..2 (default 2), MaximumEventAgeInSeconds 60..21600 (default
// 21600), DestinationConfig.OnSuccess / OnFailure .Destination (an ARN; "" = none). The
// shapes are botocore's (lambda 2015-03-31 service-2.json: PutFunctionEventInvokeConfig,
// UpdateFunctionEventInvokeConfig, FunctionEventInvokeConfig), so the AWS CLI's
// put/update/get/list/delete-function-event-invoke-config work unchanged. ephemera runs
// only Lambda destinations: a function ARN (or name) of a local function.
// Thread: any (pure). Depends on: core, json, registry (FunctionArn, ParseFunctionRef).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "runtime/core/status.h"
#include "runtime/json/json.h"

namespace ephemera::events {

inline constexpr int kDefaultMaximumRetryAttempts = 2;
inline constexpr int kDefaultMaximumEventAgeS = 21600;

struct EventInvokeConfig {
  std::optional<int> maximum_retry_attempts;  // unset = the default
  std::optional<int> maximum_event_age_s;
  std::string on_success;  // destination ARN as given, "" = none
  std::string on_failure;
  double last_modified_s = 0;  // epoch seconds (botocore's rest-json timestamp)

  int retries() const { return maximum_retry_attempts.value_or(kDefaultMaximumRetryAttempts); }
  int max_age_s() const { return maximum_event_age_s.value_or(kDefaultMaximumEventAgeS); }
  bool operator==(const EventInvokeConfig&) const = default;
};

// Reads a Put (replace = true: what is not given takes its default) or Update (replace =
// false: what is given replaces that field of *config) request body into *config.
// Unknown members are refused; so are values out of range and destinations that are not
// Lambda function ARNs. InvalidArgument names the field, as InvalidParameterValueException
// messages do.
Status ApplyEventInvokeConfig(const cJSON* body, bool replace, EventInvokeConfig* config);

// The function a destination ARN names: "arn:aws:lambda:REGION:ACCOUNT:function:NAME" with
// an optional ":$LATEST", a partial ARN or a plain name. InvalidArgument for SQS, SNS,
// EventBridge and S3 ARNs (not emulated) and anything else.
Status DestinationFunction(std::string_view arn, std::string* function);

// FunctionEventInvokeConfig as the API returns it: LastModified, FunctionArn (with
// ":$LATEST"), MaximumRetryAttempts and MaximumEventAgeInSeconds when set, and
// DestinationConfig with OnSuccess / OnFailure objects (empty when unset).
json::Json ToApiJson(const EventInvokeConfig& config, const std::string& function);

// The form kept in Redis (JSON text) and back. FromStored refuses anything malformed.
std::string ToStored(const EventInvokeConfig& config);
Status FromStored(std::string_view text, EventInvokeConfig* config);

}  // namespace ephemera::events
