// tests/shim/json_test.cc: the shim's small JSON reader/writer, base64 and UTF-8 checks.
#include "shim/json.h"

#include <gtest/gtest.h>

namespace ephemera::shim {
namespace {

TEST(Json, ParsesNestedDocument) {
  JsonValue v;
  std::string error;
  ASSERT_TRUE(JsonValue::Parse(
      R"( {"a": [1, -2.5e3, true, false, null], "b": {"c": "d\n\u00e9\ud83d\ude00"}} )", &v,
      &error))
      << error;
  ASSERT_TRUE(v.is_object());
  const JsonValue* a = v.Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items().size(), 5u);
  EXPECT_EQ(a->items()[1].text(), "-2.5e3");
  EXPECT_TRUE(a->items()[2].bool_value());
  EXPECT_TRUE(a->items()[4].is_null());
  const std::string* c = v.Find("b")->FindString("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(*c, "d\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.Find("missing"), nullptr);
}

TEST(Json, RejectsMalformedInput) {
  JsonValue v;
  std::string error;
  for (const char* bad : {"", "{", "{\"a\"}", "[1,]", "\"abc", "tru", "{} x", "01x", "\"\x01\""}) {
    EXPECT_FALSE(JsonValue::Parse(bad, &v, &error)) << bad;
  }
  std::string deep(100, '[');
  EXPECT_FALSE(JsonValue::Parse(deep, &v, &error));
}

TEST(Json, WriterEscapesAndKeepsOutputValid) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(JsonQuote("\xc3\xa9"), "\"\xc3\xa9\"");  // valid UTF-8 passes through
  EXPECT_EQ(JsonQuote("\xff"), "\"\\u00ff\"");       // invalid bytes become \u00XX
  JsonValue v;
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_TRUE(JsonValue::Parse(JsonQuote(all), &v, nullptr));
}

TEST(Json, Base64RoundTripsBinary) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>(i * 31));
  for (size_t n : {0u, 1u, 2u, 3u, 4u, 1000u}) {
    std::string decoded;
    ASSERT_TRUE(Base64Decode(Base64Encode(data.substr(0, n)), &decoded));
    EXPECT_EQ(decoded, data.substr(0, n));
  }
  EXPECT_EQ(Base64Encode("hi"), "aGk=");
  std::string out;
  EXPECT_TRUE(Base64Decode("aGk", &out));  // unpadded
  EXPECT_EQ(out, "hi");
  EXPECT_FALSE(Base64Decode("a*b", &out));
}

TEST(Json, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xe2\x82\xac"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));      // truncated
  EXPECT_FALSE(IsValidUtf8(std::string("\x89PNG\r\n", 6)));
}

}  // namespace
}  // namespace ephemera::shim
