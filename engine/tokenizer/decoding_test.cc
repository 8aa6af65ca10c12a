// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/decoding.h"

#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/spm_tokenizer.h"
#include "engine/tokenizer/test_vocabs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::tokenizer {
namespace {

std::unique_ptr<Tokenizer> Spm() {
  Vocab v = testing::SmallSpmVocab();
  EXPECT_TRUE(FinalizeSpecialTokens(v, "", "test").ok());
  return *SpmTokenizer::Create(std::move(v));
}

TEST(StreamingDecoder, HoldsSplitUtf8CharactersUntilComplete) {
  auto tok = Spm();
  // "é" = C3 A9 as two byte tokens, then "😁" = F0 9F 98 81 as four.
  StreamingDecoder dec(*tok, /*prev=*/1);
  EXPECT_EQ(dec.Push(265), "ab");
  EXPECT_EQ(dec.Push(3 + 0xC3), "");
  EXPECT_EQ(dec.pending(), 1u);
  EXPECT_EQ(dec.Push(3 + 0xA9), "\xC3\xA9");
  EXPECT_EQ(dec.Push(3 + 0xF0), "");
  EXPECT_EQ(dec.Push(3 + 0x9F), "");
  EXPECT_EQ(dec.Push(3 + 0x98), "");
  EXPECT_EQ(dec.Push(3 + 0x81), "\xF0\x9F\x98\x81");
  EXPECT_EQ(dec.Flush(), "");
}

TEST(StreamingDecoder, FlushReturnsIncompleteTailAndInvalidBytesPassThrough) {
  auto tok = Spm();
  StreamingDecoder dec(*tok);
  EXPECT_EQ(dec.Push(3 + 0xFF), "\xFF");  // can never become valid: not held
  EXPECT_EQ(dec.Push(3 + 0xE2), "");
  EXPECT_EQ(dec.Flush(), "\xE2");
  EXPECT_EQ(dec.pending(), 0u);
}

TEST(StreamingDecoder, ConcatenationEqualsDecode) {
  auto tok = Spm();
  const std::vector<int32_t> ids =
      tok->Encode("ab \xC3\xA9 abc \xF0\x9F\x98\x81 h", {.add_bos = true});
  StreamingDecoder dec(*tok);
  std::string streamed;
  for (int32_t id : ids) streamed += dec.Push(id);
  streamed += dec.Flush();
  EXPECT_EQ(streamed, tok->Decode(ids));
  EXPECT_EQ(streamed, "ab \xC3\xA9 abc \xF0\x9F\x98\x81 h");
}

TEST(EndOfGenerationIds, ListsEos) {
  auto tok = Spm();
  EXPECT_THAT(EndOfGenerationIds(*tok), ::testing::ElementsAre(2));
}

}  // namespace
}  // namespace weft::tokenizer
