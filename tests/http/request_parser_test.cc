// Tests of RequestParser: bytes in, one request (or one refusal) out, no socket.
#include "runtime/http/request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ephemera::http {
namespace {

using Result = RequestParser::Result;

RequestParser::Limits SmallLimits(size_t header_bytes, size_t body_bytes) {
  RequestParser::Limits limits;
  limits.max_header_bytes = header_bytes;
  limits.max_body_bytes = body_bytes;
  return limits;
}

// Feeds `wire` in pieces of at most `piece` bytes, the way a socket might hand
// them over, and collects every request (or the first error).
struct Outcome {
  std::vector<HttpRequest> requests;
  int error_status = 0;
  std::string error_message;
};

Outcome FeedInPieces(RequestParser& parser, const std::string& wire, size_t piece) {
  Outcome out;
  std::string pending;
  size_t offset = 0;
  while (offset < wire.size() || !pending.empty()) {
    if (offset < wire.size()) {
      size_t n = std::min(piece, wire.size() - offset);
      pending.append(wire, offset, n);
      offset += n;
    }
    while (!pending.empty()) {
      size_t used = 0;
      Result r = parser.Feed(pending.data(), pending.size(), &used);
      EXPECT_LE(used, pending.size());
      pending.erase(0, used);
      if (r == Result::kError) {
        out.error_status = parser.error_status();
        out.error_message = parser.error_message();
        return out;
      }
      if (r == Result::kNeedMore) {
        EXPECT_TRUE(pending.empty()) << "kNeedMore must consume everything";
        break;
      }
      out.requests.push_back(parser.TakeRequest());
    }
    if (offset >= wire.size()) break;
  }
  return out;
}

const char kPost[] =
    "POST /2015-03-31/functions/%24LATEST/invocations?Qualifier=%24LATEST&x HTTP/1.1\r\n"
    "Host: localhost:9000\r\n"
    "X-Amz-Invocation-Type: RequestResponse\r\n"
    "X-Empty:\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "{\"key\":\"v1\"}\n";

void ExpectIsThePost(const HttpRequest& req) {
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/2015-03-31/functions/%24LATEST/invocations?Qualifier=%24LATEST&x");
  EXPECT_EQ(req.path, "/2015-03-31/functions/$LATEST/invocations");
  EXPECT_EQ(req.query, "Qualifier=%24LATEST&x");
  EXPECT_EQ(req.QueryParam("Qualifier"), "$LATEST");
  EXPECT_EQ(req.QueryParam("x"), "");
  EXPECT_EQ(req.QueryParam("missing"), std::nullopt);
  EXPECT_EQ(req.headers.Get("host"), "localhost:9000");
  EXPECT_EQ(req.headers.Get("X-AMZ-INVOCATION-TYPE"), "RequestResponse");
  EXPECT_EQ(req.headers.Get("x-empty"), "");
  EXPECT_EQ(req.headers.Get("content-type"), "application/json");
  EXPECT_EQ(req.headers.size(), 5u);
  EXPECT_EQ(req.body, "{\"key\":\"v1\"}\n");
  EXPECT_EQ(req.http_minor, 1);
  EXPECT_TRUE(req.keep_alive);
}

TEST(RequestParser, ParsesAWholeRequestInOneRead) {
  RequestParser parser({}, nullptr);
  std::string wire = kPost;
  size_t used = 0;
  ASSERT_EQ(parser.Feed(wire.data(), wire.size(), &used), Result::kRequest);
  EXPECT_EQ(used, wire.size());
  ExpectIsThePost(parser.TakeRequest());
}

TEST(RequestParser, SameRequestWhenSplitAtEveryByteBoundary) {
  std::string wire = kPost;
  for (size_t split = 1; split < wire.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    RequestParser parser({}, nullptr);
    size_t used = 0;
    ASSERT_EQ(parser.Feed(wire.data(), split, &used), Result::kNeedMore);
    ASSERT_EQ(used, split);
    ASSERT_EQ(parser.Feed(wire.data() + split, wire.size() - split, &used), Result::kRequest);
    ASSERT_EQ(used, wire.size() - split);
    ExpectIsThePost(parser.TakeRequest());
  }
}

TEST(RequestParser, SameRequestWhenFedOneByteAtATime) {
  RequestParser parser({}, nullptr);
  Outcome out = FeedInPieces(parser, kPost, 1);
  ASSERT_EQ(out.error_status, 0) << out.error_message;
  ASSERT_EQ(out.requests.size(), 1u);
  ExpectIsThePost(out.requests[0]);
}

TEST(RequestParser, PipelinedRequestsComeOutOneAtATime) {
  const std::string a = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string b = "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  const std::string c = "GET /c HTTP/1.1\r\n\r\n";
  std::string wire = a + b + c;
  RequestParser parser({}, nullptr);

  size_t used = 0;
  ASSERT_EQ(parser.Feed(wire.data(), wire.size(), &used), Result::kRequest);
  EXPECT_EQ(used, a.size());
  EXPECT_EQ(parser.TakeRequest().path, "/a");
  size_t offset = used;

  ASSERT_EQ(parser.Feed(wire.data() + offset, wire.size() - offset, &used), Result::kRequest);
  EXPECT_EQ(used, b.size());
  HttpRequest rb = parser.TakeRequest();
  EXPECT_EQ(rb.path, "/b");
  EXPECT_EQ(rb.body, "abc");
  offset += used;

  ASSERT_EQ(parser.Feed(wire.data() + offset, wire.size() - offset, &used), Result::kRequest);
  EXPECT_EQ(used, c.size());
  HttpRequest rc = parser.TakeRequest();
  EXPECT_EQ(rc.path, "/c");
  EXPECT_TRUE(rc.headers.items().empty());
  EXPECT_TRUE(rc.body.empty());
}

TEST(RequestParser, TwoPipelinedRequestsSplitAtEveryByteBoundary) {
  const std::string a = "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
  const std::string b = "GET /b?q=1 HTTP/1.1\r\nX-B: 2\r\n\r\n";
  std::string wire = a + b;
  for (size_t piece = 1; piece <= wire.size(); ++piece) {
    SCOPED_TRACE("piece " + std::to_string(piece));
    RequestParser parser({}, nullptr);
    Outcome out = FeedInPieces(parser, wire, piece);
    ASSERT_EQ(out.error_status, 0) << out.error_message;
    ASSERT_EQ(out.requests.size(), 2u);
    EXPECT_EQ(out.requests[0].path, "/a");
    EXPECT_EQ(out.requests[0].body, "hi");
    EXPECT_EQ(out.requests[1].path, "/b");
    EXPECT_EQ(out.requests[1].QueryParam("q"), "1");
    EXPECT_EQ(out.requests[1].headers.Get("x-b"), "2");
    EXPECT_TRUE(out.requests[1].body.empty());
  }
}

TEST(RequestParser, ChunkedBodyIsReassembled) {
  std::string wire =
      "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n"
      "7;ext=1\r\n, world\r\n"
      "0\r\nX-Trailer: t\r\n\r\n"
      "GET /next HTTP/1.1\r\n\r\n";
  for (size_t piece : {wire.size(), size_t{1}, size_t{3}}) {
    SCOPED_TRACE("piece " + std::to_string(piece));
    RequestParser parser({}, nullptr);
    Outcome out = FeedInPieces(parser, wire, piece);
    ASSERT_EQ(out.error_status, 0) << out.error_message;
    ASSERT_EQ(out.requests.size(), 2u);
    EXPECT_EQ(out.requests[0].body, "hello, world");
    EXPECT_EQ(out.requests[0].headers.Get("transfer-encoding"), "chunked");
    EXPECT_EQ(out.requests[1].path, "/next");
  }
}

TEST(RequestParser, BodyIsBinarySafe) {
  std::string body("a\0b\r\n\0\xff", 7);
  std::string wire = "POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\n" + body;
  RequestParser parser({}, nullptr);
  Outcome out = FeedInPieces(parser, wire, 2);
  ASSERT_EQ(out.requests.size(), 1u);
  EXPECT_EQ(out.requests[0].body, body);
}

TEST(RequestParser, ChunkedWithContentLengthIsRefused) {
  // Both framings at once is the request-smuggling shape: 400, never a guess.
  std::string wire =
      "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\n";
  RequestParser parser({}, nullptr);
  Outcome out = FeedInPieces(parser, wire, wire.size());
  EXPECT_EQ(out.error_status, 400);
}

TEST(RequestParser, HeaderBlockOverTheLimitIs431) {
  RequestParser parser(SmallLimits(256, 1024), nullptr);
  std::string wire = "GET / HTTP/1.1\r\nX-Big: " + std::string(300, 'a') + "\r\n\r\n";
  Outcome out = FeedInPieces(parser, wire, 7);
  EXPECT_EQ(out.error_status, 431);
  EXPECT_TRUE(out.requests.empty());
}

TEST(RequestParser, ManySmallHeadersOverTheLimitAre431) {
  RequestParser parser(SmallLimits(256, 1024), nullptr);
  std::string wire = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 40; ++i) wire += "X-H" + std::to_string(i) + ": v\r\n";
  wire += "\r\n";
  Outcome out = FeedInPieces(parser, wire, wire.size());
  EXPECT_EQ(out.error_status, 431);
}

TEST(RequestParser, LongTargetIs431) {
  RequestParser parser(SmallLimits(256, 1024), nullptr);
  std::string wire = "GET /" + std::string(400, 'p') + " HTTP/1.1\r\n\r\n";
  Outcome out = FeedInPieces(parser, wire, 16);
  EXPECT_EQ(out.error_status, 431);
}

TEST(RequestParser, HeaderLimitIsPerRequest) {
  // Two requests each under the limit, together over it: both pass.
  RequestParser parser(SmallLimits(100, 1024), nullptr);
  std::string one = "GET /x HTTP/1.1\r\nX-A: " + std::string(60, 'a') + "\r\n\r\n";
  Outcome out = FeedInPieces(parser, one + one + one, 5);
  EXPECT_EQ(out.error_status, 0) << out.error_message;
  EXPECT_EQ(out.requests.size(), 3u);
}

TEST(RequestParser, ContentLengthOverTheLimitIs413BeforeTheBody) {
  RequestParser parser(SmallLimits(1024, 100), nullptr);
  std::string head = "POST /big HTTP/1.1\r\nContent-Length: 101\r\nX-Id: 7\r\n\r\n";
  size_t used = 0;
  // Only the head is fed: the refusal must not wait for the body.
  ASSERT_EQ(parser.Feed(head.data(), head.size(), &used), Result::kError);
  EXPECT_EQ(parser.error_status(), 413);
  EXPECT_NE(parser.error_message().find("101"), std::string::npos) << parser.error_message();
  // The head is still there to shape the error response.
  EXPECT_TRUE(parser.headers_complete());
  EXPECT_EQ(parser.partial().path, "/big");
  EXPECT_EQ(parser.partial().headers.Get("x-id"), "7");
  // The parser is dead afterwards.
  ASSERT_EQ(parser.Feed("x", 1, &used), Result::kError);
  EXPECT_EQ(used, 0u);
}

TEST(RequestParser, ContentLengthAtTheLimitIsAccepted) {
  RequestParser parser(SmallLimits(1024, 100), nullptr);
  std::string wire = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'b');
  Outcome out = FeedInPieces(parser, wire, 9);
  ASSERT_EQ(out.error_status, 0) << out.error_message;
  ASSERT_EQ(out.requests.size(), 1u);
  EXPECT_EQ(out.requests[0].body.size(), 100u);
}

TEST(RequestParser, ChunkedBodyOverTheLimitIs413) {
  RequestParser parser(SmallLimits(1024, 10), nullptr);
  std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  size_t used = 0;
  ASSERT_EQ(parser.Feed(head.data(), head.size(), &used), Result::kNeedMore);
  std::string chunk1 = "6\r\nabcdef\r\n";
  ASSERT_EQ(parser.Feed(chunk1.data(), chunk1.size(), &used), Result::kNeedMore);
  // This chunk crosses the limit: refused without waiting for the end of the body.
  std::string chunk2 = "6\r\nghijkl\r\n";
  ASSERT_EQ(parser.Feed(chunk2.data(), chunk2.size(), &used), Result::kError);
  EXPECT_EQ(parser.error_status(), 413);
}

TEST(RequestParser, BodyLimitFnRaisesAndLowersTheLimitPerRequest) {
  std::vector<std::string> seen_paths;
  RequestParser parser(SmallLimits(1024, 10), [&](const HttpRequest& head) -> size_t {
    seen_paths.push_back(head.path);
    EXPECT_TRUE(head.body.empty());
    if (head.path == "/big") return 50;
    if (head.path == "/tiny") return 2;
    return 10;
  });
  std::string wire = "POST /big HTTP/1.1\r\nContent-Length: 40\r\n\r\n" + std::string(40, 'x') +
                     "POST /default HTTP/1.1\r\nContent-Length: 10\r\n\r\n" + std::string(10, 'y');
  Outcome out = FeedInPieces(parser, wire, 11);
  ASSERT_EQ(out.error_status, 0) << out.error_message;
  ASSERT_EQ(out.requests.size(), 2u);
  EXPECT_EQ(out.requests[0].body.size(), 40u);
  EXPECT_EQ(out.requests[1].body.size(), 10u);

  std::string tiny = "POST /tiny HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  size_t used = 0;
  EXPECT_EQ(parser.Feed(tiny.data(), tiny.size(), &used), Result::kError);
  EXPECT_EQ(parser.error_status(), 413);
  EXPECT_EQ(seen_paths, (std::vector<std::string>{"/big", "/default", "/tiny"}));
}

TEST(RequestParser, BodyLimitFnAppliesToChunkedBodies) {
  RequestParser parser(SmallLimits(1024, 1000), [](const HttpRequest&) -> size_t { return 4; });
  std::string wire = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n";
  Outcome out = FeedInPieces(parser, wire, wire.size());
  EXPECT_EQ(out.error_status, 413);
}

TEST(RequestParser, MalformedRequestLineIs400) {
  for (const char* wire : {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET\r\n\r\n",
                           "GET / HTTP/1.1\r\nBad Header\r\n\r\n"}) {
    SCOPED_TRACE(wire);
    RequestParser parser({}, nullptr);
    size_t used = 0;
    EXPECT_EQ(parser.Feed(wire, strlen(wire), &used), Result::kError);
    EXPECT_EQ(parser.error_status(), 400);
    EXPECT_FALSE(parser.error_message().empty());
  }
}

TEST(RequestParser, MalformedPercentEncodingInThePathIs400) {
  RequestParser parser({}, nullptr);
  std::string wire = "GET /a%zz HTTP/1.1\r\n\r\n";
  size_t used = 0;
  EXPECT_EQ(parser.Feed(wire.data(), wire.size(), &used), Result::kError);
  EXPECT_EQ(parser.error_status(), 400);
}

TEST(RequestParser, PathIsPercentDecodedAndQueryParamDecodesValues) {
  RequestParser parser({}, nullptr);
  std::string wire =
      "GET /functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Ahello/x%20y?"
      "a=1&Qualifier=%24LATEST&b=c%2Fd&plus=a+b HTTP/1.1\r\n\r\n";
  size_t used = 0;
  ASSERT_EQ(parser.Feed(wire.data(), wire.size(), &used), Result::kRequest);
  HttpRequest req = parser.TakeRequest();
  EXPECT_EQ(req.path, "/functions/arn:aws:lambda:us-east-1:1:function:hello/x y");
  EXPECT_EQ(req.QueryParam("a"), "1");
  EXPECT_EQ(req.QueryParam("Qualifier"), "$LATEST");
  EXPECT_EQ(req.QueryParam("b"), "c/d");
  EXPECT_EQ(req.QueryParam("plus"), "a+b");
  EXPECT_EQ(req.QueryParam("Q"), std::nullopt);
}

TEST(RequestParser, KeepAliveFollowsVersionAndConnectionHeader) {
  struct Case {
    const char* wire;
    bool keep_alive;
    int minor;
  };
  for (const Case& c : {
           Case{"GET / HTTP/1.1\r\n\r\n", true, 1},
           Case{"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false, 1},
           Case{"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false, 1},
           Case{"GET / HTTP/1.0\r\n\r\n", false, 0},
           Case{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, 0},
       }) {
    SCOPED_TRACE(c.wire);
    RequestParser parser({}, nullptr);
    size_t used = 0;
    ASSERT_EQ(parser.Feed(c.wire, strlen(c.wire), &used), Result::kRequest);
    HttpRequest req = parser.TakeRequest();
    EXPECT_EQ(req.keep_alive, c.keep_alive);
    EXPECT_EQ(req.http_minor, c.minor);
  }
}

TEST(RequestParser, UpgradeRequestIsServedAsPlainHttp) {
  // curl --http2 on an http:// URL asks for h2c; we answer in HTTP/1.1 and the
  // connection must keep working for the next request.
  std::string a =
      "GET /a HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
  std::string b = "GET /b HTTP/1.1\r\n\r\n";
  RequestParser parser({}, nullptr);
  Outcome out = FeedInPieces(parser, a + b, 4);
  ASSERT_EQ(out.error_status, 0) << out.error_message;
  ASSERT_EQ(out.requests.size(), 2u);
  EXPECT_EQ(out.requests[0].path, "/a");
  EXPECT_EQ(out.requests[1].path, "/b");
}

TEST(RequestParser, EmptyHeaderValueDoesNotMergeWithTheNextHeader) {
  RequestParser parser({}, nullptr);
  std::string wire = "GET / HTTP/1.1\r\nX-A:\r\nX-B: b\r\nX-C: \r\n\r\n";
  size_t used = 0;
  ASSERT_EQ(parser.Feed(wire.data(), wire.size(), &used), Result::kRequest);
  HttpRequest req = parser.TakeRequest();
  ASSERT_EQ(req.headers.size(), 3u);
  EXPECT_EQ(req.headers.items()[0].first, "X-A");
  EXPECT_EQ(req.headers.items()[0].second, "");
  EXPECT_EQ(req.headers.items()[1].first, "X-B");
  EXPECT_EQ(req.headers.items()[1].second, "b");
  EXPECT_EQ(req.headers.items()[2].first, "X-C");
}

TEST(RequestParser, ExpectContinueIsReported) {
  RequestParser parser({}, nullptr);
  std::string head = "POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
  size_t used = 0;
  ASSERT_EQ(parser.Feed(head.data(), head.size(), &used), Result::kNeedMore);
  EXPECT_TRUE(parser.headers_complete());
  EXPECT_TRUE(parser.expects_continue());
  ASSERT_EQ(parser.Feed("abc", 3, &used), Result::kRequest);
  EXPECT_EQ(parser.TakeRequest().body, "abc");
  EXPECT_FALSE(parser.expects_continue());
}

TEST(HttpMessage, PercentDecodeRejectsTruncatedEscapes) {
  EXPECT_EQ(PercentDecode("%24LATEST"), "$LATEST");
  EXPECT_EQ(PercentDecode("a%2"), std::nullopt);
  EXPECT_EQ(PercentDecode("a%"), std::nullopt);
  EXPECT_EQ(PercentDecode("%g0"), std::nullopt);
  EXPECT_EQ(PercentDecode("%41%62"), "Ab");
  EXPECT_EQ(PercentDecode("a+b"), "a+b");
}

TEST(HttpMessage, HeadersAreCaseInsensitiveAndSetReplacesAll) {
  Headers h;
  h.Add("X-A", "1");
  h.Add("x-a", "2");
  EXPECT_EQ(h.Get("X-a"), "1");
  h.Set("X-A", "3");
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.Get("x-A"), "3");
  EXPECT_FALSE(h.Has("X-B"));
}

}  // namespace
}  // namespace ephemera::http
