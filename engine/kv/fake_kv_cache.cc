// SPDX-License-Identifier: Apache-2.0
#include "engine/kv/fake_kv_cache.h"

#include <algorithm>

#include "base/check.h"

namespace weft::kv {

FakeKvCache::FakeKvCache(int32_t n_blocks, int32_t block_size)
    : n_blocks_(n_blocks), block_size_(block_size) {
  WEFT_CHECK(n_blocks > 0 && block_size > 0);
}

int32_t FakeKvCache::Needed(const Seq& s, int64_t n_new) const {
  const int64_t blocks = (s.n_tokens + n_new + block_size_ - 1) / block_size_;
  return static_cast<int32_t>(std::max<int64_t>(0, blocks - s.n_blocks));
}

std::optional<AllocationPlan> FakeKvCache::PlanAdd(SeqId seq_id, std::span<const int32_t> tokens,
                                                   std::string_view extra_key) const {
  WEFT_CHECK(!seqs_.contains(seq_id) && !tokens.empty());
  const int32_t need = Needed(Seq{}, static_cast<int64_t>(tokens.size()));
  if (need > free_blocks()) return std::nullopt;
  AllocationPlan plan;
  plan.seq_id = seq_id;
  plan.new_sequence = true;
  plan.extra_key = std::string(extra_key);
  plan.tokens.assign(tokens.begin(), tokens.end());
  plan.n_fresh_blocks = need;
  plan.epoch = epoch_;
  return plan;
}

std::optional<AllocationPlan> FakeKvCache::PlanAppend(SeqId seq_id,
                                                      std::span<const int32_t> tokens) const {
  auto it = seqs_.find(seq_id);
  WEFT_CHECK(it != seqs_.end());
  const int32_t need = Needed(it->second, static_cast<int64_t>(tokens.size()));
  if (need > free_blocks()) return std::nullopt;
  AllocationPlan plan;
  plan.seq_id = seq_id;
  plan.tokens.assign(tokens.begin(), tokens.end());
  plan.n_fresh_blocks = need;
  plan.epoch = epoch_;
  return plan;
}

void FakeKvCache::Apply(const AllocationPlan& plan) {
  WEFT_CHECK(plan.epoch == epoch_);
  ++epoch_;
  if (plan.new_sequence) {
    WEFT_CHECK(!seqs_.contains(plan.seq_id));
    seqs_[plan.seq_id] = Seq{};
  }
  Seq& s = seqs_.at(plan.seq_id);
  WEFT_CHECK(plan.n_fresh_blocks <= free_blocks());
  s.n_tokens += static_cast<int32_t>(plan.tokens.size());
  s.n_blocks += plan.n_fresh_blocks;
  used_ += plan.n_fresh_blocks;
}

void FakeKvCache::MarkComputed(SeqId seq_id, int32_t n_tokens) {
  Seq& s = seqs_.at(seq_id);
  WEFT_CHECK(n_tokens >= s.n_computed && n_tokens <= s.n_tokens);
  ++epoch_;
  s.n_computed = n_tokens;
}

void FakeKvCache::Free(SeqId seq_id) {
  auto it = seqs_.find(seq_id);
  WEFT_CHECK(it != seqs_.end());
  ++epoch_;
  used_ -= it->second.n_blocks;
  seqs_.erase(it);
}

}  // namespace weft::kv
