// SPDX-License-Identifier: Apache-2.0
#include "engine/kv/paged_kv_cache.h"

#include <algorithm>
#include <utility>

#include "base/check.h"

namespace weft::kv {
namespace {

// splitmix64's finalizer: a bijection with full avalanche.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t HashBlock(uint64_t parent_hash, std::span<const int32_t> tokens,
                   std::string_view extra_key) {
  // FNV-1a over the key bytes, then each step below is a bijection of h for a given input.
  uint64_t key_hash = 0xcbf29ce484222325ull;
  for (unsigned char c : extra_key) key_hash = (key_hash ^ c) * 0x100000001b3ull;
  uint64_t h = Mix(parent_hash ^ 0x9e3779b97f4a7c15ull);
  h = Mix(h ^ key_hash);
  h = Mix(h ^ (static_cast<uint64_t>(extra_key.size()) << 32 | tokens.size()));
  for (int32_t t : tokens) h = Mix(h ^ static_cast<uint32_t>(t));
  return h;
}

PagedKvCache::PagedKvCache(const PagedKvCacheOptions& options)
    : n_blocks_(options.n_blocks), block_size_(options.block_size), blocks_(options.n_blocks) {
  WEFT_CHECK(n_blocks_ > 0 && block_size_ > 0);
  free_.reserve(n_blocks_);
  // Popped from the back: block 0 is handed out first (easier to read in tests and dumps).
  for (BlockId b = n_blocks_ - 1; b >= 0; --b) free_.push_back(b);
}

const PagedKvCache::Sequence& PagedKvCache::Seq(SeqId seq_id) const {
  auto it = seqs_.find(seq_id);
  WEFT_CHECK(it != seqs_.end());
  return it->second;
}

int32_t PagedKvCache::BlocksNeeded(int32_t table_size, int32_t n_tokens) const {
  const int32_t blocks = (n_tokens + block_size_ - 1) / block_size_;
  return std::max(0, blocks - table_size);
}

int32_t PagedKvCache::NumAvailableBlocks() const {
  return static_cast<int32_t>(free_.size() + lru_.size());
}

PrefixMatch PagedKvCache::MatchPrefix(std::span<const int32_t> tokens,
                                      std::string_view extra_key) const {
  PrefixMatch match;
  if (tokens.empty()) return match;
  const size_t max_blocks = (tokens.size() - 1) / block_size_;
  uint64_t parent = kRootBlockHash;
  for (size_t i = 0; i < max_blocks; ++i) {
    auto chunk = tokens.subspan(i * block_size_, block_size_);
    const uint64_t h = HashBlock(parent, chunk, extra_key);
    auto it = hash_to_block_.find(h);
    if (it == hash_to_block_.end()) break;
    const Block& b = blocks_[it->second];
    // Verify, so a 64-bit collision can never hand out another prompt's K/V.
    if (b.parent_hash != parent || b.extra_key != extra_key ||
        !std::equal(chunk.begin(), chunk.end(), b.tokens.begin(), b.tokens.end())) {
      break;
    }
    match.blocks.push_back(it->second);
    parent = h;
  }
  match.n_tokens = static_cast<int32_t>(match.blocks.size()) * block_size_;
  return match;
}

int32_t PagedKvCache::MatchPrefixTokens(std::span<const int32_t> tokens,
                                        std::string_view extra_key) const {
  return MatchPrefix(tokens, extra_key).n_tokens;
}

std::optional<AllocationPlan> PagedKvCache::PlanAdd(SeqId seq_id, std::span<const int32_t> tokens,
                                                    std::string_view extra_key) const {
  WEFT_CHECK(!seqs_.contains(seq_id));
  WEFT_CHECK(!tokens.empty());
  PrefixMatch match = MatchPrefix(tokens, extra_key);
  // Reused blocks that sit in the LRU stop being available once referenced.
  int32_t reused_evictable = 0;
  for (BlockId b : match.blocks) reused_evictable += blocks_[b].ref_count == 0 ? 1 : 0;
  const int32_t fresh =
      BlocksNeeded(static_cast<int32_t>(match.blocks.size()), static_cast<int32_t>(tokens.size()));
  if (fresh > NumAvailableBlocks() - reused_evictable) return std::nullopt;
  AllocationPlan plan;
  plan.seq_id = seq_id;
  plan.new_sequence = true;
  plan.extra_key = std::string(extra_key);
  plan.tokens.assign(tokens.begin(), tokens.end());
  plan.reused = std::move(match.blocks);
  plan.n_cached_tokens = match.n_tokens;
  plan.n_fresh_blocks = fresh;
  plan.epoch = epoch_;
  return plan;
}

std::optional<AllocationPlan> PagedKvCache::PlanAppend(SeqId seq_id,
                                                       std::span<const int32_t> tokens) const {
  const Sequence& seq = Seq(seq_id);
  const int32_t fresh = BlocksNeeded(static_cast<int32_t>(seq.table.size()),
                                     static_cast<int32_t>(seq.tokens.size() + tokens.size()));
  if (fresh > NumAvailableBlocks()) return std::nullopt;
  AllocationPlan plan;
  plan.seq_id = seq_id;
  plan.tokens.assign(tokens.begin(), tokens.end());
  plan.n_fresh_blocks = fresh;
  plan.epoch = epoch_;
  return plan;
}

BlockId PagedKvCache::TakeBlock() {
  BlockId b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    WEFT_CHECK(!lru_.empty());
    b = lru_.front();
    lru_.pop_front();
    Block& blk = blocks_[b];
    WEFT_CHECK(blk.hashed && blk.ref_count == 0);
    hash_to_block_.erase(blk.hash);
    blk.hashed = false;
    blk.tokens.clear();
    blk.extra_key.clear();
  }
  Block& blk = blocks_[b];
  WEFT_CHECK(blk.ref_count == 0 && !blk.hashed);
  blk.ref_count = 1;
  Touch(b);
  return b;
}

void PagedKvCache::Apply(const AllocationPlan& plan) {
  WEFT_CHECK(plan.epoch == epoch_);  // planned against the current state
  ++epoch_;
  if (plan.new_sequence) {
    WEFT_CHECK(!seqs_.contains(plan.seq_id));
    Sequence& seq = seqs_[plan.seq_id];
    seq.extra_key = plan.extra_key;
    for (BlockId b : plan.reused) {
      Block& blk = blocks_[b];
      WEFT_CHECK(blk.hashed);
      if (blk.ref_count++ == 0) lru_.erase(blk.lru_pos);
      Touch(b);
      seq.table.push_back(b);
      seq.block_hashes.push_back(blk.hash);
    }
    seq.n_computed = plan.n_cached_tokens;
    prefix_hit_tokens_ += plan.n_cached_tokens;
  }
  Sequence& seq = seqs_.at(plan.seq_id);
  seq.tokens.insert(seq.tokens.end(), plan.tokens.begin(), plan.tokens.end());
  for (int32_t i = 0; i < plan.n_fresh_blocks; ++i) seq.table.push_back(TakeBlock());
  WEFT_CHECK(static_cast<int64_t>(seq.table.size()) * block_size_ >=
             static_cast<int64_t>(seq.tokens.size()));
}

void PagedKvCache::MarkComputed(SeqId seq_id, int32_t n_tokens) {
  auto it = seqs_.find(seq_id);
  WEFT_CHECK(it != seqs_.end());
  Sequence& seq = it->second;
  WEFT_CHECK(n_tokens >= seq.n_computed && n_tokens <= static_cast<int32_t>(seq.tokens.size()));
  ++epoch_;
  seq.n_computed = n_tokens;
  const size_t full = n_tokens / block_size_;
  std::span<const int32_t> tokens(seq.tokens);
  while (seq.block_hashes.size() < full) {
    const size_t i = seq.block_hashes.size();
    const uint64_t parent = i == 0 ? kRootBlockHash : seq.block_hashes[i - 1];
    auto chunk = tokens.subspan(i * block_size_, block_size_);
    const uint64_t h = HashBlock(parent, chunk, seq.extra_key);
    seq.block_hashes.push_back(h);
    const BlockId b = seq.table[i];
    Block& blk = blocks_[b];
    // A block already cached under this hash (another sequence computed the same prefix at the
    // same time) keeps the entry; this copy stays private and returns to the free list later.
    if (blk.hashed || hash_to_block_.contains(h)) continue;
    hash_to_block_.emplace(h, b);
    blk.hashed = true;
    blk.hash = h;
    blk.parent_hash = parent;
    blk.extra_key = seq.extra_key;
    blk.tokens.assign(chunk.begin(), chunk.end());
  }
}

void PagedKvCache::Free(SeqId seq_id) {
  auto it = seqs_.find(seq_id);
  WEFT_CHECK(it != seqs_.end());
  ++epoch_;
  const std::vector<BlockId>& table = it->second.table;
  for (auto b_it = table.rbegin(); b_it != table.rend(); ++b_it) {
    const BlockId b = *b_it;
    Block& blk = blocks_[b];
    WEFT_CHECK(blk.ref_count > 0);
    Touch(b);
    if (--blk.ref_count > 0) continue;
    if (blk.hashed) {
      blk.lru_pos = lru_.insert(lru_.end(), b);
    } else {
      free_.push_back(b);
    }
  }
  seqs_.erase(it);
}

std::span<const BlockId> PagedKvCache::BlockTable(SeqId seq_id) const { return Seq(seq_id).table; }

int32_t PagedKvCache::NumTokens(SeqId seq_id) const {
  return static_cast<int32_t>(Seq(seq_id).tokens.size());
}

int32_t PagedKvCache::NumComputed(SeqId seq_id) const { return Seq(seq_id).n_computed; }

KvStats PagedKvCache::Stats() const {
  KvStats s;
  s.total_blocks = n_blocks_;
  s.free_blocks = static_cast<int32_t>(free_.size());
  s.evictable_blocks = static_cast<int32_t>(lru_.size());
  s.used_blocks = n_blocks_ - s.free_blocks - s.evictable_blocks;
  s.cached_blocks = static_cast<int32_t>(hash_to_block_.size());
  s.prefix_hit_tokens = prefix_hit_tokens_;
  s.n_sequences = static_cast<int32_t>(seqs_.size());
  return s;
}

std::vector<uint64_t> PagedKvCache::PrefixDigest(size_t max_n) const {
  std::vector<std::pair<uint64_t, uint64_t>> by_tick;  // (last_used, hash)
  by_tick.reserve(hash_to_block_.size());
  for (const auto& [hash, b] : hash_to_block_) by_tick.emplace_back(blocks_[b].last_used, hash);
  const size_t n = std::min(max_n, by_tick.size());
  std::partial_sort(by_tick.begin(), by_tick.begin() + n, by_tick.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<uint64_t> digest;
  digest.reserve(n);
  for (size_t i = 0; i < n; ++i) digest.push_back(by_tick[i].second);
  return digest;
}

}  // namespace weft::kv
