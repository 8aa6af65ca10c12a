// SPDX-License-Identifier: Apache-2.0
#include "testing/fake_engine.h"

#include <chrono>
#include <future>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::testing {
namespace {

using ::testing::ElementsAre;

// Collects one request's events; Wait() blocks until OnFinish.
class Collector : public engine::EventSink {
 public:
  void OnToken(const engine::TokenEvent& e) override {
    std::lock_guard lock(mu_);
    tokens.push_back(e.token);
    text += e.text;
    if (e.logprobs) logprobs.push_back(*e.logprobs);
  }
  void OnFinish(const engine::FinishEvent& e) override {
    std::lock_guard lock(mu_);
    finish = e;
    text += e.tail_text;
    done_.set_value();
  }
  void Wait() { ASSERT_EQ(future_.wait_for(std::chrono::seconds(10)), std::future_status::ready); }

  std::vector<int32_t> tokens;
  std::string text;
  std::vector<sampling::TokenLogprobs> logprobs;
  engine::FinishEvent finish;

 private:
  std::mutex mu_;
  std::promise<void> done_;
  std::future<void> future_ = done_.get_future();
};

engine::EngineRequest Req(std::string id, const std::string& prompt, int32_t max_tokens) {
  FakeTokenizer tok;
  engine::EngineRequest r;
  r.id = std::move(id);
  r.prompt = tok.Encode(prompt, {});
  r.sampling = sampling::SamplingParams::Greedy();
  r.sampling.max_tokens = max_tokens;
  return r;
}

TEST(FakeEngineTest, DeterministicGenerationAndLimits) {
  FakeEngine engine;
  auto sink = std::make_shared<Collector>();
  ASSERT_TRUE(engine.Submit(Req("a", "abc", 5), sink).ok());
  sink->Wait();
  EXPECT_EQ(sink->text, "bcdbc");
  EXPECT_TRUE(sink->finish.status.ok());
  EXPECT_EQ(sink->finish.reason, sampling::FinishReason::kLength);
  EXPECT_EQ(sink->finish.prompt_tokens, 3);
  EXPECT_EQ(sink->finish.completion_tokens, 5);
}

TEST(FakeEngineTest, StopStringsEosAndResume) {
  FakeEngineOptions options;
  options.eos_after = 4;
  FakeEngine engine(options);
  auto stop = std::make_shared<Collector>();
  auto r = Req("s", "abc", 20);
  r.sampling.stop = {"db"};
  ASSERT_TRUE(engine.Submit(r, stop).ok());
  stop->Wait();
  EXPECT_EQ(stop->text, "bc");
  EXPECT_EQ(stop->finish.reason, sampling::FinishReason::kStopString);

  auto eos = std::make_shared<Collector>();
  ASSERT_TRUE(engine.Submit(Req("e", "abc", 20), eos).ok());
  eos->Wait();
  EXPECT_EQ(eos->text, "bcdb");
  EXPECT_EQ(eos->finish.reason, sampling::FinishReason::kEndOfGeneration);

  auto ignore = std::make_shared<Collector>();
  auto ri = Req("i", "abc", 6);
  ri.sampling.ignore_eos = true;
  ASSERT_TRUE(engine.Submit(ri, ignore).ok());
  ignore->Wait();
  EXPECT_EQ(ignore->finish.reason, sampling::FinishReason::kLength);
  EXPECT_EQ(ignore->tokens.size(), 6u);

  // Resumed after "bc": continues with "db", counting the resumed tokens.
  auto resumed = std::make_shared<Collector>();
  auto rr = Req("r", "abc", 4);
  rr.resume = {FakeTokenizer::kByteOffset + 'b', FakeTokenizer::kByteOffset + 'c'};
  ASSERT_TRUE(engine.Submit(rr, resumed).ok());
  resumed->Wait();
  EXPECT_EQ(resumed->text, "db");
  EXPECT_EQ(resumed->finish.completion_tokens, 4);
}

TEST(FakeEngineTest, SeedShiftsSampledOutputAndLogprobs) {
  FakeEngine engine;
  auto a = std::make_shared<Collector>();
  auto r = Req("a", "abc", 3);
  r.sampling.temperature = 1;
  r.sampling.seed = 1;
  r.sampling.top_logprobs = 2;
  r.logprobs = true;
  ASSERT_TRUE(engine.Submit(r, a).ok());
  a->Wait();
  EXPECT_EQ(a->text, "cdb");
  ASSERT_EQ(a->logprobs.size(), 3u);
  EXPECT_EQ(a->logprobs[0].top.size(), 2u);
}

TEST(FakeEngineTest, ErrorsQueueAndCancel) {
  FakeEngineOptions options;
  options.max_waiting = 2;
  options.n_ctx = 8;
  FakeEngine engine(options);
  EXPECT_EQ(engine.Submit(Req("long", "123456789", 1), std::make_shared<Collector>()).code(),
            absl::StatusCode::kOutOfRange);
  auto bad_adapter = Req("x", "ab", 1);
  bad_adapter.adapter = "nope";
  EXPECT_EQ(engine.Submit(bad_adapter, std::make_shared<Collector>()).code(),
            absl::StatusCode::kNotFound);
  engine.Pause();
  auto c1 = std::make_shared<Collector>(), c2 = std::make_shared<Collector>();
  ASSERT_TRUE(engine.Submit(Req("1", "ab", 3), c1).ok());
  ASSERT_TRUE(engine.Submit(Req("2", "ab", 3), c2).ok());
  EXPECT_EQ(engine.Submit(Req("3", "ab", 3), std::make_shared<Collector>()).code(),
            absl::StatusCode::kResourceExhausted);
  engine.Cancel("1");
  engine.Resume();
  c1->Wait();
  c2->Wait();
  EXPECT_EQ(c1->finish.status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(c2->finish.status.ok());
  EXPECT_THAT(engine.cancelled(), ElementsAre("1"));
  EXPECT_EQ(engine.submitted().size(), 2u);
  EXPECT_TRUE(engine.LoadAdapter("ad", "/x").ok());
  EXPECT_THAT(engine.Load().adapters, ElementsAre("ad"));
  EXPECT_TRUE(engine.UnloadAdapter("ad").ok());
  EXPECT_EQ(engine.UnloadAdapter("ad").code(), absl::StatusCode::kNotFound);
}

TEST(FakeEngineTest, ShutdownDrainsThenCancels) {
  FakeEngineOptions options;
  options.step_interval_s = 0.01;
  FakeEngine engine(options);
  auto slow = std::make_shared<Collector>();
  auto r = Req("slow", "ab", 0);  // no limit: runs to n_ctx (~2.5 s)
  ASSERT_TRUE(engine.Submit(r, slow).ok());
  engine.Shutdown(0.05);
  slow->Wait();
  EXPECT_EQ(slow->finish.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(engine.Submit(Req("late", "ab", 1), std::make_shared<Collector>()).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace weft::testing
