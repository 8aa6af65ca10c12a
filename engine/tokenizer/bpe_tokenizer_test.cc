// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/bpe_tokenizer.h"

#include <thread>

#include "engine/tokenizer/test_vocabs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::tokenizer {
namespace {

using ::testing::ElementsAre;

constexpr int32_t kHello = 259, kGWorld = 264, kEot = 267, kExtra = 268;

class BpeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Vocab v = testing::SmallBpeVocab();
    ASSERT_TRUE(FinalizeSpecialTokens(v, "", "test").ok());
    auto t = BpeTokenizer::Create(std::move(v));
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = *std::move(t);
  }
  std::vector<int32_t> Enc(std::string_view text, bool special = false) {
    return tok_->Encode(text, {.add_bos = false, .parse_special = special});
  }
  std::unique_ptr<BpeTokenizer> tok_;
};

TEST_F(BpeTest, MergesLowestRankFirst) {
  EXPECT_THAT(Enc("hello world"), ElementsAre(kHello, kGWorld));
  // " hello": (Ġ,h) has rank 9 but (h,e) rank 0 merges first, and then no (Ġ,he) merge exists.
  EXPECT_THAT(Enc(" hello"), ElementsAre(' ', kHello));
  EXPECT_THAT(Enc("hel"), ElementsAre(256, 'l'));
}

TEST_F(BpeTest, PreTokenizerSplitsWords) {
  // "hello" and "hello" are separate words, so no cross-word merges.
  EXPECT_THAT(Enc("hello,hello"), ElementsAre(kHello, ',', kHello));
  EXPECT_THAT(Enc("a  b"), ElementsAre('a', ' ', ' ', 'b'));
}

TEST_F(BpeTest, SpecialTokens) {
  EXPECT_THAT(Enc("hello<|endoftext|>", /*special=*/true), ElementsAre(kHello, kEot));
  const std::vector<int32_t> plain = Enc("<|endoftext|>");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), kEot), 0);
  EXPECT_EQ(tok_->Decode(plain), "<|endoftext|>");
  EXPECT_THAT(Enc("[EXTRA]hello"), ElementsAre(kExtra, kHello));
  EXPECT_TRUE(tok_->IsEndOfGeneration(kEot));
}

TEST_F(BpeTest, InvalidUtf8BecomesReplacementCharacter) {
  // U+FFFD = EF BF BD; each invalid byte turns into those three bytes.
  EXPECT_THAT(Enc("\xFF"), ElementsAre(0xEF, 0xBF, 0xBD));
  EXPECT_EQ(tok_->Decode(Enc("a\xC3")), "a\xEF\xBF\xBD");
}

TEST_F(BpeTest, DecodeIsByteExact) {
  for (std::string_view text :
       {"hello world", " hello  world\n\n", "\xF0\x9F\x98\x81 ok", "tab\there", "x , y"}) {
    EXPECT_EQ(tok_->Decode(Enc(text)), text);
  }
  EXPECT_EQ(tok_->DecodeToken(kEot, -1), "");
  EXPECT_EQ(tok_->DecodeToken(kExtra, -1), "[EXTRA]");
}

TEST_F(BpeTest, ConcurrentEncodeAgrees) {
  const std::string text = "hello world, hello again; 123 worlds";
  const std::vector<int32_t> expected = Enc(text);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (Enc(text) != expected) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(BpeCreate, BadRegexIsAnError) {
  Vocab v = testing::SmallBpeVocab();
  v.pre_regexes = {"(unclosed"};
  ASSERT_TRUE(FinalizeSpecialTokens(v, "", "test").ok());
  auto t = BpeTokenizer::Create(std::move(v));
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft::tokenizer
