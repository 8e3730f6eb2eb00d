// shim/apigw.h: API Gateway proxy events ⇄ plain HTTP requests and responses.
//
// In http mode the shim turns an API Gateway proxy event into the real HTTP request it
// describes, sends it to the wrapped web service, and turns the service's answer into a
// Lambda proxy result. Both payload formats are understood:
//   1.0 (REST APIs): httpMethod, path, headers/multiValueHeaders,
//       queryStringParameters/multiValueQueryStringParameters, body, isBase64Encoded;
//       result {"statusCode","headers","multiValueHeaders","body","isBase64Encoded"}.
//   2.0 (HTTP APIs): version "2.0", requestContext.http.method, rawPath, rawQueryString,
//       headers (comma-joined), cookies, body, isBase64Encoded;
//       result {"statusCode","headers","cookies","body","isBase64Encoded"}.
// Paths are sent as given, except that bytes which may not appear in a request line
// (space, controls, non-ASCII, "#", "?" ...) are percent-encoded; "%" is left alone so
// already-encoded paths pass through. Query parameters of format 1.0 are percent-encoded.
// Result bodies that are valid UTF-8 are returned as text, anything else as base64.
// Hop-by-hop headers (Connection, Keep-Alive, Transfer-Encoding) and Content-Length are
// not copied in either direction; the HTTP client frames bodies itself.
// Thread: any; pure functions. Depends on: shim/json.h, shim/http_client.h.
#pragma once

#include <string>

#include "shim/http_client.h"
#include "shim/json.h"
#include "shim/status.h"

namespace ephemera::shim {

enum class ApiGatewayFormat { kNone, kV1, kV2 };

// Which proxy payload format `event` is, or kNone for any other event.
ApiGatewayFormat DetectApiGatewayFormat(const JsonValue& event) noexcept;

// Fills `request` (method, target, headers, body) from a proxy event of `format`.
// Fails only if a base64 body does not decode.
Status ApiGatewayEventToRequest(const JsonValue& event, ApiGatewayFormat format,
                                HttpRequest* request);

// The Lambda proxy result (JSON text) for the service's `response`.
std::string HttpResponseToApiGatewayResult(const HttpResponse& response, ApiGatewayFormat format);

// Percent-encodes every byte except RFC 3986 unreserved characters.
std::string PercentEncode(std::string_view s);

}  // namespace ephemera::shim
