// SPDX-License-Identifier: Apache-2.0
// KvCache: the block bookkeeping the scheduler plans against (which sequence owns which KV blocks).
// Plan-then-apply: Plan* are const and return std::nullopt when blocks do not suffice; Apply
// commits a plan made since the last mutation. Implementations: PagedKvCache (the engine's, with
// prefix caching), FakeKvCache (block counting only, for tests). Single-threaded: owned by the
// engine thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace weft::kv {

using SeqId = int64_t;
using BlockId = int32_t;

// A pending allocation. Valid only until the cache's next mutation (Apply, MarkComputed, Free);
// applying a stale plan is a bug (WEFT_CHECK).
struct AllocationPlan {
  SeqId seq_id = -1;
  bool new_sequence = false;    // from PlanAdd: creates the sequence
  std::string extra_key;        // PlanAdd only: adapter name etc. (part of every block hash)
  std::vector<int32_t> tokens;  // tokens whose KV slots this plan reserves, in position order
  std::vector<BlockId> reused;  // PlanAdd only: cached prefix blocks shared with others
  int32_t n_cached_tokens = 0;  // PlanAdd only: = reused.size() * block_size
  int32_t n_fresh_blocks = 0;   // blocks taken from the free list / LRU at Apply
  uint64_t epoch = 0;           // the cache's mutation counter when planned
};

class KvCache {
 public:
  virtual ~KvCache() = default;

  virtual int32_t block_size() const = 0;  // tokens per block
  virtual int32_t total_blocks() const = 0;
  // Tokens of `tokens` whose KV is cached and would be reused by PlanAdd (a multiple of
  // block_size, at most len-1 so the last token is always computed). No side effects.
  virtual int32_t MatchPrefixTokens(std::span<const int32_t> tokens,
                                    std::string_view extra_key) const = 0;
  // A new sequence holding `tokens` (reusing the cached prefix): nullopt if blocks do not suffice.
  // `seq_id` must not exist.
  virtual std::optional<AllocationPlan> PlanAdd(SeqId seq_id, std::span<const int32_t> tokens,
                                                std::string_view extra_key) const = 0;
  // Slots for `tokens` appended to an existing sequence: nullopt if blocks do not suffice.
  virtual std::optional<AllocationPlan> PlanAppend(SeqId seq_id,
                                                   std::span<const int32_t> tokens) const = 0;
  virtual void Apply(const AllocationPlan& plan) = 0;
  // The sequence's first n_tokens positions now hold computed K/V: full blocks among them become
  // shareable (prefix cache). n_tokens never decreases and is at most the tokens held.
  virtual void MarkComputed(SeqId seq_id, int32_t n_tokens) = 0;
  // Releases the sequence's blocks (shared/cached ones stay cached). The sequence must exist.
  virtual void Free(SeqId seq_id) = 0;
};

}  // namespace weft::kv
