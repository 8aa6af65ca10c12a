// SPDX-License-Identifier: Apache-2.0
// Greedy generation reproduces the llama2.c reference token for token (stories260K, 200 steps),
// from the GGUF file and from the llama2.c checkpoint + tokenizer.bin, on every instruction-set
// level this CPU has, with the prompt run as one batch and token by token.
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "engine/kernels/kernels.h"
#include "engine/model/arch/llama.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_data.h"

namespace weft::model {
namespace {

struct Golden {
  std::string prompt;
  std::vector<int32_t> tokens_after_bos;
  std::string text;
};

std::vector<Golden> ReadGolden() {
  std::vector<Golden> out;
  std::ifstream in(testing::RequireTestData("models/stories260K/greedy_golden.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    out.push_back({j["prompt"], j["tokens_after_bos"].get<std::vector<int32_t>>(), j["text"]});
  }
  return out;
}

int32_t Argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

struct Case {
  std::string file;
  std::string tokenizer;  // empty: the model's own
  kernels::Isa isa;
  bool batched_prompt;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.file << " " << kernels::IsaName(c.isa) << (c.batched_prompt ? " batched" : " stepwise");
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.file.find(".gguf") != std::string::npos ? "gguf" : "llama2c";
  name += "_";
  name += kernels::IsaName(info.param.isa);
  name += info.param.batched_prompt ? "_batched" : "_stepwise";
  return name;
}

class GoldenTest : public ::testing::TestWithParam<Case> {};

TEST_P(GoldenTest, GreedyMatchesReference) {
  const Case& c = GetParam();
  if (!kernels::IsaSupported(c.isa)) GTEST_SKIP() << kernels::IsaName(c.isa) << " not on this CPU";
  LoadOptions lo;
  if (!c.tokenizer.empty()) lo.tokenizer_path = testing::RequireTestData(c.tokenizer);
  auto model = LoadModel(testing::RequireTestData(c.file), lo);
  ASSERT_TRUE(model.ok()) << model.status();
  auto tok = tokenizer::LoadTokenizer(**model);
  ASSERT_TRUE(tok.ok()) << tok.status();

  for (const Golden& g : ReadGolden()) {
    SCOPED_TRACE("prompt: '" + g.prompt + "'");
    std::vector<int32_t> prompt =
        (*tok)->Encode(g.prompt, {.add_bos = true, .parse_special = false});
    ASSERT_FALSE(prompt.empty());
    ASSERT_EQ(prompt[0], (*tok)->bos_id());
    ASSERT_LE(prompt.size() - 1, g.tokens_after_bos.size());
    for (size_t i = 1; i < prompt.size(); ++i) {
      ASSERT_EQ(prompt[i], g.tokens_after_bos[i - 1]) << "prompt token " << i;
    }
    auto fwd =
        LlamaForward::Create(**model, {.n_ctx = 256, .n_batch = 64, .n_threads = 2, .isa = c.isa});
    ASSERT_TRUE(fwd.ok()) << fwd.status();
    std::span<const float> logits;
    if (c.batched_prompt) {
      auto r = (*fwd)->Forward(prompt);
      ASSERT_TRUE(r.ok()) << r.status();
      logits = *r;
    } else {
      for (int32_t t : prompt) {
        auto r = (*fwd)->Forward(std::span<const int32_t>(&t, 1));
        ASSERT_TRUE(r.ok()) << r.status();
        logits = *r;
      }
    }
    std::vector<int32_t> got(prompt.begin() + 1, prompt.end());
    while (got.size() < g.tokens_after_bos.size()) {
      int32_t next = Argmax(logits);
      got.push_back(next);
      auto r = (*fwd)->Forward(std::span<const int32_t>(&next, 1));
      ASSERT_TRUE(r.ok()) << r.status();
      logits = *r;
    }
    ASSERT_EQ(got, g.tokens_after_bos);
    std::vector<int32_t> with_bos = {(*tok)->bos_id()};
    with_bos.insert(with_bos.end(), got.begin(), got.end());
    EXPECT_EQ((*tok)->Decode(with_bos), g.text);
  }
}

std::vector<Case> AllCases() {
  std::vector<Case> out;
  for (kernels::Isa isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
    for (bool batched : {true, false}) {
      out.push_back({"models/stories260K/stories260K.gguf", "", isa, batched});
      out.push_back(
          {"models/stories260K/stories260K.bin", "models/stories260K/tok512.bin", isa, batched});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Stories260K, GoldenTest, ::testing::ValuesIn(AllCases()), CaseName);

}  // namespace
}  // namespace weft::model
