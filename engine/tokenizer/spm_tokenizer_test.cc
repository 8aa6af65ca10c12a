// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/spm_tokenizer.h"

#include "engine/tokenizer/test_vocabs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class SpmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Vocab v = testing::SmallSpmVocab();
    ASSERT_TRUE(FinalizeSpecialTokens(v, "small", "test").ok());
    auto t = SpmTokenizer::Create(std::move(v));
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = *std::move(t);
  }
  std::vector<int32_t> Enc(std::string_view text, bool bos = false, bool special = false) {
    return tok_->Encode(text, {.add_bos = bos, .parse_special = special});
  }
  std::unique_ptr<SpmTokenizer> tok_;
};

TEST_F(SpmTest, MergesBestScoreFirst) {
  // "▁ab": "ab" (-5) beats "▁a" (-6), then "▁ab" (-7).
  EXPECT_THAT(Enc("ab"), ElementsAre(265));
  // "▁abc": "bc" (-0.5) first, then "▁a" (-6), then "▁abc" (-8).
  EXPECT_THAT(Enc("abc"), ElementsAre(267));
  EXPECT_THAT(Enc("ba"), ElementsAre(259, 261, 260));
}

TEST_F(SpmTest, SpacePrefixAndBos) {
  EXPECT_THAT(Enc(""), IsEmpty());
  EXPECT_THAT(Enc("", /*bos=*/true), ElementsAre(1));
  EXPECT_THAT(Enc("a", /*bos=*/true), ElementsAre(1, 264));
  EXPECT_THAT(Enc(" a"), ElementsAre(259, 264));
}

TEST_F(SpmTest, ByteFallbackForUnknownCharacters) {
  EXPECT_THAT(Enc("\xC3\xA9"), ElementsAre(259, 3 + 0xC3, 3 + 0xA9));
  // Invalid UTF-8 is kept byte for byte.
  EXPECT_THAT(Enc("\xFF"), ElementsAre(259, 3 + 0xFF));
}

TEST_F(SpmTest, UserDefinedAlwaysMatchedControlOnlyWhenParsingSpecial) {
  EXPECT_THAT(Enc("a<user>b"), ElementsAre(264, 268, 259, 261));
  const std::vector<int32_t> plain = Enc("<|turn|>");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 269), 0);
  EXPECT_THAT(Enc("<|turn|>a", false, /*special=*/true), ElementsAre(269, 264));
}

TEST_F(SpmTest, Decode) {
  EXPECT_EQ(tok_->Decode(std::vector<int32_t>{265}), "ab");
  EXPECT_EQ(tok_->Decode(std::vector<int32_t>{1, 265, 259, 264}), "ab  a");
  EXPECT_EQ(tok_->Decode(std::vector<int32_t>{3 + 0xC3, 3 + 0xA9}), "\xC3\xA9");
  EXPECT_EQ(tok_->DecodeToken(269, 264), "");  // control
  EXPECT_EQ(tok_->TokenText(269), "<|turn|>");
  EXPECT_EQ(tok_->DecodeToken(268, 264), "<user>");
  EXPECT_EQ(tok_->DecodeToken(264, 265), " a");  // mid-text keeps its space
  for (std::string_view text : {"ab a", "abc  b", "a<user>b", "\xC3\xA9 h"}) {
    EXPECT_EQ(tok_->Decode(Enc(text, true)), text);
  }
}

TEST_F(SpmTest, Ids) {
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_TRUE(tok_->add_bos_default());
  EXPECT_TRUE(tok_->IsEndOfGeneration(2));
  EXPECT_FALSE(tok_->IsEndOfGeneration(1));
  EXPECT_EQ(tok_->kind(), "spm");
  EXPECT_EQ(tok_->vocab_size(), 271);
}

}  // namespace
}  // namespace weft::tokenizer
