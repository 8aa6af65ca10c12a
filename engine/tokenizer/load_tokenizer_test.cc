// SPDX-License-Identifier: Apache-2.0
// LoadTokenizer over real models: stories260K as GGUF (SPM from tokenizer.ggml.*) and as llama2.c
// (tok512.bin found beside the checkpoint); both must reproduce run.c's golden prompt tokens and
// decode the golden token streams to the golden text.
#include "engine/model/model.h"
#include "engine/tokenizer/decoding.h"
#include "engine/tokenizer/stories_goldens.h"
#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::tokenizer {
namespace {

using Golden = testing::StoriesGolden;
using testing::ReadStoriesGoldens;

class StoriesTokenizer : public ::testing::TestWithParam<const char*> {};

TEST_P(StoriesTokenizer, MatchesRunCGoldens) {
  auto model = model::LoadModel(
      weft::testing::RequireTestData(std::string("models/stories260K/") + GetParam()));
  ASSERT_TRUE(model.ok()) << model.status();
  auto tok = LoadTokenizer(**model);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 512);
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_TRUE((*tok)->add_bos_default());
  EXPECT_TRUE((*tok)->IsEndOfGeneration(2));
  const auto goldens = ReadStoriesGoldens();
  ASSERT_EQ(goldens.size(), 5u);
  for (const Golden& g : goldens) {
    const std::vector<int32_t> ids = (*tok)->Encode(g.prompt, {.add_bos = true});
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);
    const std::vector<int32_t> prompt(ids.begin() + 1, ids.end());
    ASSERT_LE(prompt.size(), g.tokens_after_bos.size());
    EXPECT_EQ(prompt, std::vector<int32_t>(g.tokens_after_bos.begin(),
                                           g.tokens_after_bos.begin() + prompt.size()))
        << GetParam() << " prompt: " << g.prompt;

    std::vector<int32_t> all = {1};
    all.insert(all.end(), g.tokens_after_bos.begin(), g.tokens_after_bos.end());
    EXPECT_EQ((*tok)->Decode(all), g.text) << GetParam() << " prompt: " << g.prompt;
    StreamingDecoder stream(**tok, /*prev=*/1);
    std::string streamed;
    for (int32_t id : g.tokens_after_bos) streamed += stream.Push(id);
    streamed += stream.Flush();
    EXPECT_EQ(streamed, g.text);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, StoriesTokenizer,
                         ::testing::Values("stories260K.gguf", "stories260K.bin"),
                         [](const auto& info) {
                           return std::string(info.param).find("gguf") != std::string::npos
                                      ? "gguf"
                                      : "llama2c";
                         });

TEST(LoadTokenizer, KindsAndOverride) {
  auto gguf =
      model::LoadModel(weft::testing::RequireTestData("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto spm = LoadTokenizer(**gguf);
  ASSERT_TRUE(spm.ok()) << spm.status();
  EXPECT_EQ((*spm)->kind(), "spm");
  auto l2c = LoadTokenizer(**gguf, weft::testing::RequireTestData("models/stories260K/tok512.bin"));
  ASSERT_TRUE(l2c.ok()) << l2c.status();
  EXPECT_EQ((*l2c)->kind(), "llama2c");
  auto missing = LoadTokenizer(**gguf, "/nonexistent/tokenizer.json");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadTokenizer(**gguf, "/some/tokenizer.model").status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST(LoadTokenizer, RejectsTokenizerLargerThanTheModel) {
  auto gguf =
      model::LoadModel(weft::testing::RequireTestData("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  (*gguf)->config.vocab_size = 100;
  auto t = LoadTokenizer(**gguf);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft::tokenizer
