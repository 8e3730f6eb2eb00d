// The HTTP gateway's two conversions (runtime/api/gateway.h): a request into an API Gateway
// payload format 2.0 event, and a function's answer or failure into the HTTP reply.
#include "runtime/api/gateway.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "runtime/core/base64.h"
#include "runtime/http/router.h"
#include "runtime/json/json.h"

namespace ephemera::api {
namespace {

constexpr int64_t kEpochMs = 1583348638390;  // 04/Mar/2020:19:03:58 +0000
constexpr size_t kLimit = 6291456;

http::HttpRequest Request(std::string method, std::string target, std::string body = "") {
  http::HttpRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  size_t q = r.target.find('?');
  r.path = http::PercentDecode(r.target.substr(0, q)).value_or("");
  r.query = q == std::string::npos ? "" : r.target.substr(q + 1);
  r.body = std::move(body);
  return r;
}

json::Json Event(const http::HttpRequest& req, const std::string* proxy) {
  std::string event;
  Status s = BuildGatewayEvent(req, proxy, "req-1", kEpochMs, kLimit, &event);
  EXPECT_TRUE(s.ok()) << s.message();
  json::Json j = json::Parse(event);
  EXPECT_NE(j, nullptr) << event;
  return j;
}

const cJSON* Item(const cJSON* j, const char* key) {
  return cJSON_GetObjectItemCaseSensitive(j, key);
}

std::vector<std::string> Values(const http::HttpResponse& r, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : r.headers.items()) {
    if (http::EqualsIgnoreCase(k, name)) out.push_back(v);
  }
  return out;
}

// ---- the event ----

TEST(GatewayEvent, HasEveryFormat2FieldOfTheRequest) {
  http::HttpRequest req = Request("GET", "/gateway/webapp/cgi-bin/hello?name=ada&x=%41+b&name=bob");
  req.headers.Add("Host", "127.0.0.1:9000");
  req.headers.Add("User-Agent", "curl/7.88.1");
  req.headers.Add("X-Multi", "a");
  req.headers.Add("x-multi", "b");
  req.headers.Add("Cookie", "a=1; b=2");
  req.headers.Add("Cookie", "c=3");
  std::string proxy = "cgi-bin/hello";
  json::Json e = Event(req, &proxy);
  ASSERT_NE(e, nullptr);
  const cJSON* j = e.get();
  EXPECT_EQ(json::GetString(j, "version"), "2.0");
  EXPECT_EQ(json::GetString(j, "routeKey"), "$default");
  EXPECT_EQ(json::GetString(j, "rawPath"), "/cgi-bin/hello");
  EXPECT_EQ(json::GetString(j, "rawQueryString"), "name=ada&x=%41+b&name=bob");
  EXPECT_EQ(json::GetStringArray(j, "cookies"), (std::vector<std::string>{"a=1", "b=2", "c=3"}));
  const cJSON* headers = Item(j, "headers");
  EXPECT_EQ(json::GetString(headers, "host"), "127.0.0.1:9000");
  EXPECT_EQ(json::GetString(headers, "x-multi"), "a,b");
  EXPECT_EQ(json::GetString(headers, "user-agent"), "curl/7.88.1");
  EXPECT_EQ(Item(headers, "cookie"), nullptr) << "cookies travel in cookies[]";
  const cJSON* query = Item(j, "queryStringParameters");
  EXPECT_EQ(json::GetString(query, "name"), "ada,bob");
  EXPECT_EQ(json::GetString(query, "x"), "A+b");
  const cJSON* ctx = Item(j, "requestContext");
  EXPECT_EQ(json::GetString(ctx, "accountId"), "000000000000");
  EXPECT_EQ(json::GetString(ctx, "apiId"), "ephemera");
  EXPECT_EQ(json::GetString(ctx, "domainName"), "127.0.0.1");
  EXPECT_EQ(json::GetString(ctx, "domainPrefix"), "127");
  EXPECT_EQ(json::GetString(ctx, "requestId"), "req-1");
  EXPECT_EQ(json::GetString(ctx, "routeKey"), "$default");
  EXPECT_EQ(json::GetString(ctx, "stage"), "$default");
  EXPECT_EQ(json::GetString(ctx, "time"), "04/Mar/2020:19:03:58 +0000");
  EXPECT_EQ(json::GetNumber(ctx, "timeEpoch"), static_cast<double>(kEpochMs));
  const cJSON* http = Item(ctx, "http");
  EXPECT_EQ(json::GetString(http, "method"), "GET");
  EXPECT_EQ(json::GetString(http, "path"), "/cgi-bin/hello");
  EXPECT_EQ(json::GetString(http, "protocol"), "HTTP/1.1");
  EXPECT_EQ(json::GetString(http, "sourceIp"), "127.0.0.1");
  EXPECT_EQ(json::GetString(http, "userAgent"), "curl/7.88.1");
  EXPECT_EQ(json::GetString(Item(j, "pathParameters"), "proxy"), "cgi-bin/hello");
  EXPECT_EQ(json::GetBool(j, "isBase64Encoded"), false);
  EXPECT_EQ(Item(j, "body"), nullptr) << "no body, no field";
}

TEST(GatewayEvent, APathThatEndsAtTheFunctionIsSlashWithoutPathParameters) {
  for (const char* target : {"/gateway/echo", "/gateway/echo/"}) {
    http::HttpRequest req = Request("POST", target, R"({"hi":1})");
    std::string empty;
    json::Json e = Event(req, target[std::string(target).size() - 1] == '/' ? &empty : nullptr);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(json::GetString(e.get(), "rawPath"), "/") << target;
    EXPECT_EQ(json::GetString(e.get(), "rawQueryString"), "");
    EXPECT_EQ(Item(e.get(), "pathParameters"), nullptr);
    EXPECT_EQ(Item(e.get(), "queryStringParameters"), nullptr);
    EXPECT_EQ(Item(e.get(), "cookies"), nullptr);
    EXPECT_EQ(json::GetString(e.get(), "body"), R"({"hi":1})");
    EXPECT_EQ(json::GetString(Item(e.get(), "requestContext"), "domainName"), "localhost");
  }
}

TEST(GatewayEvent, RawPathKeepsPercentEncodingAndProxyIsDecoded) {
  http::HttpRequest req = Request("GET", "/gateway/echo/a%20b/c%2Fd");
  std::string proxy = "a b/c/d";
  json::Json e = Event(req, &proxy);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(json::GetString(e.get(), "rawPath"), "/a%20b/c%2Fd");
  EXPECT_EQ(json::GetString(Item(e.get(), "pathParameters"), "proxy"), "a b/c/d");
}

TEST(GatewayEvent, AnAbsoluteFormTargetGivesTheSamePath) {
  http::HttpRequest req = Request("GET", "http://example.com:9000/gateway/echo/x?y=1");
  std::string proxy = "x";
  json::Json e = Event(req, &proxy);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(json::GetString(e.get(), "rawPath"), "/x");
  std::string event;
  EXPECT_EQ(
      BuildGatewayEvent(Request("GET", "/elsewhere/x"), nullptr, "r", kEpochMs, kLimit, &event)
          .code(),
      StatusCode::kInvalidArgument);
}

TEST(GatewayEvent, TextBodiesStayTextAndOthersAreBase64) {
  std::string text = "line\n\t\"quoted\" \\ ☃ \x01 end";
  json::Json e = Event(Request("POST", "/gateway/echo", text), nullptr);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(json::GetString(e.get(), "body"), text);
  EXPECT_EQ(json::GetBool(e.get(), "isBase64Encoded"), false);

  for (std::string binary :
       {std::string("\xff\xfe\x00\x01", 4), std::string("nul\0inside", 10), std::string("\xc0\xaf"),
        std::string("\xed\xa0\x80"), std::string("cut \xe2\x98")}) {
    json::Json b = Event(Request("POST", "/gateway/echo", binary), nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(json::GetBool(b.get(), "isBase64Encoded"), true);
    EXPECT_EQ(Base64Decode(json::GetString(b.get(), "body").value_or("")), binary);
  }
  // Every length modulo 3, so the padding is right.
  for (std::string binary : {std::string("\xff"), std::string("\xff\x01"),
                             std::string("\xff\x01\x02"), std::string("\xff\x01\x02\x03")}) {
    json::Json b = Event(Request("POST", "/gateway/echo", binary), nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(json::GetString(b.get(), "body"), Base64Encode(binary));
  }
}

TEST(GatewayEvent, HeaderBytesThatAreNotUtf8StillMakeValidJson) {
  http::HttpRequest req = Request("GET", "/gateway/echo");
  req.headers.Add("X-Latin", "caf\xe9");
  req.headers.Add("X-Quote", "say \"hi\"\\");
  json::Json e = Event(req, nullptr);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(json::GetString(Item(e.get(), "headers"), "x-latin"), "caf\xc3\xa9");
  EXPECT_EQ(json::GetString(Item(e.get(), "headers"), "x-quote"), "say \"hi\"\\");
}

TEST(GatewayEvent, SourceIpIsTheFirstForwardedAddress) {
  http::HttpRequest req = Request("GET", "/gateway/echo");
  req.headers.Add("X-Forwarded-For", " 203.0.113.7 , 10.0.0.1");
  req.http_minor = 0;
  json::Json e = Event(req, nullptr);
  ASSERT_NE(e, nullptr);
  const cJSON* http = Item(Item(e.get(), "requestContext"), "http");
  EXPECT_EQ(json::GetString(http, "sourceIp"), "203.0.113.7");
  EXPECT_EQ(json::GetString(http, "protocol"), "HTTP/1.0");
}

TEST(GatewayEvent, AnEventOverTheLimitIsRefused) {
  std::string event;
  Status s = BuildGatewayEvent(Request("POST", "/gateway/echo", std::string(1000, 'x')), nullptr,
                               "r", kEpochMs, 900, &event);
  EXPECT_EQ(s.code(), StatusCode::kTooLarge);
  s = BuildGatewayEvent(Request("POST", "/gateway/echo", std::string(1000, '\xff')), nullptr, "r",
                        kEpochMs, 1200, &event);
  EXPECT_EQ(s.code(), StatusCode::kTooLarge) << "base64 grows a body by a third";
  EXPECT_NE(s.message().find("1200"), std::string::npos) << s.message();
}

TEST(GatewayEvent, TimeIsCommonLogFormatInUtc) {
  EXPECT_EQ(GatewayTime(0), "01/Jan/1970:00:00:00 +0000");
  EXPECT_EQ(GatewayTime(1583348638390), "04/Mar/2020:19:03:58 +0000");
}

TEST(GatewayRoutes, TheCatchAllTakesTheRestOfThePath) {
  http::Router::Params p;
  EXPECT_TRUE(http::Router::Match("/gateway/{}/{...}", "/gateway/fn/a/b/c", &p));
  EXPECT_EQ(p, (http::Router::Params{"fn", "a/b/c"}));
  EXPECT_TRUE(http::Router::Match("/gateway/{}/{...}", "/gateway/fn/", &p));
  EXPECT_EQ(p, (http::Router::Params{"fn", ""}));
  EXPECT_FALSE(http::Router::Match("/gateway/{}/{...}", "/gateway/fn", &p));
  EXPECT_TRUE(http::Router::Match("/gateway/{}", "/gateway/fn", &p));
  EXPECT_FALSE(http::Router::Match("/gateway/{}/{...}", "/gateway//x", &p));
}

// ---- the answer ----

TEST(GatewayResponse, AProxyResponseGivesItsStatusHeadersCookiesAndBody) {
  http::HttpResponse r = ResponseFromAnswer(
      R"({"statusCode":201,"headers":{"Content-Type":"text/html","X-Num":7,"X-Old":"gone"},)"
      R"("multiValueHeaders":{"x-old":["one","two"]},"cookies":["a=1; Path=/","b=2"],)"
      R"("body":"<p>hi</p>","isBase64Encoded":false})");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "<p>hi</p>");
  EXPECT_EQ(r.headers.Get("content-type").value_or(""), "text/html");
  EXPECT_EQ(r.headers.Get("X-Num").value_or(""), "7");
  EXPECT_EQ(Values(r, "X-Old"), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(Values(r, "Set-Cookie"), (std::vector<std::string>{"a=1; Path=/", "b=2"}));
}

TEST(GatewayResponse, ABase64BodyIsDecoded) {
  std::string binary("\x00\xff\x10", 3);
  http::HttpResponse r = ResponseFromAnswer(R"({"statusCode":"200","body":")" +
                                            Base64Encode(binary) + R"(","isBase64Encoded":true})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, binary);
}

TEST(GatewayResponse, AnyOtherAnswerIsTheBodyOfA200) {
  for (std::string answer :
       {std::string(R"({"hello":"world","nested":{"statusCode":1}})"), std::string("[1,2]"),
        std::string("\"text\""), std::string("42"), std::string("not json at all"),
        std::string("{broken"), std::string("")}) {
    http::HttpResponse r = ResponseFromAnswer(answer);
    EXPECT_EQ(r.status, 200) << answer;
    EXPECT_EQ(r.body, answer);
    EXPECT_EQ(r.headers.Get("Content-Type").value_or(""), "application/json");
  }
}

TEST(GatewayResponse, AnInvalidStatusCodeIsA502NamingIt) {
  for (const char* answer :
       {R"({"statusCode":42})", R"({"statusCode":600,"body":"x"})", R"({"statusCode":200.5})",
        R"({"statusCode":"abc"})", R"({"statusCode":null})", R"({"statusCode":1e999})"}) {
    http::HttpResponse r = ResponseFromAnswer(answer);
    EXPECT_EQ(r.status, 502) << answer;
    json::Json j = json::Parse(r.body);
    ASSERT_NE(j, nullptr) << r.body;
    std::string message = json::GetString(j.get(), "message").value_or("");
    EXPECT_NE(message.find("Malformed Lambda proxy response: statusCode"), std::string::npos)
        << message;
  }
}

TEST(GatewayResponse, HeadersThatWouldBreakTheReplyAreA502) {
  for (const char* answer :
       {R"({"statusCode":200,"headers":{"X-A":"one\r\nX-Injected: yes"}})",
        R"({"statusCode":200,"headers":{"Bad Name":"v"}})",
        R"({"statusCode":200,"headers":{"X-A":{"nested":1}}})",
        R"({"statusCode":200,"headers":"no"})",
        R"({"statusCode":200,"multiValueHeaders":{"X-A":"not an array"}})",
        R"({"statusCode":200,"cookies":[1]})", R"({"statusCode":200,"cookies":["a=1\nb"]})",
        R"({"statusCode":200,"body":{"object":true}})",
        R"({"statusCode":200,"body":"***","isBase64Encoded":true})",
        R"({"statusCode":200,"isBase64Encoded":"yes"})"}) {
    http::HttpResponse r = ResponseFromAnswer(answer);
    EXPECT_EQ(r.status, 502) << answer;
    EXPECT_NE(r.body.find("Malformed Lambda proxy response"), std::string::npos) << r.body;
    EXPECT_EQ(r.headers.Get("X-Injected"), std::nullopt);
  }
}

TEST(GatewayResponse, FramingHeadersOfTheFunctionAreDropped) {
  http::HttpResponse r = ResponseFromAnswer(
      R"({"statusCode":200,"headers":{"Content-Length":"999","Transfer-Encoding":"chunked",)"
      R"("Connection":"close","X-Kept":"yes"},"body":"ok"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.headers.Has("Content-Length"));
  EXPECT_FALSE(r.headers.Has("Transfer-Encoding"));
  EXPECT_FALSE(r.headers.Has("Connection"));
  EXPECT_EQ(r.headers.Get("X-Kept").value_or(""), "yes");
}

TEST(GatewayResponse, OutcomesMapToApiGatewayErrors) {
  using sandbox::OutcomeKind;
  struct Case {
    OutcomeKind kind;
    const char* error_type;
    int status;
    const char* body;
  };
  for (const Case& c : {
           Case{OutcomeKind::kFunctionError, "Runtime.ExitError", 502,
                R"({"message":"Internal Server Error"})"},
           Case{OutcomeKind::kFunctionError, "Sandbox.Timedout", 504,
                R"({"message":"Endpoint request timed out"})"},
           Case{OutcomeKind::kThrottled, "", 429, R"({"message":"Too Many Requests"})"},
           Case{OutcomeKind::kEngineUnavailable, "", 503, R"({"message":"Service Unavailable"})"},
           Case{OutcomeKind::kImageNotReady, "", 500, R"({"message":"Internal Server Error"})"},
           Case{OutcomeKind::kInternal, "", 500, R"({"message":"Internal Server Error"})"},
       }) {
    sandbox::InvokeOutcome out;
    out.kind = c.kind;
    out.error_type = c.error_type;
    out.body = R"({"errorType":"x","errorMessage":"y"})";
    out.status = Internal("what went\r\nwrong");
    http::HttpResponse r = GatewayResponse(out, "req-9");
    EXPECT_EQ(r.status, c.status) << c.error_type;
    EXPECT_EQ(r.body, c.body);
    EXPECT_EQ(r.headers.Get("Content-Type").value_or(""), "application/json");
    EXPECT_EQ(r.headers.Get("Apigw-Requestid").value_or(""), "req-9");
    std::string detail(r.headers.Get("X-Ephemera-Error").value_or(""));
    EXPECT_FALSE(detail.empty());
    EXPECT_EQ(detail.find_first_of("\r\n"), std::string::npos) << detail;
  }
  sandbox::InvokeOutcome ok;
  ok.kind = OutcomeKind::kSuccess;
  ok.body = R"({"statusCode":418,"body":"teapot"})";
  http::HttpResponse r = GatewayResponse(ok, "req-10");
  EXPECT_EQ(r.status, 418);
  EXPECT_EQ(r.body, "teapot");
  EXPECT_EQ(r.headers.Get("Apigw-Requestid").value_or(""), "req-10");
}

TEST(GatewayError, UnknownFunctionIsApiGatewaysNotFound) {
  http::HttpResponse r = GatewayError(404, "Not Found", "req-1", "no function nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"message":"Not Found"})");
  EXPECT_EQ(r.headers.Get("X-Ephemera-Error").value_or(""), "no function nope");
}

// Bad input never crashes: random bytes and mutated proxy responses through both sides.
TEST(GatewayFuzzish, RandomInputGivesAReplyOrAnError) {
  std::mt19937 rng(12345);
  const std::string seed =
      R"({"statusCode":200,"headers":{"a":"b"},"multiValueHeaders":{"a":["c"]},)"
      R"("cookies":["x=1"],"body":"aGk=","isBase64Encoded":true})";
  for (int i = 0; i < 3000; ++i) {
    std::string s = seed;
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < edits; ++k) {
      size_t at = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0: s.insert(at, 1, static_cast<char>(rng())); break;
        case 1:
          if (at < s.size()) s.erase(at, 1);
          break;
        default:
          if (at < s.size()) s[at] = static_cast<char>(rng());
      }
    }
    http::HttpResponse r = ResponseFromAnswer(s);
    EXPECT_GE(r.status, 100);
    EXPECT_LE(r.status, 599);

    http::HttpRequest req = Request("PUT", "/gateway/fn/" + s.substr(0, 20) + "?" + s, s);
    req.headers.Add(s.substr(0, 5), s);
    req.headers.Add("Cookie", s);
    std::string proxy = s.substr(0, 20), event;
    if (BuildGatewayEvent(req, &proxy, "r", kEpochMs, kLimit, &event).ok()) {
      EXPECT_NE(json::Parse(event), nullptr) << event;
    }
  }
}

}  // namespace
}  // namespace ephemera::api
