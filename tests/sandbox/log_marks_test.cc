// LogMarkScanner: output passes with the runtime's marks (shim/log_mark.h) taken out,
// however the engine splits the stream into frames.
#include "runtime/sandbox/log_marks.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "shim/log_mark.h"

namespace ephemera::sandbox {
namespace {

struct Scanned {
  std::string text;
  std::vector<std::string> marks;
  // Where each mark fell in the text.
  std::vector<size_t> at;
};

Scanned Scan(const std::vector<std::string>& pieces) {
  LogMarkScanner scanner;
  Scanned out;
  for (const std::string& piece : pieces) {
    scanner.Feed(
        piece, [&](std::string_view text) { out.text.append(text); },
        [&](std::string_view id) {
          out.marks.emplace_back(id);
          out.at.push_back(out.text.size());
        });
  }
  return out;
}

TEST(LogMarkScanner, PlainOutputPassesUnchanged) {
  Scanned s = Scan({"hello\n", "world\n"});
  EXPECT_EQ(s.text, "hello\nworld\n");
  EXPECT_TRUE(s.marks.empty());
}

TEST(LogMarkScanner, TakesTheMarkOutAndReportsItsIdInPlace) {
  Scanned s = Scan({"before\n" + shim::LogMark("req-1") + "after\n"});
  EXPECT_EQ(s.text, "before\nafter\n");
  ASSERT_EQ(s.marks.size(), 1u);
  EXPECT_EQ(s.marks[0], "req-1");
  EXPECT_EQ(s.at[0], 7u);
}

TEST(LogMarkScanner, FindsAMarkSplitAtAnyByte) {
  const std::string whole = "out" + shim::LogMark("0f8fad5b-d9cb-469f-a165-70867728950e") + "next";
  for (size_t cut = 0; cut <= whole.size(); ++cut) {
    Scanned s = Scan({whole.substr(0, cut), whole.substr(cut)});
    EXPECT_EQ(s.text, "outnext") << "cut at " << cut;
    ASSERT_EQ(s.marks.size(), 1u) << "cut at " << cut;
    EXPECT_EQ(s.marks[0], "0f8fad5b-d9cb-469f-a165-70867728950e");
  }
  // One byte at a time.
  std::vector<std::string> bytes;
  for (char c : whole) bytes.emplace_back(1, c);
  Scanned s = Scan(bytes);
  EXPECT_EQ(s.text, "outnext");
  EXPECT_EQ(s.marks.size(), 1u);
}

TEST(LogMarkScanner, SeparatorBytesThatAreNoMarkAreOutput) {
  const std::string rs(1, '\x1e');
  EXPECT_EQ(Scan({"a" + rs + "b" + rs + rs + "c"}).text, "a" + rs + "b" + rs + rs + "c");
  // The prefix with an empty id, and with an id longer than any mark's.
  std::string empty_id = std::string(shim::kLogMarkPrefix) + rs;
  Scanned s = Scan({empty_id + "x"});
  EXPECT_EQ(s.text, empty_id + "x");
  EXPECT_TRUE(s.marks.empty());
  std::string long_id =
      std::string(shim::kLogMarkPrefix) + std::string(shim::kMaxLogMarkId + 1, 'i') + rs;
  s = Scan({long_id + "x"});  // its last 0x1e waits for the "x" (it could start a mark)
  EXPECT_EQ(s.text, long_id + "x");
  EXPECT_TRUE(s.marks.empty());
}

TEST(LogMarkScanner, APossibleMarkStartIsHeldUntilTheNextBytesDecide) {
  LogMarkScanner scanner;
  std::string text;
  auto on_text = [&](std::string_view t) { text.append(t); };
  auto on_mark = [](std::string_view) { ADD_FAILURE() << "no mark here"; };
  scanner.Feed(
      "line\n\x1e"
      "ephemera",
      on_text, on_mark);
  EXPECT_EQ(text, "line\n");
  EXPECT_EQ(scanner.held(),
            "\x1e"
            "ephemera");
  scanner.Feed("-not-a-mark\n", on_text, on_mark);
  EXPECT_EQ(text,
            "line\n\x1e"
            "ephemera-not-a-mark\n");
  EXPECT_TRUE(scanner.held().empty());
}

TEST(LogMarkScanner, TwoMarksInOneFrame) {
  Scanned s = Scan({"a" + shim::LogMark("r1") + "b" + shim::LogMark("r2") + "c"});
  EXPECT_EQ(s.text, "abc");
  EXPECT_EQ(s.marks, (std::vector<std::string>{"r1", "r2"}));
  EXPECT_EQ(s.at, (std::vector<size_t>{1, 2}));
}

}  // namespace
}  // namespace ephemera::sandbox
