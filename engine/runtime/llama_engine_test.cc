// SPDX-License-Identifier: Apache-2.0
// LlamaEngine on the real stories260K model: concurrent greedy requests equal the same prompts run
// alone; prefix-cache hits change nothing but cached_tokens; resumed streams continue exactly;
// cancelling frees blocks; bad requests get their status.
#include "engine/runtime/llama_engine.h"

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/arch/llama.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::engine {
namespace {

class CollectingSink : public EventSink {
 public:
  void OnToken(const TokenEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.push_back(e.token);
    text_ += e.text;
  }
  void OnFinish(const FinishEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    finish_ = e;
    text_ += e.tail_text;
    done_ = true;
    cv_.notify_all();
  }
  bool Wait(double seconds = 120) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return done_; });
  }
  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }
  FinishEvent finish() {
    std::lock_guard<std::mutex> lock(mu_);
    return finish_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> tokens_;
  std::string text_;
  FinishEvent finish_;
  bool done_ = false;
};

// The load report is published after each step; wait until it shows an idle engine.
LoadReport IdleLoad(const Engine& e) {
  LoadReport r = e.Load();
  for (int i = 0;
       i < 400 && (r.running != 0 || r.waiting != 0 || r.kv_blocks_free != r.kv_blocks_total);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    r = e.Load();
  }
  return r;
}

std::string ModelPath() {
  return weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
}

std::unique_ptr<LlamaEngine> MakeEngine(LlamaEngineOptions o = {}) {
  auto model = model::LoadModel(ModelPath());
  EXPECT_TRUE(model.ok()) << model.status();
  auto tok = tokenizer::LoadTokenizer(**model);
  EXPECT_TRUE(tok.ok()) << tok.status();
  if (o.model_id.empty()) o.model_id = "stories260K";
  if (o.n_threads == 1) o.n_threads = 2;
  auto e = LlamaEngine::Create(*std::move(model), *std::move(tok), o);
  EXPECT_TRUE(e.ok()) << e.status();
  return *std::move(e);
}

EngineRequest Greedy(const LlamaEngine& e, const std::string& id, const std::string& prompt,
                     int max_tokens) {
  EngineRequest r;
  r.id = id;
  r.prompt = e.tokenizer().Encode(prompt, {.add_bos = true});
  r.sampling = sampling::SamplingParams::Greedy();
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

// The reference: the prompt alone through the single-sequence forward pass, argmax each step.
std::vector<int32_t> Alone(const std::vector<int32_t>& prompt, int n) {
  auto model = model::LoadModel(ModelPath());
  auto fwd = model::LlamaForward::Create(**model, {.n_ctx = 512, .n_threads = 1});
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

TEST(LlamaEngineTest, ConcurrentGreedyEqualsAlone) {
  LlamaEngineOptions o;
  o.max_batch_tokens = 256;
  auto e = MakeEngine(o);
  const std::vector<std::string> prompts = {"Once upon a time",    "Zoo",
                                            "Lily and Tom were",   "The little dog",
                                            "One day, a big bear", "The sun was"};
  std::vector<std::vector<int32_t>> want;
  for (const auto& p : prompts)
    want.push_back(Alone(e->tokenizer().Encode(p, {.add_bos = true}), 60));
  constexpr int kRequests = 64;
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (int i = 0; i < kRequests; ++i) {
    auto sink = std::make_shared<CollectingSink>();
    sinks.push_back(sink);
    ASSERT_TRUE(
        e->Submit(Greedy(*e, absl::StrCat("r", i), prompts[i % prompts.size()], 60), sink).ok());
  }
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(sinks[i]->Wait()) << "request " << i << " did not finish";
    FinishEvent f = sinks[i]->finish();
    ASSERT_TRUE(f.status.ok()) << f.status;
    EXPECT_EQ(f.reason, sampling::FinishReason::kLength);
    EXPECT_EQ(f.completion_tokens, 60);
    EXPECT_EQ(sinks[i]->tokens(), want[i % prompts.size()]) << "request " << i;
  }
  LoadReport load = IdleLoad(*e);
  EXPECT_EQ(load.running, 0);
  EXPECT_EQ(load.waiting, 0);
  EXPECT_EQ(load.kv_blocks_free, load.kv_blocks_total);
}

TEST(LlamaEngineTest, PrefixCacheHitGivesSameTokens) {
  auto e = MakeEngine();
  const std::string prefix =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her friends. One day, she saw a big tree";
  auto first = std::make_shared<CollectingSink>();
  ASSERT_TRUE(e->Submit(Greedy(*e, "a", prefix + " and a bird.", 30), first).ok());
  ASSERT_TRUE(first->Wait());
  EXPECT_EQ(first->finish().cached_tokens, 0);
  auto second = std::make_shared<CollectingSink>();
  EngineRequest r = Greedy(*e, "b", prefix + " and a cat.", 30);
  ASSERT_TRUE(e->Submit(r, second).ok());
  ASSERT_TRUE(second->Wait());
  EXPECT_GT(second->finish().cached_tokens, 16);
  EXPECT_EQ(second->tokens(), Alone(r.prompt, 30));
  EXPECT_GT(e->Load().prefix_hit_tokens, 0);
}

TEST(LlamaEngineTest, ResumeContinuesExactly) {
  auto e = MakeEngine();
  for (bool seeded : {false, true}) {
    EngineRequest full = Greedy(*e, "full", "Lily and Tom were", 50);
    if (seeded) {
      full.sampling.temperature = 1.0f;
      full.sampling.seed = 1234;
    }
    auto a = std::make_shared<CollectingSink>();
    ASSERT_TRUE(e->Submit(full, a).ok());
    ASSERT_TRUE(a->Wait());
    const std::vector<int32_t> all = a->tokens();
    ASSERT_EQ(all.size(), 50u);
    for (int k : {1, 17, 49}) {
      EngineRequest resumed = full;
      resumed.id = absl::StrCat("resumed", k);
      resumed.resume.assign(all.begin(), all.begin() + k);
      auto b = std::make_shared<CollectingSink>();
      ASSERT_TRUE(e->Submit(resumed, b).ok());
      ASSERT_TRUE(b->Wait());
      EXPECT_EQ(b->finish().completion_tokens, 50);
      EXPECT_EQ(b->tokens(), std::vector<int32_t>(all.begin() + k, all.end()))
          << "seeded " << seeded << " k " << k;
    }
  }
}

TEST(LlamaEngineTest, CancelFreesBlocks) {
  auto e = MakeEngine();
  auto sink = std::make_shared<CollectingSink>();
  EngineRequest r = Greedy(*e, "long", "Once upon a time", 400);
  ASSERT_TRUE(e->Submit(r, sink).ok());
  while (sink->tokens().size() < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  e->Cancel("long");
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->finish().status.code(), absl::StatusCode::kCancelled);
  LoadReport load = IdleLoad(*e);
  EXPECT_EQ(load.kv_blocks_free, load.kv_blocks_total);
  EXPECT_EQ(load.running, 0);
}

TEST(LlamaEngineTest, BadRequests) {
  LlamaEngineOptions o;
  o.n_ctx = 64;
  auto e = MakeEngine(o);
  auto sink = std::make_shared<CollectingSink>();
  EngineRequest r = Greedy(*e, "x", "hi", 5);
  r.prompt.push_back(100000);
  EXPECT_EQ(e->Submit(r, sink).code(), absl::StatusCode::kInvalidArgument);
  r = Greedy(*e, "x", std::string(400, 'a'), 5);
  EXPECT_EQ(e->Submit(r, sink).code(), absl::StatusCode::kOutOfRange);
  r = Greedy(*e, "x", "hi", 5);
  r.adapter = "nope";
  EXPECT_EQ(e->Submit(r, sink).code(), absl::StatusCode::kNotFound);
  r = Greedy(*e, "x", "hi", 5);
  r.sampling.top_p = 7;
  EXPECT_EQ(e->Submit(r, sink).code(), absl::StatusCode::kInvalidArgument);
}

TEST(LlamaEngineTest, QueueFullIsResourceExhausted) {
  LlamaEngineOptions o;
  o.max_running = 1;
  o.max_waiting = 2;
  auto e = MakeEngine(o);
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  int rejected = 0;
  for (int i = 0; i < 10; ++i) {
    auto sink = std::make_shared<CollectingSink>();
    absl::Status s = e->Submit(Greedy(*e, absl::StrCat("q", i), "Once upon a time", 200), sink);
    if (s.ok()) {
      sinks.push_back(sink);
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
      ++rejected;
    }
  }
  EXPECT_GE(rejected, 7);
  for (auto& s : sinks) ASSERT_TRUE(s->Wait());
}

}  // namespace
}  // namespace weft::engine
