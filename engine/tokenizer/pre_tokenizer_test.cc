// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/pre_tokenizer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::tokenizer {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> SplitWith(std::string_view pre, std::string_view text) {
  auto regexes = PreTokenizerRegexes(pre);
  EXPECT_TRUE(regexes.ok()) << pre;
  auto splitter = RegexSplitter::Create(*regexes);
  EXPECT_TRUE(splitter.ok()) << splitter.status();
  std::vector<std::string_view> pieces;
  (*splitter)->Split(text, &pieces);
  std::string joined;
  for (std::string_view p : pieces) {
    EXPECT_FALSE(p.empty());
    joined.append(p);
  }
  EXPECT_EQ(joined, text);  // pieces tile the input
  return {pieces.begin(), pieces.end()};
}

TEST(PreTokenizer, Gpt2) {
  EXPECT_THAT(SplitWith("gpt-2", "Hello world's  12345!!\n\n x"),
              ElementsAre("Hello", " world", "'s", " ", " 12345", "!!", "\n\n", " x"));
}

TEST(PreTokenizer, Llama3GroupsDigitsByThreeAndKeepsCaseInsensitiveContractions) {
  EXPECT_THAT(SplitWith("llama-bpe", "I'VE 12345 x\n\n  y"),
              ElementsAre("I", "'VE", " ", "123", "45", " x", "\n\n", " ", " y"));
}

TEST(PreTokenizer, Qwen2SplitsSingleDigits) {
  EXPECT_THAT(SplitWith("qwen2", "a 123"), ElementsAre("a", " ", "1", "2", "3"));
}

TEST(PreTokenizer, DefaultAppliesItsRegexesInSequence) {
  // "[\p{P}$+<=>^~|]+" first isolates punctuation runs, then the GPT-2 style split runs inside
  // the remaining pieces, then digit runs, then groups of three ASCII digits.
  EXPECT_THAT(SplitWith("default", "a,b 12345"), ElementsAre("a", ",", "b", " ", "123", "45"));
}

TEST(PreTokenizer, Gpt4oSplitsCamelCase) {
  EXPECT_THAT(SplitWith("gpt-4o", "HelloWorld don't"), ElementsAre("Hello", "World", " don't"));
}

TEST(PreTokenizer, UnknownAndBadPatterns) {
  EXPECT_EQ(PreTokenizerRegexes("no-such-pre").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(RegexSplitter::Create({"[unclosed"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PreTokenizer, EveryKnownNameCompiles) {
  for (const char* pre : {"default", "gpt-2", "llama-bpe", "llama3", "qwen2", "starcoder", "gpt-4o",
                          "tekken", "stablelm2", "dbrx"}) {
    auto regexes = PreTokenizerRegexes(pre);
    ASSERT_TRUE(regexes.ok()) << pre;
    EXPECT_TRUE(RegexSplitter::Create(*regexes).ok()) << pre;
  }
}

TEST(PreTokenizer, LongWhitespaceRunsDoNotFail) {
  const std::string text = std::string(200000, ' ') + "x" + std::string(100000, '\n');
  auto pieces = SplitWith("llama-bpe", text);
  EXPECT_EQ(pieces.size(), 3u);
}

}  // namespace
}  // namespace weft::tokenizer
