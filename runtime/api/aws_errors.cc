#include "runtime/api/aws_errors.h"

#include "runtime/json/json.h"

namespace ephemera::api {

const AwsErrorInfo& Describe(AwsErrorCode code) {
  static const AwsErrorInfo kInvalidParameterValue{400, "InvalidParameterValueException", "User"};
  static const AwsErrorInfo kInvalidRequestContent{400, "InvalidRequestContentException", "User"};
  static const AwsErrorInfo kHeaderTooLarge{431, "RequestHeaderFieldsTooLarge", "User"};
  static const AwsErrorInfo kResourceNotFound{404, "ResourceNotFoundException", "User"};
  static const AwsErrorInfo kUnknownOperation{404, "UnknownOperationException", "User"};
  static const AwsErrorInfo kMethodNotAllowed{405, "MethodNotAllowedException", "User"};
  static const AwsErrorInfo kResourceConflict{409, "ResourceConflictException", "User"};
  static const AwsErrorInfo kRequestTooLarge{413, "RequestEntityTooLargeException", "User"};
  static const AwsErrorInfo kUnsupportedMediaType{415, "UnsupportedMediaTypeException", "User"};
  static const AwsErrorInfo kTooManyRequests{429, "TooManyRequestsException", "User"};
  static const AwsErrorInfo kRequestCanceled{499, "RequestCanceled", "User"};
  static const AwsErrorInfo kService{500, "ServiceException", "Service"};
  static const AwsErrorInfo kResourceNotReady{502, "ResourceNotReadyException", "Service"};
  static const AwsErrorInfo kEngineFailed{502, "ServiceException", "Service"};
  static const AwsErrorInfo kServiceUnavailable{503, "ServiceException", "Service"};
  switch (code) {
    case AwsErrorCode::kInvalidParameterValue: return kInvalidParameterValue;
    case AwsErrorCode::kInvalidRequestContent: return kInvalidRequestContent;
    case AwsErrorCode::kRequestHeaderTooLarge: return kHeaderTooLarge;
    case AwsErrorCode::kResourceNotFound: return kResourceNotFound;
    case AwsErrorCode::kUnknownOperation: return kUnknownOperation;
    case AwsErrorCode::kMethodNotAllowed: return kMethodNotAllowed;
    case AwsErrorCode::kResourceConflict: return kResourceConflict;
    case AwsErrorCode::kRequestTooLarge: return kRequestTooLarge;
    case AwsErrorCode::kUnsupportedMediaType: return kUnsupportedMediaType;
    case AwsErrorCode::kTooManyRequests: return kTooManyRequests;
    case AwsErrorCode::kRequestCanceled: return kRequestCanceled;
    case AwsErrorCode::kService: return kService;
    case AwsErrorCode::kResourceNotReady: return kResourceNotReady;
    case AwsErrorCode::kEngineFailed: return kEngineFailed;
    case AwsErrorCode::kServiceUnavailable: return kServiceUnavailable;
  }
  return kService;
}

AwsErrorCode ForOutcome(sandbox::OutcomeKind kind) {
  using sandbox::OutcomeKind;
  switch (kind) {
    case OutcomeKind::kThrottled: return AwsErrorCode::kTooManyRequests;
    case OutcomeKind::kImageNotReady: return AwsErrorCode::kResourceNotReady;
    case OutcomeKind::kEngineUnavailable: return AwsErrorCode::kServiceUnavailable;
    case OutcomeKind::kEngineFailed: return AwsErrorCode::kEngineFailed;
    case OutcomeKind::kCancelled: return AwsErrorCode::kRequestCanceled;
    case OutcomeKind::kInternal:
    case OutcomeKind::kSuccess:
    case OutcomeKind::kFunctionError: return AwsErrorCode::kService;
  }
  return AwsErrorCode::kService;
}

http::HttpResponse AwsError(AwsErrorCode code, const std::string& message,
                            const std::string& request_id, const std::string& reason) {
  const AwsErrorInfo& info = Describe(code);
  std::string body =
      "{\"Type\":" + json::Quote(info.fault) + ",\"Message\":" + json::Quote(message);
  if (!reason.empty()) body += ",\"Reason\":" + json::Quote(reason);
  body += "}";
  http::HttpResponse r(info.http_status, std::move(body), "application/json");
  r.headers.Set("x-amzn-ErrorType", info.error_type);
  r.headers.Set("x-amzn-RequestId", request_id);
  if (code == AwsErrorCode::kTooManyRequests) r.headers.Set("Retry-After", "1");
  return r;
}

}  // namespace ephemera::api
