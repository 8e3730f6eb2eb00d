// tests/shim/http_wire_test.cc: finding message boundaries in raw HTTP bytes.
#include "shim/http_wire.h"

#include <gtest/gtest.h>

namespace ephemera::shim {
namespace {

TEST(HttpWire, ParsesARequestHeadOnlyOnceItIsComplete) {
  std::string raw =
      "POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\n"
      "Content-Length: 3\r\nConnection: keep-alive, Upgrade\r\n\r\nabc";
  WireHead head;
  std::string error;
  size_t blank = raw.find("\r\n\r\n");
  for (size_t cut = 0; cut < blank + 4; ++cut) {
    ASSERT_EQ(ParseWireHead(raw.substr(0, cut), false, &head, &error), WireParse::kIncomplete)
        << cut;
  }
  ASSERT_EQ(ParseWireHead(raw, false, &head, &error), WireParse::kDone) << error;
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.target, "/2015-03-31/functions/f/invocations");
  EXPECT_EQ(head.size, blank + 4);
  EXPECT_TRUE(head.HeaderHasToken("connection", "upgrade"));
  EXPECT_FALSE(ConnectionCloses(head));
  BodyFraming framing;
  ASSERT_TRUE(RequestFraming(head, &framing));
  EXPECT_EQ(framing.kind, BodyFraming::Kind::kLength);
  EXPECT_EQ(framing.length, 3u);
}

TEST(HttpWire, RejectsMalformedStartLinesAndHugeHeads) {
  WireHead head;
  std::string error;
  EXPECT_EQ(ParseWireHead("HTTP/1.1 abc\r\n\r\n", true, &head, &error), WireParse::kMalformed);
  EXPECT_EQ(ParseWireHead("GARBAGE\r\n\r\n", false, &head, &error), WireParse::kMalformed);
  EXPECT_EQ(ParseWireHead(std::string(70000, 'a'), false, &head, &error), WireParse::kMalformed);
}

TEST(HttpWire, ResponseFramingFollowsTheRules) {
  auto framing_of = [](const std::string& raw, const std::string& method) {
    WireHead head;
    std::string error;
    EXPECT_EQ(ParseWireHead(raw, true, &head, &error), WireParse::kDone) << error;
    BodyFraming framing;
    EXPECT_TRUE(ResponseFraming(head, method, &framing));
    return framing.kind;
  };
  using Kind = BodyFraming::Kind;
  EXPECT_EQ(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD"), Kind::kNone);
  EXPECT_EQ(framing_of("HTTP/1.1 204 No Content\r\n\r\n", "GET"), Kind::kNone);
  EXPECT_EQ(framing_of("HTTP/1.1 100 Continue\r\n\r\n", "POST"), Kind::kNone);
  EXPECT_EQ(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET"),
            Kind::kChunked);
  EXPECT_EQ(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET"), Kind::kLength);
  EXPECT_EQ(framing_of("HTTP/1.0 200 OK\r\n\r\n", "GET"), Kind::kUntilClose);

  WireHead head;
  std::string error;
  ASSERT_EQ(ParseWireHead("HTTP/1.0 200 OK\r\n\r\n", true, &head, &error), WireParse::kDone);
  EXPECT_TRUE(ConnectionCloses(head));
  ASSERT_EQ(ParseWireHead("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n", true, &head, &error),
            WireParse::kDone);
  EXPECT_TRUE(ConnectionCloses(head));
}

TEST(HttpWire, ChunkedScannerFindsTheEndFedOneByteAtATime) {
  std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string body =
      "5;ext=1\r\nhello\r\n1A\r\n" + std::string(26, 'z') + "\r\n0\r\nX-Trailer: t\r\n\r\n";
  std::string next = "HTTP/1.1 200 OK\r\n";  // a pipelined next message must not be eaten
  std::string all = head + body + next;
  ChunkedScanner scanner(head.size());
  size_t end = 0;
  std::string error;
  size_t fed = head.size();
  WireParse result = WireParse::kIncomplete;
  while (result == WireParse::kIncomplete && fed < all.size()) {
    ++fed;
    result = scanner.Scan(std::string_view(all).substr(0, fed), &end, &error);
  }
  ASSERT_EQ(result, WireParse::kDone) << error;
  EXPECT_EQ(end, head.size() + body.size());
  EXPECT_EQ(fed, end);  // done exactly when the last byte arrived

  ChunkedScanner bad(0);
  EXPECT_EQ(bad.Scan("zz\r\n", &end, &error), WireParse::kMalformed);
}

}  // namespace
}  // namespace ephemera::shim
