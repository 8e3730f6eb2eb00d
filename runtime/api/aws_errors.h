// runtime/api/aws_errors.h: the AWS error vocabulary, in one table.
//
// Every error the public API sends is one of these codes; the table decides its HTTP
// status, its x-amzn-ErrorType and whether AWS calls it a User or a Service fault
// (docs/protocols.md section 2). Outcomes of the layers below (sandbox::OutcomeKind)
// map onto it in ForOutcome, so no other file spells a status code or an error name.
// Thread: any (pure). Depends on: http (message types), sandbox (outcome kinds).
#pragma once

#include <string>

#include "runtime/http/http_message.h"
#include "runtime/sandbox/invocation.h"

namespace ephemera::api {

enum class AwsErrorCode {
  kInvalidParameterValue,  // 400 a bad parameter (name, header, field)
  kInvalidRequestContent,  // 400 the body is not what the operation takes
  kRequestHeaderTooLarge,  // 431
  kResourceNotFound,       // 404 no such function
  kUnknownOperation,       // 404 no such route
  kMethodNotAllowed,       // 405
  kResourceConflict,       // 409 the function exists already
  kRequestTooLarge,        // 413 RequestEntityTooLargeException
  kUnsupportedMediaType,   // 415
  kTooManyRequests,        // 429 (with Retry-After and Reason)
  kRequestCanceled,        // 499 the caller went away (nobody reads it)
  kService,                // 500 ephemera failed
  kResourceNotReady,       // 502 the function's image is missing
  kEngineFailed,           // 502 the engine answered with an error
  kServiceUnavailable,     // 503 the engine (or Redis) cannot be reached
};

struct AwsErrorInfo {
  int http_status;
  const char* error_type;  // x-amzn-ErrorType
  const char* fault;       // "User" or "Service", the body's Type
};

const AwsErrorInfo& Describe(AwsErrorCode code);

// The code a service outcome is reported with (kSuccess/kFunctionError are not errors:
// they answer 200; asking for them gives kService).
AwsErrorCode ForOutcome(sandbox::OutcomeKind kind);

// The AWS error response: status, x-amzn-ErrorType, x-amzn-RequestId, body
// {"Type","Message"}; a 429 also carries Retry-After and the body's Reason.
http::HttpResponse AwsError(AwsErrorCode code, const std::string& message,
                            const std::string& request_id, const std::string& reason = "");

}  // namespace ephemera::api
