// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/hf_tokenizer_json.h"

#include "engine/tokenizer/loaders.h"
#include "engine/tokenizer/test_vocabs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weft::tokenizer {
namespace {

using ::testing::ElementsAre;
using json = nlohmann::json;

// tokenizer.json equivalent of SmallBpeVocab (GPT-2 style: ByteLevel with use_regex).
json SmallTokenizerJson(bool pair_merges) {
  const Vocab v = testing::SmallBpeVocab();
  json vocab = json::object();
  for (int32_t id = 0; id < 267; ++id) vocab[v.tokens[id]] = id;
  json merges = json::array();
  for (const auto& [a, b] : v.merges) {
    merges.push_back(pair_merges ? json::array({a, b}) : json(a + " " + b));
  }
  json added = json::array();
  added.push_back({{"id", 267}, {"content", "<|endoftext|>"}, {"special", true}});
  added.push_back({{"id", 268}, {"content", "[EXTRA]"}, {"special", false}});
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
  };
}

std::unique_ptr<Tokenizer> Load(const json& j, std::string_view config = "",
                                std::string_view generation = "") {
  auto v = ParseHfTokenizerJson(j.dump(), config, generation, "test.json");
  EXPECT_TRUE(v.ok()) << v.status();
  if (!v.ok()) return nullptr;
  auto t = TokenizerFromVocab(*std::move(v));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TEST(HfTokenizerJson, StringAndPairMergesGiveTheSameTokenizer) {
  for (bool pairs : {false, true}) {
    auto tok = Load(SmallTokenizerJson(pairs));
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(tok->kind(), "bpe");
    EXPECT_EQ(tok->vocab_size(), 269);
    EXPECT_THAT(tok->Encode("hello world", {}), ElementsAre(259, 264));
    EXPECT_THAT(tok->Encode("[EXTRA]<|endoftext|>", {.parse_special = true}),
                ElementsAre(268, 267));
    EXPECT_EQ(tok->Decode(tok->Encode(" hello,  world!\n", {})), " hello,  world!\n");
    EXPECT_TRUE(tok->IsEndOfGeneration(267));  // by name, like llama.cpp
  }
}

TEST(HfTokenizerJson, SplitSequenceAndConfigs) {
  json j = SmallTokenizerJson(false);
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern", {{"Regex", R"((?i:'s|'t)| ?\p{L}+|\p{N}{1,3}|\s+(?!\S)|\s+)"}}},
                     {"behavior", "Isolated"},
                     {"invert", false}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "[EXTRA]"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}};
  auto tok =
      Load(j, R"({"eos_token": {"content": "<|endoftext|>"}})", R"({"eos_token_id": [267, 104]})");
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->add_bos_default());
  EXPECT_EQ(tok->bos_id(), 268);
  EXPECT_EQ(tok->eos_id(), 267);
  EXPECT_TRUE(tok->IsEndOfGeneration(104));  // from generation_config.json
  EXPECT_THAT(tok->Encode("hello world", {.add_bos = true}), ElementsAre(268, 259, 264));
  // \p{N}{1,3} splits digits into groups of three.
  EXPECT_THAT(tok->Encode("1234", {}), ElementsAre('1', '2', '3', '4'));
}

TEST(HfTokenizerJson, ConfigOverridesTemplateForAddBos) {
  json j = SmallTokenizerJson(false);
  auto tok = Load(j, R"({"bos_token": "[EXTRA]", "add_bos_token": true})");
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->add_bos_default());
  EXPECT_EQ(tok->bos_id(), 268);
}

TEST(HfTokenizerJson, Errors) {
  EXPECT_EQ(ParseHfTokenizerJson("{", "", "", "x.json").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHfTokenizerJson("[]", "", "", "x.json").status().code(),
            absl::StatusCode::kInvalidArgument);
  json j = SmallTokenizerJson(false);
  j["model"]["type"] = "WordPiece";
  EXPECT_EQ(ParseHfTokenizerJson(j.dump(), "", "", "x.json").status().code(),
            absl::StatusCode::kUnimplemented);
  j = SmallTokenizerJson(false);
  j["model"]["vocab"]["h"] = "not a number";
  EXPECT_EQ(ParseHfTokenizerJson(j.dump(), "", "", "x.json").status().code(),
            absl::StatusCode::kInvalidArgument);
  j = SmallTokenizerJson(false);
  j["model"]["merges"] = json::array({42});
  EXPECT_EQ(ParseHfTokenizerJson(j.dump(), "", "", "x.json").status().code(),
            absl::StatusCode::kInvalidArgument);
  j = SmallTokenizerJson(false);
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Removed"}};
  EXPECT_EQ(ParseHfTokenizerJson(j.dump(), "", "", "x.json").status().code(),
            absl::StatusCode::kUnimplemented);
  j = SmallTokenizerJson(false);
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = nullptr;
  auto s = ParseHfTokenizerJson(j.dump(), "", "", "x.json").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("x.json"));
  j = SmallTokenizerJson(false);
  j["added_tokens"].push_back({{"id", 5}, {"content", "clash"}});
  EXPECT_EQ(ParseHfTokenizerJson(j.dump(), "", "", "x.json").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft::tokenizer
