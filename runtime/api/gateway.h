// runtime/api/gateway.h: the HTTP gateway, API Gateway's HTTP API in front of a function
// (Lambda proxy integration, payload format 2.0; docs/protocols.md section 6).
//
// Any method on /gateway/{function} or /gateway/{function}/{path...} becomes a format 2.0
// event (BuildGatewayEvent), the function is invoked synchronously through the same path
// as a RequestResponse Invoke (LambdaApi, lambda_api.cc), and its answer or failure becomes
// the HTTP reply (GatewayResponse), as API Gateway maps them:
//   - a JSON object with "statusCode" is a proxy response: statusCode (an integer, or a
//     string of digits, 100..599), headers (string, number or boolean values),
//     multiValueHeaders (arrays of those; they replace a header of the same name),
//     cookies (each one Set-Cookie), body (a string), isBase64Encoded (the body is decoded);
//   - any other answer (JSON or not) is the body of a 200 with content-type
//     application/json, untouched;
//   - a proxy response that breaks these rules (statusCode missing its range, a header that
//     is not a token or holds a line break, a body that is not a string or not base64) is
//     502 {"message":"Malformed Lambda proxy response: <what is wrong>"};
//   - errors carry API Gateway's bodies: a function error 502 {"message":"Internal Server
//     Error"}, a function timeout (Sandbox.Timedout) 504 {"message":"Endpoint request
//     timed out"}, throttling 429 {"message":"Too Many Requests"}, no such function 404
//     {"message":"Not Found"}, an unreachable engine 503 {"message":"Service Unavailable"},
//     any other service failure 500 {"message":"Internal Server Error"}. Where ephemera
//     knows more, X-Ephemera-Error names it (the function's errorType, the engine's error).
// Framing headers of a proxy response (Content-Length, Transfer-Encoding, Connection,
// Keep-Alive, Upgrade) are dropped: the HTTP server frames the reply itself.
// Every reply carries Apigw-Requestid (the invocation's request id).
//
// The event: version "2.0", routeKey "$default", rawPath (the request path after
// /gateway/{function} as sent, percent-encoding kept; "/" if none), rawQueryString,
// cookies (every Cookie header split at ';'; they are not repeated in headers), headers
// (names lower-cased, repeated ones joined with ","), queryStringParameters
// (percent-decoded, repeated keys joined with ","), requestContext {accountId
// 000000000000, apiId "ephemera", domainName (the Host header without its port),
// domainPrefix (its first label), http {method, path (= rawPath), protocol, sourceIp (the
// first X-Forwarded-For entry, else 127.0.0.1: the HTTP layer does not hand handlers the
// peer's address), userAgent}, requestId, routeKey, stage "$default", time
// ("12/Mar/2020:19:03:58 +0000"), timeEpoch (ms)}, pathParameters {"proxy": the decoded
// tail} when the path has a tail, isBase64Encoded, and body: as it is when it is valid
// UTF-8 without NUL bytes, else base64 (isBase64Encoded true). An empty body and empty
// query, cookie or path parameters are left out, as API Gateway does. Bytes of headers
// that are not UTF-8 are written as \u00XX (Latin-1), so the event is always valid JSON.
//
// Copies: the request body is escaped or base64-encoded straight into the event text (one
// pass); a plain answer becomes the reply's body by move; a proxy response's body is
// copied once out of the parsed tree (and decoded, if base64).
//
// Thread: any; pure functions. Depends on: http (message types), sandbox (outcome
// kinds), json, core.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/core/status.h"
#include "runtime/http/http_message.h"
#include "runtime/sandbox/invocation.h"

namespace ephemera::api {

inline constexpr char kGatewayPrefix[] = "/gateway/";

// Writes the format 2.0 event of `request` (addressed to /gateway/{function}[/...]) into
// `*event`. `proxy` is the decoded path after "/gateway/{function}/" (the router's
// catch-all parameter), or null when the path ends at the function. Fails with
// kInvalidArgument when the request target is not a /gateway/ path (the router let it in,
// so only an absolute-form target can get here) and with kTooLarge when the event would
// be larger than `max_event_bytes` (Lambda's synchronous payload limit).
Status BuildGatewayEvent(const http::HttpRequest& request, const std::string* proxy,
                         const std::string& request_id, int64_t epoch_ms, size_t max_event_bytes,
                         std::string* event);

// The reply to the gateway's client for an invocation's outcome (see the file comment).
// Takes the outcome's body (moved out of `out`).
http::HttpResponse GatewayResponse(sandbox::InvokeOutcome& out, const std::string& request_id);

// The function's answer as format 2.0 maps it: a proxy response or a plain 200.
http::HttpResponse ResponseFromAnswer(std::string answer);

// API Gateway's error reply: {"message": message}, content-type application/json, with
// `detail` (cut to 512 bytes, control characters replaced) in X-Ephemera-Error if any.
http::HttpResponse GatewayError(int status, std::string_view message, const std::string& request_id,
                                std::string_view detail = "");

// The CLF time API Gateway writes in requestContext.time: "12/Mar/2020:19:03:58 +0000".
std::string GatewayTime(int64_t epoch_ms);

}  // namespace ephemera::api
