// SPDX-License-Identifier: Apache-2.0
#include "engine/scheduler/scheduler.h"

#include <numeric>
#include <vector>

#include "base/check.h"
#include "engine/kv/fake_kv_cache.h"
#include "engine/kv/paged_kv_cache.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<int32_t> Iota(int32_t n, int32_t start = 0) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

SequenceRequest Req(SeqId id, int32_t prompt_len, int32_t max_new = 8,
                    Priority priority = Priority::kInteractive, std::string client = "c",
                    int64_t arrival_ms = 0) {
  return SequenceRequest{.id = id,
                         .priority = priority,
                         .client = std::move(client),
                         .arrival_ms = arrival_ms,
                         .tokens = Iota(prompt_len, static_cast<int32_t>(id) * 1000),
                         .extra_key = "",
                         .max_new_tokens = max_new};
}

std::unique_ptr<Scheduler> Make(kv::KvCache* kv, int32_t budget, int32_t max_running = 8,
                                int64_t aging_ms = 0) {
  auto s = Scheduler::Create(
      {.max_tokens_per_step = budget, .max_running = max_running, .batch_aging_ms = aging_ms}, kv);
  WEFT_CHECK(s.ok());
  return *std::move(s);
}

// The engine's side of a step: computes the plan, appends a token to every sampled sequence.
void Finish(Scheduler& s, const StepPlan& plan) {
  s.CompleteStep(plan);
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.sample) s.AppendToken(c.id, 7);
  }
}

std::vector<SeqId> Ids(const std::vector<Admission>& a) {
  std::vector<SeqId> ids;
  for (const auto& x : a) ids.push_back(x.id);
  return ids;
}

MATCHER_P4(Chunk, id, pos, n, sample, "") {
  return arg.id == id && arg.pos == pos && arg.n_tokens == n && arg.sample == sample;
}

TEST(SchedulerTest, ChunkedPrefillWithinBudget) {
  kv::FakeKvCache kv(64, 4);
  auto s = Make(&kv, 8);
  ASSERT_TRUE(s->Add(Req(1, 20)).ok());
  StepPlan p = s->Step(0);
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(1, 0, 8, false)));
  EXPECT_THAT(Ids(p.admitted), ElementsAre(1));
  EXPECT_EQ(p.n_tokens, 8);
  EXPECT_EQ(kv.NumTokens(1), 20);  // whole prompt reserved at admission
  Finish(*s, p);
  EXPECT_EQ(kv.NumComputed(1), 8);
  p = s->Step(1);
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(1, 8, 8, false)));
  Finish(*s, p);
  p = s->Step(2);
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(1, 16, 4, true)));
  Finish(*s, p);
  p = s->Step(3);  // the sampled token is decoded next
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(1, 20, 1, true)));
  EXPECT_TRUE(p.chunks[0].decode);
  EXPECT_EQ(s->Tokens(1).size(), 21u);
  EXPECT_EQ(s->Tokens(1)[20], 7);
  EXPECT_EQ(kv.NumTokens(1), 21);
}

TEST(SchedulerTest, DecodesGoFirstThenPrefillShares) {
  kv::FakeKvCache kv(64, 4);
  auto s = Make(&kv, 8);
  ASSERT_TRUE(s->Add(Req(1, 3)).ok());
  Finish(*s, s->Step(0));  // 1 prefilled and sampled
  ASSERT_TRUE(s->Add(Req(2, 30)).ok());
  ASSERT_TRUE(s->Add(Req(3, 30)).ok());
  StepPlan p = s->Step(1);
  // 1 decodes; 2 takes the other 7 tokens; no budget left for 3.
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(1, 3, 1, true), Chunk(2, 0, 7, false)));
  EXPECT_THAT(Ids(p.admitted), ElementsAre(2));
  Finish(*s, p);
  p = s->Step(2);
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(1, 4, 1, true), Chunk(2, 7, 7, false)));
}

TEST(SchedulerTest, AdmitsOnlyWhenBlocksFitHeadOfLine) {
  kv::FakeKvCache kv(5, 4);
  auto s = Make(&kv, 64);
  ASSERT_TRUE(s->Add(Req(1, 12)).ok());  // 3 blocks
  ASSERT_TRUE(s->Add(Req(2, 12)).ok());  // 3 blocks: does not fit beside 1
  ASSERT_TRUE(s->Add(Req(3, 4)).ok());   // 1 block: would fit, but waits behind 2
  StepPlan p = s->Step(0);
  EXPECT_THAT(Ids(p.admitted), ElementsAre(1));
  Finish(*s, p);
  p = s->Step(1);
  EXPECT_THAT(Ids(p.admitted), IsEmpty());
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(1, 12, 1, true)));
  Finish(*s, p);
  s->Remove(1);
  EXPECT_EQ(kv.used_blocks(), 0);
  p = s->Step(2);
  EXPECT_THAT(Ids(p.admitted), ElementsAre(2, 3));
}

TEST(SchedulerTest, PreemptsNewestWhenBlocksRunOutAndResumes) {
  kv::FakeKvCache kv(3, 4);
  auto s = Make(&kv, 64);
  for (SeqId id = 1; id <= 3; ++id) ASSERT_TRUE(s->Add(Req(id, 4, 8)).ok());
  Finish(*s, s->Step(0));  // each holds one full block; sampled one token
  // Every decode needs a second block; none is free: 3 (newest) goes, then 2.
  StepPlan p = s->Step(1);
  EXPECT_THAT(p.preempted, ElementsAre(3, 2));
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(1, 4, 1, true)));
  EXPECT_FALSE(s->IsRunning(3));
  EXPECT_FALSE(kv.HasSequence(3));
  EXPECT_THAT(Ids(p.admitted), IsEmpty());  // not re-admitted in the step that preempted them
  Finish(*s, p);
  s->Remove(1);
  p = s->Step(2);
  // Re-admitted in FIFO order; their generated token is kept and recomputed with the prompt.
  ASSERT_EQ(p.admitted.size(), 1u);  // 2 needs 2 blocks (5 tokens); 3 needs 2 more: only 3 total
  EXPECT_EQ(p.admitted[0].id, 2);
  EXPECT_TRUE(p.admitted[0].resumed);
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(2, 0, 5, true)));
  EXPECT_EQ(s->Stats().preemptions, 2);
}

TEST(SchedulerTest, PreemptsItselfWhenNewest) {
  kv::FakeKvCache kv(3, 4);
  auto s = Make(&kv, 64);
  ASSERT_TRUE(s->Add(Req(1, 3, 4)).ok());  // 1 block
  ASSERT_TRUE(s->Add(Req(2, 8, 4)).ok());  // 2 blocks
  Finish(*s, s->Step(0));
  // 1 decodes into its own block; 2 (newest) needs a third block and only older ones hold any.
  StepPlan p = s->Step(1);
  EXPECT_THAT(p.preempted, ElementsAre(2));
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(1, 3, 1, true)));
  EXPECT_EQ(kv.used_blocks(), 1);
}

TEST(SchedulerTest, InteractiveBeforeBatch) {
  kv::FakeKvCache kv(64, 4);
  auto s = Make(&kv, 4, 4);
  ASSERT_TRUE(s->Add(Req(1, 4, 8, Priority::kBatch)).ok());
  ASSERT_TRUE(s->Add(Req(2, 4, 8, Priority::kInteractive)).ok());
  StepPlan p = s->Step(0);
  EXPECT_THAT(Ids(p.admitted), ElementsAre(2));  // budget 4: one prompt per step
  Finish(*s, p);
  p = s->Step(1);
  EXPECT_THAT(Ids(p.admitted), ElementsAre(1));
}

TEST(SchedulerTest, BatchPreemptedBeforeOlderInteractive) {
  kv::FakeKvCache kv(3, 4);
  auto s = Make(&kv, 64);
  ASSERT_TRUE(s->Add(Req(1, 4, 8, Priority::kBatch)).ok());
  Finish(*s, s->Step(0));
  ASSERT_TRUE(s->Add(Req(2, 4, 8, Priority::kInteractive)).ok());
  Finish(*s, s->Step(1));  // 1 decodes (block 2), 2 admitted (block 3)
  // 2 (interactive, newer) needs a block: the batch sequence goes, though it is older.
  StepPlan p = s->Step(2);
  EXPECT_THAT(p.preempted, ElementsAre(1));
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(2, 4, 1, true)));
}

TEST(SchedulerTest, BatchAgesIntoInteractive) {
  kv::FakeKvCache kv(64, 4);
  auto s = Make(&kv, 4, 4, /*aging_ms=*/1000);
  ASSERT_TRUE(s->Add(Req(1, 4, 8, Priority::kBatch, "a", /*arrival_ms=*/0)).ok());
  ASSERT_TRUE(s->Add(Req(2, 4, 8, Priority::kInteractive, "b", /*arrival_ms=*/900)).ok());
  StepPlan p = s->Step(1000);  // 1 waited 1000 ms: competes as interactive, submitted first
  EXPECT_THAT(Ids(p.admitted), ElementsAre(1));
}

TEST(SchedulerTest, FairBetweenClientsFifoWithin) {
  kv::FakeKvCache kv(64, 4);
  auto s = Make(&kv, 4, 4);  // one 4-token prompt per step
  for (SeqId id = 1; id <= 4; ++id) ASSERT_TRUE(s->Add(Req(id, 4, 1, {}, "heavy")).ok());
  ASSERT_TRUE(s->Add(Req(10, 4, 1, {}, "light")).ok());
  ASSERT_TRUE(s->Add(Req(20, 4, 1, {}, "other")).ok());
  std::vector<SeqId> order;
  for (int step = 0; step < 6; ++step) {
    StepPlan p = s->Step(step);
    for (auto& a : p.admitted) order.push_back(a.id);
    s->CompleteStep(p);
    for (auto& c : p.chunks) {
      if (c.sample) s->Remove(c.id);  // max_new_tokens 1: done after the first token
    }
  }
  EXPECT_THAT(order, ElementsAre(1, 10, 20, 2, 3, 4));
}

TEST(SchedulerTest, RejectsWhatCanNeverFit) {
  kv::FakeKvCache kv(4, 4);
  auto s = Make(&kv, 64);
  absl::Status st = s->Add(Req(1, 17, 1));
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("4 blocks of 4 tokens"));
  EXPECT_EQ(s->Add(Req(2, 10, 8)).code(), absl::StatusCode::kOutOfRange);  // 10 + 7 > 16
  EXPECT_TRUE(s->Add(Req(3, 10, 7)).ok());                                 // 10 + 6 <= 16
  EXPECT_EQ(s->Add(Req(3, 4)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->Add(Req(4, 0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(s->Contains(1));
}

TEST(SchedulerTest, BadOptions) {
  kv::FakeKvCache kv(4, 4);
  EXPECT_FALSE(Scheduler::Create({.max_tokens_per_step = 0}, &kv).ok());
  EXPECT_FALSE(Scheduler::Create({.max_tokens_per_step = 8, .max_running = 9}, &kv).ok());
  EXPECT_FALSE(Scheduler::Create({}, nullptr).ok());
}

TEST(SchedulerTest, RemoveAnyTimeFreesBlocks) {
  kv::FakeKvCache kv(16, 4);
  auto s = Make(&kv, 8);
  ASSERT_TRUE(s->Add(Req(1, 20)).ok());
  ASSERT_TRUE(s->Add(Req(2, 4)).ok());
  StepPlan p = s->Step(0);
  s->Remove(1);  // cancelled while its chunk is in flight
  EXPECT_FALSE(kv.HasSequence(1));
  s->Remove(2);  // still waiting
  s->Remove(99);
  s->CompleteStep(p);
  EXPECT_EQ(kv.used_blocks(), 0);
  EXPECT_EQ(s->Stats().running + s->Stats().waiting, 0);
  EXPECT_TRUE(s->Step(1).empty());
  EXPECT_TRUE(s->Step(2).empty());  // an empty plan needs no CompleteStep
}

TEST(SchedulerTest, PrefixCacheSkipsPrefill) {
  kv::PagedKvCache kv({.n_blocks = 16, .block_size = 4});
  auto s = Make(&kv, 64);
  SequenceRequest a = Req(1, 10);
  ASSERT_TRUE(s->Add(a).ok());
  StepPlan p = s->Step(0);
  EXPECT_EQ(p.admitted[0].cached_tokens, 0);
  Finish(*s, p);
  s->Remove(1);
  SequenceRequest b = a;
  b.id = 2;
  b.tokens.push_back(42);
  ASSERT_TRUE(s->Add(b).ok());
  p = s->Step(1);
  ASSERT_EQ(p.admitted.size(), 1u);
  EXPECT_EQ(p.admitted[0].cached_tokens, 8);
  EXPECT_THAT(p.chunks, ElementsAre(Chunk(2, 8, 3, true)));
  SequenceRequest c = a;  // another adapter: no reuse
  c.id = 3;
  c.extra_key = "lora";
  ASSERT_TRUE(s->Add(c).ok());
  Finish(*s, p);
  p = s->Step(2);
  EXPECT_EQ(p.admitted[0].cached_tokens, 0);
}

TEST(SchedulerDeathTest, ProtocolMisuse) {
  kv::FakeKvCache kv(16, 4);
  auto s = Make(&kv, 8);
  ASSERT_TRUE(s->Add(Req(1, 4, 1)).ok());
  StepPlan p = s->Step(0);
  EXPECT_DEATH(s->Step(1), "step_outstanding_");
  s->CompleteStep(p);
  EXPECT_DEATH(s->Step(1), "n_computed < len");  // sampled but neither appended nor removed
  s->AppendToken(1, 5);
  EXPECT_DEATH(s->AppendToken(1, 5), "WEFT_CHECK");
}

}  // namespace
}  // namespace weft::scheduler
