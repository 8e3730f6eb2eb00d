// tests/shim/apigw_test.cc: API Gateway proxy events ⇄ HTTP requests and results.
#include "shim/apigw.h"

#include <gtest/gtest.h>

namespace ephemera::shim {
namespace {

JsonValue Parse(const std::string& text) {
  JsonValue v;
  std::string error;
  EXPECT_TRUE(JsonValue::Parse(text, &v, &error)) << error;
  return v;
}

std::vector<std::string> Values(const HttpRequest& r, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : r.headers) {
    if (EqualsIgnoreCase(k, name)) out.push_back(v);
  }
  return out;
}

// Fuzzing found these (tests/fuzz/findings/shim-apigw-*): a line break in a method,
// header or query would have split the request the shim writes to the service.
TEST(ApiGateway, LineBreaksThatWouldSmuggleARequestAreRefused) {
  for (const char* text :
       {R"({"httpMethod":"GET","path":"/","headers":{"X-A":"1\r\nX-Injected: yes"}})",
        R"({"httpMethod":"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET","path":"/"})",
        R"({"httpMethod":"GE?","path":"/ba\u00ffe64"})",  // a separator in the method
        R"({"httpMethod":"GET","path":"/","headers":{"Bad Name":"1"}})",
        R"({"version":"2.0","rawPath":"/","rawQueryString":"a=1 HTTP/1.1\r\nX: y",)"
        R"("requestContext":{"http":{"method":"GET"}}})"}) {
    JsonValue event;
    std::string error;
    ASSERT_TRUE(JsonValue::Parse(text, &event, &error)) << error;
    HttpRequest request;
    Status s = ApiGatewayEventToRequest(event, DetectApiGatewayFormat(event), &request);
    EXPECT_FALSE(s.ok()) << text;
  }
}

TEST(ApiGateway, DetectsFormats) {
  EXPECT_EQ(DetectApiGatewayFormat(Parse(R"({"httpMethod":"GET","path":"/"})")),
            ApiGatewayFormat::kV1);
  EXPECT_EQ(DetectApiGatewayFormat(Parse(
                R"({"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"GET"}}})")),
            ApiGatewayFormat::kV2);
  EXPECT_EQ(DetectApiGatewayFormat(Parse(R"({"version":"2.0","rawPath":"/"})")),
            ApiGatewayFormat::kNone);
  EXPECT_EQ(DetectApiGatewayFormat(Parse(R"({"hello":"world"})")), ApiGatewayFormat::kNone);
  EXPECT_EQ(DetectApiGatewayFormat(Parse(R"([1,2])")), ApiGatewayFormat::kNone);
}

TEST(ApiGateway, V1EventBecomesRequestWithMultiValueQueryAndHeaders) {
  JsonValue event = Parse(R"({
    "resource": "/{proxy+}", "path": "/items/a b", "httpMethod": "POST",
    "headers": {"Host": "api.example.com", "Accept": "text/plain", "Content-Length": "5",
                "X-Single": "s"},
    "multiValueHeaders": {"Accept": ["text/plain", "application/json"], "Host": ["api.example.com"]},
    "queryStringParameters": {"q": "last"},
    "multiValueQueryStringParameters": {"q": ["first", "last"], "x y": ["1&2"]},
    "body": "hello", "isBase64Encoded": false})");
  HttpRequest r;
  ASSERT_TRUE(ApiGatewayEventToRequest(event, ApiGatewayFormat::kV1, &r).ok());
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/items/a%20b?q=first&q=last&x%20y=1%262");
  EXPECT_EQ(Values(r, "Accept"), (std::vector<std::string>{"text/plain", "application/json"}));
  EXPECT_EQ(Values(r, "Host"), (std::vector<std::string>{"api.example.com"}));
  EXPECT_EQ(Values(r, "X-Single"), (std::vector<std::string>{"s"}));
  EXPECT_TRUE(Values(r, "Content-Length").empty());  // the client frames the body itself
  EXPECT_EQ(r.body, "hello");
}

TEST(ApiGateway, V1WithoutMultiValueUsesSingleMaps) {
  JsonValue event = Parse(R"({"path":"/p","httpMethod":"GET","headers":{"A":"1"},
    "queryStringParameters":{"k":"v/w"},"multiValueHeaders":null,
    "multiValueQueryStringParameters":null,"body":null})");
  HttpRequest r;
  ASSERT_TRUE(ApiGatewayEventToRequest(event, ApiGatewayFormat::kV1, &r).ok());
  EXPECT_EQ(r.target, "/p?k=v%2Fw");
  EXPECT_EQ(Values(r, "A"), (std::vector<std::string>{"1"}));
  EXPECT_EQ(r.body, "");
}

TEST(ApiGateway, V2EventBecomesRequestWithCookiesAndBase64Body) {
  std::string binary("\x00\xff\x10png", 6);
  JsonValue event = Parse(R"({"version":"2.0","routeKey":"$default","rawPath":"/upload",
    "rawQueryString":"a=1&a=2&b=%20","cookies":["c1=v1","c2=v2"],
    "headers":{"content-type":"application/octet-stream","x-multi":"a,b"},
    "requestContext":{"http":{"method":"PUT","path":"/upload"}},
    "body":")" + Base64Encode(binary) +
                          R"(","isBase64Encoded":true})");
  HttpRequest r;
  ASSERT_TRUE(ApiGatewayEventToRequest(event, ApiGatewayFormat::kV2, &r).ok());
  EXPECT_EQ(r.method, "PUT");
  EXPECT_EQ(r.target, "/upload?a=1&a=2&b=%20");
  EXPECT_EQ(Values(r, "cookie"), (std::vector<std::string>{"c1=v1; c2=v2"}));
  EXPECT_EQ(Values(r, "x-multi"), (std::vector<std::string>{"a,b"}));
  EXPECT_EQ(r.body, binary);
}

TEST(ApiGateway, BadBase64BodyIsAnError) {
  JsonValue event =
      Parse(R"({"httpMethod":"POST","path":"/","body":"***","isBase64Encoded":true})");
  HttpRequest r;
  EXPECT_FALSE(ApiGatewayEventToRequest(event, ApiGatewayFormat::kV1, &r).ok());
}

HttpResponse ServiceResponse(std::string body) {
  HttpResponse response;
  response.status = 201;
  response.headers = {{"Content-Type", "text/plain"},
                      {"Set-Cookie", "a=1; Path=/"},
                      {"set-cookie", "b=2"},
                      {"Vary", "Accept"},
                      {"Vary", "Cookie"},
                      {"Connection", "close"},
                      {"Content-Length", "99"}};
  response.body = std::move(body);
  return response;
}

TEST(ApiGateway, V1ResultHasHeadersAndMultiValueHeaders) {
  JsonValue result =
      Parse(HttpResponseToApiGatewayResult(ServiceResponse("hi \xc3\xa9"), ApiGatewayFormat::kV1));
  EXPECT_EQ(result.Find("statusCode")->text(), "201");
  const JsonValue* headers = result.Find("headers");
  EXPECT_EQ(*headers->FindString("Content-Type"), "text/plain");
  EXPECT_EQ(headers->Find("Set-Cookie"), nullptr);  // multi-valued: only in multiValueHeaders
  EXPECT_EQ(headers->Find("Connection"), nullptr);
  EXPECT_EQ(headers->Find("Content-Length"), nullptr);
  const JsonValue* multi = result.Find("multiValueHeaders");
  ASSERT_NE(multi->Find("Set-Cookie"), nullptr);
  ASSERT_EQ(multi->Find("Set-Cookie")->items().size(), 2u);
  EXPECT_EQ(multi->Find("Set-Cookie")->items()[1].text(), "b=2");
  EXPECT_EQ(multi->Find("Vary")->items().size(), 2u);
  EXPECT_EQ(*result.FindString("body"), "hi \xc3\xa9");
  EXPECT_FALSE(result.Find("isBase64Encoded")->bool_value());
}

TEST(ApiGateway, V2ResultHasCookiesAndBase64ForBinary) {
  std::string binary("\x89PNG\r\n\x1a\n\x00", 9);
  JsonValue result =
      Parse(HttpResponseToApiGatewayResult(ServiceResponse(binary), ApiGatewayFormat::kV2));
  const JsonValue* headers = result.Find("headers");
  EXPECT_EQ(*headers->FindString("Vary"), "Accept, Cookie");
  EXPECT_EQ(headers->Find("Set-Cookie"), nullptr);
  const JsonValue* cookies = result.Find("cookies");
  ASSERT_EQ(cookies->items().size(), 2u);
  EXPECT_EQ(cookies->items()[0].text(), "a=1; Path=/");
  EXPECT_TRUE(result.Find("isBase64Encoded")->bool_value());
  std::string decoded;
  ASSERT_TRUE(Base64Decode(*result.FindString("body"), &decoded));
  EXPECT_EQ(decoded, binary);
}

}  // namespace
}  // namespace ephemera::shim
