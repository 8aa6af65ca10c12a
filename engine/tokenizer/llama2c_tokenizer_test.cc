// SPDX-License-Identifier: Apache-2.0
// llama2.c tokenizer.bin against the real stories260K tok512.bin and run.c's greedy goldens.
#include "engine/tokenizer/llama2c_tokenizer.h"

#include "base/mmap_file.h"
#include "engine/tokenizer/loaders.h"
#include "engine/tokenizer/stories_goldens.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::tokenizer {
namespace {

using ::testing::ElementsAre;

using Golden = testing::StoriesGolden;
using testing::ReadStoriesGoldens;

std::unique_ptr<Tokenizer> Tok512() {
  auto t =
      LoadLlama2cTokenizer(weft::testing::RequireTestData("models/stories260K/tok512.bin"), 512);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TEST(Llama2cTokenizer, GoldenPromptsEncodeToTheReferencePrefix) {
  auto tok = Tok512();
  ASSERT_NE(tok, nullptr);
  const auto goldens = ReadStoriesGoldens();
  ASSERT_EQ(goldens.size(), 5u);
  for (const Golden& g : goldens) {
    const std::vector<int32_t> ids = tok->Encode(g.prompt, {.add_bos = false});
    ASSERT_LE(ids.size(), g.tokens_after_bos.size());
    EXPECT_EQ(ids, std::vector<int32_t>(g.tokens_after_bos.begin(),
                                        g.tokens_after_bos.begin() + ids.size()))
        << "prompt: " << g.prompt;
    if (g.prompt.empty()) {
      EXPECT_TRUE(ids.empty());
    }
  }
}

TEST(Llama2cTokenizer, GoldenTokensDecodeToTheReferenceText) {
  auto tok = Tok512();
  ASSERT_NE(tok, nullptr);
  for (const Golden& g : ReadStoriesGoldens()) {
    std::vector<int32_t> with_bos = {tok->bos_id()};
    with_bos.insert(with_bos.end(), g.tokens_after_bos.begin(), g.tokens_after_bos.end());
    EXPECT_EQ(tok->Decode(with_bos), g.text) << "prompt: " << g.prompt;
    EXPECT_EQ(tok->Decode(g.tokens_after_bos), g.text) << "prompt: " << g.prompt;
  }
}

TEST(Llama2cTokenizer, RunCBehaviour) {
  auto tok = Tok512();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->kind(), "llama2c");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos_default());
  EXPECT_TRUE(tok->IsEndOfGeneration(1));  // run.c stops when BOS comes out
  EXPECT_TRUE(tok->IsEndOfGeneration(2));
  EXPECT_THAT(tok->Encode("Zoo", {.add_bos = true}), ElementsAre(1, 410, 469, 347));
  // "Ж" is no token: its bytes + 3.
  EXPECT_THAT(tok->Encode("\xD0\x96", {}), ElementsAre(410, 0xD0 + 3, 0x96 + 3));
  EXPECT_EQ(tok->Decode(tok->Encode("\xD0\x96 x\n", {.add_bos = true})), "\xD0\x96 x\n");
  EXPECT_EQ(tok->DecodeToken(13, 426), "\n");  // <0x0A>
  EXPECT_EQ(tok->DecodeToken(403, 1), "Once");
  EXPECT_EQ(tok->DecodeToken(403, 426), " Once");
  EXPECT_EQ(tok->DecodeToken(1, -1), "");
}

TEST(Llama2cTokenizer, MalformedFiles) {
  auto file = MmapFile::Open(weft::testing::RequireTestData("models/stories260K/tok512.bin"));
  ASSERT_TRUE(file.ok());
  const auto bytes = (*file)->bytes();
  EXPECT_TRUE(ParseLlama2cTokenizer(bytes, 0, "tok").ok());
  EXPECT_EQ(ParseLlama2cTokenizer(bytes.first(bytes.size() - 1), 0, "tok").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLlama2cTokenizer(bytes, 600, "tok").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseLlama2cTokenizer(bytes, 100, "tok").status().code(),
            absl::StatusCode::kInvalidArgument);  // trailing bytes
  EXPECT_EQ(ParseLlama2cTokenizer(bytes.first(2), 0, "tok").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadLlama2cTokenizer("/nonexistent/tok.bin").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace weft::tokenizer
