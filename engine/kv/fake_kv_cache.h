// SPDX-License-Identifier: Apache-2.0
// FakeKvCache: a KvCache that only counts blocks (no prefix cache, no block ids), for scheduler
// tests. set_reserved_blocks() takes blocks away as if another user held them. Single-threaded.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "engine/kv/kv_cache.h"

namespace weft::kv {

class FakeKvCache final : public KvCache {
 public:
  FakeKvCache(int32_t n_blocks, int32_t block_size);

  int32_t block_size() const override { return block_size_; }
  int32_t total_blocks() const override { return n_blocks_; }
  int32_t MatchPrefixTokens(std::span<const int32_t>, std::string_view) const override { return 0; }
  std::optional<AllocationPlan> PlanAdd(SeqId seq_id, std::span<const int32_t> tokens,
                                        std::string_view extra_key) const override;
  std::optional<AllocationPlan> PlanAppend(SeqId seq_id,
                                           std::span<const int32_t> tokens) const override;
  void Apply(const AllocationPlan& plan) override;
  void MarkComputed(SeqId seq_id, int32_t n_tokens) override;
  void Free(SeqId seq_id) override;

  void set_reserved_blocks(int32_t n) { reserved_ = n; }
  int32_t used_blocks() const { return used_; }
  int32_t free_blocks() const { return n_blocks_ - reserved_ - used_; }
  bool HasSequence(SeqId seq_id) const { return seqs_.contains(seq_id); }
  int32_t NumTokens(SeqId seq_id) const { return seqs_.at(seq_id).n_tokens; }
  int32_t NumComputed(SeqId seq_id) const { return seqs_.at(seq_id).n_computed; }

 private:
  struct Seq {
    int32_t n_tokens = 0;
    int32_t n_blocks = 0;
    int32_t n_computed = 0;
  };
  int32_t Needed(const Seq& s, int64_t n_new) const;

  int32_t n_blocks_;
  int32_t block_size_;
  int32_t reserved_ = 0;
  int32_t used_ = 0;
  uint64_t epoch_ = 0;
  absl::flat_hash_map<SeqId, Seq> seqs_;
};

}  // namespace weft::kv
