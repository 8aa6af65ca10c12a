// SPDX-License-Identifier: Apache-2.0
// PagedKvCache: fixed-size KV blocks, per-sequence block tables and an automatic prefix cache
// (vLLM style): a full block is keyed by a chained hash of (parent hash, its tokens, extra key such
// as the LoRA adapter), shared by refcount, and kept in an LRU when unreferenced. Bookkeeping only:
// the K/V floats live in KvStorage (kv_storage.h). Single-threaded: owned by the engine thread.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/kv/kv_cache.h"

namespace weft::kv {

struct PagedKvCacheOptions {
  int32_t n_blocks = 0;
  int32_t block_size = 16;  // tokens per block
};

// The cached prefix PagedKvCache would reuse for a prompt.
struct PrefixMatch {
  std::vector<BlockId> blocks;  // in position order
  int32_t n_tokens = 0;         // blocks.size() * block_size
};

struct KvStats {
  int32_t total_blocks = 0;
  int32_t free_blocks = 0;       // on the free list (hold nothing)
  int32_t evictable_blocks = 0;  // cached prefixes with refcount 0 (reusable, or taken when needed)
  int32_t used_blocks = 0;       // refcount > 0; total = free + evictable + used
  int32_t cached_blocks = 0;     // blocks in the hash table (used or evictable)
  int64_t prefix_hit_tokens = 0;  // cumulative tokens reused by applied PlanAdd plans
  int32_t n_sequences = 0;
};

// Stable 64-bit hash of a full block (the same on every machine and run, so a gateway can compare
// prefix digests across replicas). parent_hash of the first block is kRootBlockHash.
inline constexpr uint64_t kRootBlockHash = 0x5745465450524546ull;  // "WEFTPREF"
uint64_t HashBlock(uint64_t parent_hash, std::span<const int32_t> tokens,
                   std::string_view extra_key);

class PagedKvCache final : public KvCache {
 public:
  explicit PagedKvCache(const PagedKvCacheOptions& options);  // n_blocks > 0, block_size > 0

  int32_t block_size() const override { return block_size_; }
  int32_t total_blocks() const override { return n_blocks_; }

  // Longest run of cached full blocks that prefixes `tokens` under `extra_key`, capped at
  // (len-1)/block_size blocks so at least the last token is recomputed (it needs logits).
  PrefixMatch MatchPrefix(std::span<const int32_t> tokens, std::string_view extra_key) const;
  int32_t MatchPrefixTokens(std::span<const int32_t> tokens,
                            std::string_view extra_key) const override;

  std::optional<AllocationPlan> PlanAdd(SeqId seq_id, std::span<const int32_t> tokens,
                                        std::string_view extra_key) const override;
  std::optional<AllocationPlan> PlanAppend(SeqId seq_id,
                                           std::span<const int32_t> tokens) const override;
  void Apply(const AllocationPlan& plan) override;
  void MarkComputed(SeqId seq_id, int32_t n_tokens) override;
  // Unreferenced hashed blocks go to the LRU tail (the sequence's last block first, so a prefix's
  // tail is evicted before its head); the others return to the free list.
  void Free(SeqId seq_id) override;

  bool HasSequence(SeqId seq_id) const { return seqs_.contains(seq_id); }
  // Block ids of the sequence, position j in block table[j / block_size]. Valid until the next
  // mutation. The sequence must exist.
  std::span<const BlockId> BlockTable(SeqId seq_id) const;
  int32_t NumTokens(SeqId seq_id) const;    // tokens whose slots are reserved
  int32_t NumComputed(SeqId seq_id) const;  // as last given to MarkComputed
  int32_t RefCount(BlockId block) const { return blocks_[block].ref_count; }
  // Blocks Apply could take right now (free + evictable).
  int32_t NumAvailableBlocks() const;
  KvStats Stats() const;
  // Hashes of up to max_n cached blocks, most recently used first (the load report's digest).
  std::vector<uint64_t> PrefixDigest(size_t max_n) const;

 private:
  struct Block {
    int32_t ref_count = 0;
    bool hashed = false;  // in hash_to_block_
    uint64_t hash = 0;
    uint64_t parent_hash = 0;
    std::string extra_key;
    std::vector<int32_t> tokens;           // [block_size] when hashed: verified on match
    uint64_t last_used = 0;                // tick of the last reference/release
    std::list<BlockId>::iterator lru_pos;  // valid when hashed && ref_count == 0
  };
  struct Sequence {
    std::string extra_key;
    std::vector<int32_t> tokens;  // tokens with reserved slots
    std::vector<BlockId> table;
    std::vector<uint64_t> block_hashes;  // chain hashes of the first n full computed blocks
    int32_t n_computed = 0;
  };

  const Sequence& Seq(SeqId seq_id) const;
  // Blocks needed to hold n_tokens given table_size blocks already held.
  int32_t BlocksNeeded(int32_t table_size, int32_t n_tokens) const;
  BlockId TakeBlock();  // a free block, else the LRU head evicted; WEFT_CHECKs availability
  void Touch(BlockId block) { blocks_[block].last_used = ++tick_; }

  int32_t n_blocks_;
  int32_t block_size_;
  std::vector<Block> blocks_;  // [n_blocks]
  std::vector<BlockId> free_;  // stack; popped from the back
  std::list<BlockId> lru_;     // evictable (hashed, refcount 0), least recently used first
  absl::flat_hash_map<uint64_t, BlockId> hash_to_block_;
  absl::flat_hash_map<SeqId, Sequence> seqs_;
  uint64_t epoch_ = 0;
  uint64_t tick_ = 0;
  int64_t prefix_hit_tokens_ = 0;
};

}  // namespace weft::kv
