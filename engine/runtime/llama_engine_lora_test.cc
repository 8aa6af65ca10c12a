// SPDX-License-Identifier: Apache-2.0
// Multi-LoRA in the engine: requests for two adapters (GGUF LoRA form and PEFT form) and for the
// base model share batches, and each gets exactly the greedy tokens of a model whose weights the
// test merged (W + scale * B A); adapters load and unload while traffic runs.
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/lora/lora.h"
#include "engine/lora/lora_testing.h"
#include "engine/model/arch/llama.h"
#include "engine/model/model.h"
#include "engine/runtime/llama_engine.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::engine {
namespace {

class Sink : public EventSink {
 public:
  void OnToken(const TokenEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.push_back(e.token);
  }
  void OnFinish(const FinishEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = e.status;
    done_ = true;
    cv_.notify_all();
  }
  std::vector<int32_t> Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, std::chrono::seconds(120), [&] { return done_; }));
    EXPECT_TRUE(status_.ok()) << status_;
    return tokens_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> tokens_;
  absl::Status status_;
  bool done_ = false;
};

std::vector<int32_t> GreedyAlone(const std::string& model_path, const std::vector<int32_t>& prompt,
                                 int n) {
  auto model = model::LoadModel(model_path);
  EXPECT_TRUE(model.ok()) << model.status();
  auto fwd = model::LlamaForward::Create(**model, {.n_ctx = 256, .n_threads = 1});
  auto logits = (*fwd)->Forward(prompt);
  std::vector<int32_t> out;
  while (static_cast<int>(out.size()) < n) {
    int32_t best = 0;
    for (size_t i = 1; i < logits->size(); ++i) {
      if ((*logits)[i] > (*logits)[best]) best = static_cast<int32_t>(i);
    }
    out.push_back(best);
    logits = (*fwd)->Forward(std::span<const int32_t>(&out.back(), 1));
  }
  return out;
}

TEST(LlamaEngineLoraTest, MixedBatchEqualsMergedModels) {
  const std::string base_path =
      weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
  const std::string dir = weft::testing::MakeTempDir("weft_engine_lora_");
  auto base = model::LoadModel(base_path);
  ASSERT_TRUE(base.ok()) << base.status();

  // Two adapters of different ranks: one written as a GGUF LoRA, one as a PEFT directory.
  lora::testing::RandomLora ra =
      lora::testing::MakeRandomLora(**base, 4, 8.0f, lora::testing::AllTargets(), 1, 0.2f);
  lora::testing::RandomLora rb = lora::testing::MakeRandomLora(
      **base, 8, 16.0f, {lora::LoraTarget::kQ, lora::LoraTarget::kV, lora::LoraTarget::kDown}, 2,
      0.2f);
  const std::string a_path = dir + "/a.gguf", b_path = dir + "/b_peft";
  ASSERT_TRUE(lora::testing::WriteGgufLora(ra, (*base)->config, a_path).ok());
  ASSERT_TRUE(lora::testing::WritePeftLora(rb, b_path).ok());
  for (const auto& [path, out] :
       {std::pair{a_path, dir + "/merged_a.gguf"}, std::pair{b_path, dir + "/merged_b.gguf"}}) {
    auto adapter = lora::LoadLoraAdapter(path, **base);
    ASSERT_TRUE(adapter.ok()) << adapter.status();
    ASSERT_TRUE(lora::testing::MergeLoraIntoModel(**base, **adapter, out).ok());
  }

  auto tok = tokenizer::LoadTokenizer(**base);
  ASSERT_TRUE(tok.ok());
  LlamaEngineOptions o;
  o.model_id = "stories260K";
  o.n_threads = 2;
  auto engine = LlamaEngine::Create(*std::move(base), *std::move(tok), o);
  ASSERT_TRUE(engine.ok()) << engine.status();
  LlamaEngine& e = **engine;
  ASSERT_TRUE(e.LoadAdapter("a", a_path).ok());
  ASSERT_TRUE(e.LoadAdapter("b", b_path).ok());

  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Tom were", "Zoo"};
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"", base_path}, {"a", dir + "/merged_a.gguf"}, {"b", dir + "/merged_b.gguf"}};
  constexpr int kTokens = 40;
  std::vector<std::shared_ptr<Sink>> sinks;
  std::vector<std::vector<int32_t>> want;
  for (int round = 0; round < 3; ++round) {
    for (const auto& [adapter, merged] : variants) {
      for (const std::string& p : prompts) {
        EngineRequest r;
        r.id = absl::StrCat("r", sinks.size());
        r.prompt = e.tokenizer().Encode(p, {.add_bos = true});
        r.adapter = adapter;
        r.sampling = sampling::SamplingParams::Greedy();
        r.sampling.max_tokens = kTokens;
        r.sampling.ignore_eos = true;
        if (round == 0) want.push_back(GreedyAlone(merged, r.prompt, kTokens));
        auto sink = std::make_shared<Sink>();
        ASSERT_TRUE(e.Submit(r, sink).ok());
        sinks.push_back(sink);
      }
    }
  }
  // The adapters must actually change the output.
  EXPECT_NE(want[0], want[prompts.size()]);
  EXPECT_NE(want[0], want[2 * prompts.size()]);
  for (size_t i = 0; i < sinks.size(); ++i) {
    EXPECT_EQ(sinks[i]->Wait(), want[i % want.size()]) << "request " << i;
  }
  std::filesystem::remove_all(dir);
}

TEST(LlamaEngineLoraTest, LoadAndUnloadUnderTraffic) {
  const std::string base_path =
      weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
  const std::string dir = weft::testing::MakeTempDir("weft_engine_lora_traffic_");
  auto base = model::LoadModel(base_path);
  ASSERT_TRUE(base.ok());
  lora::testing::RandomLora ra =
      lora::testing::MakeRandomLora(**base, 4, 8.0f, lora::testing::AllTargets(), 3, 0.2f);
  ASSERT_TRUE(lora::testing::WriteGgufLora(ra, (*base)->config, dir + "/a.gguf").ok());
  auto tok = tokenizer::LoadTokenizer(**base);
  LlamaEngineOptions o;
  o.model_id = "stories260K";
  o.n_threads = 2;
  auto engine = LlamaEngine::Create(*std::move(base), *std::move(tok), o);
  ASSERT_TRUE(engine.ok());
  LlamaEngine& e = **engine;

  std::atomic<bool> stop{false};
  std::atomic<int> completed{0};
  std::thread traffic([&] {
    for (int i = 0; !stop; ++i) {
      EngineRequest r;
      r.id = absl::StrCat("t", i);
      r.prompt = e.tokenizer().Encode("The little dog", {.add_bos = true});
      r.sampling = sampling::SamplingParams::Greedy();
      r.sampling.max_tokens = 20;
      auto sink = std::make_shared<Sink>();
      ASSERT_TRUE(e.Submit(r, sink).ok());
      sink->Wait();
      ++completed;
    }
  });
  for (int k = 0; k < 5; ++k) {
    ASSERT_TRUE(e.LoadAdapter("a", dir + "/a.gguf").ok());
    EngineRequest r;
    r.id = absl::StrCat("a", k);
    r.prompt = e.tokenizer().Encode("Zoo", {.add_bos = true});
    r.adapter = "a";
    r.sampling = sampling::SamplingParams::Greedy();
    r.sampling.max_tokens = 10;
    auto sink = std::make_shared<Sink>();
    ASSERT_TRUE(e.Submit(r, sink).ok());
    EXPECT_EQ(sink->Wait().size(), 10u);
    ASSERT_TRUE(e.UnloadAdapter("a").ok());
    EXPECT_EQ(e.Submit(r, std::make_shared<Sink>()).code(), absl::StatusCode::kNotFound);
  }
  EXPECT_EQ(e.LoadAdapter("bad", dir + "/missing.gguf").code(), absl::StatusCode::kNotFound);
  stop = true;
  traffic.join();
  EXPECT_GT(completed.load(), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weft::engine
