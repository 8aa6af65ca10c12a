// SPDX-License-Identifier: Apache-2.0
#include "engine/sampling/stop_matcher.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace weft::sampling {
namespace {

struct Fed {
  std::string emitted;  // everything emitted, in order (plus Flush if not stopped)
  bool stopped = false;
  int stop_index = -1;
  std::vector<std::string> per_push;
};

Fed Feed(std::vector<std::string> stops, const std::vector<std::string>& pieces, bool utf8 = true) {
  StopMatcher m(std::move(stops), utf8);
  Fed run;
  for (const std::string& p : pieces) {
    StopMatcher::Result r = m.Push(p);
    run.per_push.push_back(r.emit);
    run.emitted += r.emit;
    if (r.stopped) {
      run.stopped = true;
      run.stop_index = r.stop_index;
      break;
    }
  }
  if (!run.stopped) run.emitted += m.Flush();
  return run;
}

TEST(StopMatcherTest, NoStopsPassesEverythingThrough) {
  Fed r = Feed({}, {"Hello", ", ", "world"});
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.per_push, (std::vector<std::string>{"Hello", ", ", "world"}));
}

TEST(StopMatcherTest, StopInsideOnePiece) {
  Fed r = Feed({"END"}, {"abc", "dEND tail"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 0);
  EXPECT_EQ(r.emitted, "abcd");
}

TEST(StopMatcherTest, StopSpanningTokenBoundaries) {
  Fed r = Feed({"\n\nUser:"}, {"Sure", ".\n", "\nUs", "er", ":", " more"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "Sure.");
  // "\n" is held after the second piece, "\n\nUs" after the third.
  EXPECT_EQ(r.per_push, (std::vector<std::string>{"Sure", ".", "", "", ""}));
}

TEST(StopMatcherTest, HeldPrefixIsReleasedWhenItDiverges) {
  StopMatcher m({"###"});
  EXPECT_EQ(m.Push("a#").emit, "a");
  EXPECT_EQ(m.held(), "#");
  EXPECT_EQ(m.Push("#").emit, "");
  EXPECT_EQ(m.held(), "##");
  StopMatcher::Result r = m.Push("b");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.emit, "##b");
  EXPECT_EQ(m.held(), "");
}

TEST(StopMatcherTest, OverlappingPrefixes) {
  // "aab" inside "aaab": the held suffix must be re-checked, not discarded after a mismatch.
  Fed r = Feed({"aab"}, {"a", "a", "a", "b", "c"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "a");
  // Self-overlapping stop "abab" in "ababab...".
  Fed r2 = Feed({"abab"}, {"xab", "a", "b"});
  EXPECT_TRUE(r2.stopped);
  EXPECT_EQ(r2.emitted, "x");
}

TEST(StopMatcherTest, MultipleStopsEarliestWins) {
  Fed r = Feed({"world", "lo"}, {"hello world"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 1);
  EXPECT_EQ(r.emitted, "hel");
  // The longest possible prefix among stops is held.
  StopMatcher m({"xyz", "yzw"});
  EXPECT_EQ(m.Push("axy").emit, "a");
  EXPECT_EQ(m.held(), "xy");
  StopMatcher::Result r2 = m.Push("zw");
  EXPECT_TRUE(r2.stopped);
  EXPECT_EQ(r2.stop_index, 0);
  EXPECT_EQ(r2.emit, "");
}

TEST(StopMatcherTest, FlushReturnsHeldTextAtTheEnd) {
  StopMatcher m({"</s>"});
  EXPECT_EQ(m.Push("done </").emit, "done ");
  EXPECT_EQ(m.Flush(), "</");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, PushAfterStopReturnsNothing) {
  StopMatcher m({"x"});
  EXPECT_TRUE(m.Push("ax").stopped);
  StopMatcher::Result r = m.Push("more");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emit, "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, Utf8CharactersSplitAcrossPieces) {
  // "é" = C3 A9, "😀" = F0 9F 98 80, split across byte-fallback tokens.
  Fed r = Feed({}, {"caf\xC3", "\xA9 \xF0\x9F", "\x98", "\x80!"});
  EXPECT_EQ(r.per_push, (std::vector<std::string>{"caf", "\xC3\xA9 ", "", "\xF0\x9F\x98\x80!"}));
  EXPECT_EQ(r.emitted, "café 😀!");
  // Without holding, bytes go out as they come.
  Fed raw = Feed({}, {"caf\xC3", "\xA9"}, /*utf8=*/false);
  EXPECT_EQ(raw.per_push, (std::vector<std::string>{"caf\xC3", "\xA9"}));
}

TEST(StopMatcherTest, Utf8StopStrings) {
  Fed r = Feed({"。\n"}, {"你好", "\xE3\x80", "\x82", "\n再见"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "你好");
  // A stop that shares a lead byte with the text but is not there.
  Fed r2 = Feed({"😀"}, {"a\xF0\x9F\x98",
                        "\x81"
                        "b"});
  EXPECT_FALSE(r2.stopped);
  EXPECT_EQ(r2.emitted, "a😁b");
}

TEST(StopMatcherTest, IncompleteUtf8AtEndIsFlushed) {
  StopMatcher m({});
  EXPECT_EQ(m.Push("ab\xE4\xBD").emit, "ab");
  EXPECT_EQ(m.Flush(), "\xE4\xBD");
}

TEST(StopMatcherTest, EmptyStopStringsAreIgnored) {
  Fed r = Feed({"", "z"}, {"abc", "z"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "abc");
  EXPECT_EQ(r.stop_index, 0);  // index into the non-empty stops
}

TEST(StopMatcherTest, RandomSplitsAgreeWithWholeText) {
  // Property: for any split of the text into pieces, the emitted text equals the prefix before
  // the first stop (or the whole text), and nothing after a stop leaks.
  const std::vector<std::string> stops = {"<|end|>", "\n\n", "ab"};
  const std::vector<std::string> texts = {"hello <|en world\n x<|end|> after", "a\nb\n\nc",
                                          "aaa<|endab", "no stops here é"};
  uint64_t state = 12345;
  auto next = [&]() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  for (const std::string& text : texts) {
    size_t first = std::string::npos;
    for (const std::string& s : stops) first = std::min(first, text.find(s));
    const std::string expected = first == std::string::npos ? text : text.substr(0, first);
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<std::string> pieces;
      for (size_t i = 0; i < text.size();) {
        size_t len = 1 + next() % 4;
        pieces.push_back(text.substr(i, len));
        i += len;
      }
      Fed r = Feed(stops, pieces);
      EXPECT_EQ(r.emitted, expected) << text;
      EXPECT_EQ(r.stopped, first != std::string::npos);
    }
  }
}

}  // namespace
}  // namespace weft::sampling
