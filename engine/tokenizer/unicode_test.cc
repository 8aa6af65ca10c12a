// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/unicode.h"

#include <set>

#include "gtest/gtest.h"

namespace weft::tokenizer {
namespace {

TEST(Unicode, ByteLevelTableIsABijectionOntoPrintableCodePoints) {
  std::set<std::string> seen;
  for (int b = 0; b < 256; ++b) {
    const std::string u(ByteToUnicode(static_cast<uint8_t>(b)));
    EXPECT_TRUE(seen.insert(u).second) << b;
    EXPECT_EQ(ByteLevelDecode(u), std::string(1, static_cast<char>(b)));
  }
  EXPECT_EQ(ByteToUnicode(' '), "\xC4\xA0");   // "Ġ" = U+0120
  EXPECT_EQ(ByteToUnicode('\n'), "\xC4\x8A");  // "Ċ" = U+010A
  EXPECT_EQ(ByteToUnicode('a'), "a");
  EXPECT_EQ(UnicodeToByte(0x120), ' ');
  EXPECT_EQ(UnicodeToByte(0x2581), -1);
}

TEST(Unicode, ByteLevelRoundTripsArbitraryBytes) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(ByteLevelDecode(ByteLevelEncode(all)), all);
}

TEST(Unicode, SanitizeReplacesEachInvalidByte) {
  EXPECT_EQ(SanitizeUtf8("abc"), "abc");
  EXPECT_EQ(SanitizeUtf8("\xC3\xA4"), "\xC3\xA4");
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
  // Truncated 3-byte sequence: both bytes replaced.
  EXPECT_EQ(SanitizeUtf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // Overlong and surrogate encodings are invalid too.
  EXPECT_EQ(SanitizeUtf8("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x81"));
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
}

TEST(Unicode, IncompleteTail) {
  EXPECT_EQ(IncompleteUtf8Tail(""), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("abc"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("a\xC3"), 1u);
  EXPECT_EQ(IncompleteUtf8Tail("a\xC3\xA4"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("\xF0\x9F"), 2u);
  EXPECT_EQ(IncompleteUtf8Tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(IncompleteUtf8Tail("\xF0\x9F\x98\x81"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("\x80"), 0u);      // stray continuation: never completes
  EXPECT_EQ(IncompleteUtf8Tail("\xE0\x80"), 0u);  // overlong prefix: never valid
  EXPECT_EQ(IncompleteUtf8Tail("\xFF"), 0u);
}

TEST(Unicode, SeqLenFollowsLeadByte) {
  EXPECT_EQ(Utf8SeqLen('a'), 1);
  EXPECT_EQ(Utf8SeqLen(0x80), 1);
  EXPECT_EQ(Utf8SeqLen(0xC3), 2);
  EXPECT_EQ(Utf8SeqLen(0xE2), 3);
  EXPECT_EQ(Utf8SeqLen(0xF0), 4);
}

}  // namespace
}  // namespace weft::tokenizer
