// SPDX-License-Identifier: Apache-2.0
#include <numeric>
#include <vector>

#include "engine/kv/fake_kv_cache.h"
#include "engine/kv/kv_storage.h"
#include "engine/kv/paged_kv_cache.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::kv {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<int32_t> Iota(int32_t n, int32_t start = 0) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

PagedKvCache MakeCache(int32_t n_blocks, int32_t block_size = 4) {
  return PagedKvCache(PagedKvCacheOptions{.n_blocks = n_blocks, .block_size = block_size});
}

// Adds a sequence holding `tokens` and marks all of them computed.
void AddComputed(PagedKvCache& kv, SeqId id, const std::vector<int32_t>& tokens,
                 std::string_view key = "") {
  auto plan = kv.PlanAdd(id, tokens, key);
  ASSERT_TRUE(plan.has_value());
  kv.Apply(*plan);
  kv.MarkComputed(id, static_cast<int32_t>(tokens.size()));
}

TEST(PagedKvCacheTest, AddAllocatesCeilBlocksInOrder) {
  PagedKvCache kv = MakeCache(8);
  auto plan = kv.PlanAdd(1, Iota(9), "");
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->n_fresh_blocks, 3);
  EXPECT_EQ(plan->n_cached_tokens, 0);
  EXPECT_THAT(plan->reused, IsEmpty());
  kv.Apply(*plan);
  EXPECT_THAT(kv.BlockTable(1), ElementsAre(0, 1, 2));
  EXPECT_EQ(kv.NumTokens(1), 9);
  EXPECT_EQ(kv.NumComputed(1), 0);
  KvStats s = kv.Stats();
  EXPECT_EQ(s.free_blocks, 5);
  EXPECT_EQ(s.used_blocks, 3);
  EXPECT_EQ(s.evictable_blocks, 0);
}

TEST(PagedKvCacheTest, PlansHaveNoSideEffects) {
  PagedKvCache kv = MakeCache(4);
  AddComputed(kv, 1, Iota(8));
  const KvStats before = kv.Stats();
  auto add = kv.PlanAdd(2, Iota(9), "");
  auto append = kv.PlanAppend(1, Iota(5, 100));
  ASSERT_TRUE(add.has_value());
  ASSERT_TRUE(append.has_value());
  EXPECT_EQ(add->n_cached_tokens, 8);  // both blocks reused; 1 fresh for token 8
  EXPECT_EQ(add->n_fresh_blocks, 1);
  EXPECT_EQ(append->n_fresh_blocks, 2);
  const KvStats after = kv.Stats();
  EXPECT_EQ(after.free_blocks, before.free_blocks);
  EXPECT_EQ(after.used_blocks, before.used_blocks);
  EXPECT_EQ(after.prefix_hit_tokens, before.prefix_hit_tokens);
  EXPECT_FALSE(kv.HasSequence(2));
  EXPECT_EQ(kv.NumTokens(1), 8);
  EXPECT_EQ(kv.RefCount(0), 1);
}

TEST(PagedKvCacheTest, AppendFillsPartialBlockBeforeTakingNew) {
  PagedKvCache kv = MakeCache(4);
  AddComputed(kv, 1, Iota(5));
  auto p = kv.PlanAppend(1, std::vector<int32_t>{7, 8, 9});  // 5 -> 8 tokens: still 2 blocks
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->n_fresh_blocks, 0);
  kv.Apply(*p);
  p = kv.PlanAppend(1, std::vector<int32_t>{10});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->n_fresh_blocks, 1);
  kv.Apply(*p);
  EXPECT_THAT(kv.BlockTable(1), ElementsAre(0, 1, 2));
}

TEST(PagedKvCacheTest, NotEnoughBlocksIsNullopt) {
  PagedKvCache kv = MakeCache(2);
  EXPECT_FALSE(kv.PlanAdd(1, Iota(9), "").has_value());
  AddComputed(kv, 1, Iota(8));
  EXPECT_FALSE(kv.PlanAppend(1, std::vector<int32_t>{1}).has_value());
  EXPECT_TRUE(kv.PlanAppend(1, {}).has_value());
}

TEST(PagedKvCacheTest, PrefixSharedByRefcountAndNeverWholePrompt) {
  PagedKvCache kv = MakeCache(8);
  AddComputed(kv, 1, Iota(10));  // blocks 0,1 full and hashed; block 2 partial
  // Exactly 8 tokens: capped at (8-1)/4 = 1 block, the last token must be recomputed.
  EXPECT_EQ(kv.MatchPrefix(Iota(8), "").n_tokens, 4);
  EXPECT_EQ(kv.MatchPrefix(Iota(9), "").n_tokens, 8);
  EXPECT_THAT(kv.MatchPrefix(Iota(20), "").blocks, ElementsAre(0, 1));
  EXPECT_EQ(kv.MatchPrefix(Iota(1), "").n_tokens, 0);
  EXPECT_EQ(kv.MatchPrefix({}, "").n_tokens, 0);

  auto plan = kv.PlanAdd(2, Iota(12), "");
  ASSERT_TRUE(plan.has_value());
  EXPECT_THAT(plan->reused, ElementsAre(0, 1));
  kv.Apply(*plan);
  EXPECT_THAT(kv.BlockTable(2), ElementsAre(0, 1, 3));
  EXPECT_EQ(kv.NumComputed(2), 8);
  EXPECT_EQ(kv.RefCount(0), 2);
  EXPECT_EQ(kv.RefCount(1), 2);
  EXPECT_EQ(kv.RefCount(3), 1);
  EXPECT_EQ(kv.Stats().prefix_hit_tokens, 8);
  kv.Free(1);
  EXPECT_EQ(kv.RefCount(0), 1);
  EXPECT_EQ(kv.RefCount(2), 0);
  // Block 2 (partial, unhashed) is free again; 0 and 1 are still used by sequence 2.
  KvStats s = kv.Stats();
  EXPECT_EQ(s.used_blocks, 3);
  EXPECT_EQ(s.evictable_blocks, 0);
  EXPECT_EQ(s.free_blocks, 5);
}

TEST(PagedKvCacheTest, DivergentPrefixMatchesUpToDivergence) {
  PagedKvCache kv = MakeCache(8);
  AddComputed(kv, 1, Iota(12));
  std::vector<int32_t> other = Iota(13);
  other[5] = 999;  // second block differs
  EXPECT_EQ(kv.MatchPrefix(other, "").n_tokens, 4);
  other = Iota(13);
  other[0] = 999;  // chaining: a changed first block invalidates everything after it
  EXPECT_EQ(kv.MatchPrefix(other, "").n_tokens, 0);
}

TEST(PagedKvCacheTest, HashChainsParent) {
  const std::vector<int32_t> a = {1, 2, 3, 4};
  const uint64_t h1 = HashBlock(kRootBlockHash, a, "");
  EXPECT_NE(HashBlock(h1, a, ""), h1);
  EXPECT_NE(HashBlock(h1, a, ""), HashBlock(kRootBlockHash + 1, a, ""));
  EXPECT_EQ(HashBlock(h1, a, "x"), HashBlock(h1, a, "x"));
  // Stable across builds and machines: the gateway compares digests between replicas.
  EXPECT_EQ(HashBlock(kRootBlockHash, a, ""), HashBlock(kRootBlockHash, a, ""));
  // The same block content at a different place in a prompt is a different block.
  PagedKvCache kv = MakeCache(8);
  AddComputed(kv, 1, {9, 9, 9, 9, 1, 2, 3, 4, 0});
  EXPECT_EQ(kv.MatchPrefix(std::vector<int32_t>{1, 2, 3, 4, 0}, "").n_tokens, 0);
  EXPECT_EQ(kv.MatchPrefix(std::vector<int32_t>{9, 9, 9, 9, 1, 2, 3, 4, 5}, "").n_tokens, 8);
}

TEST(PagedKvCacheTest, AdapterKeySeparatesPrefixes) {
  PagedKvCache kv = MakeCache(8);
  AddComputed(kv, 1, Iota(9), "customer-a");
  EXPECT_EQ(kv.MatchPrefix(Iota(9), "customer-a").n_tokens, 8);
  EXPECT_EQ(kv.MatchPrefix(Iota(9), "customer-b").n_tokens, 0);
  EXPECT_EQ(kv.MatchPrefix(Iota(9), "").n_tokens, 0);
  EXPECT_NE(HashBlock(kRootBlockHash, Iota(4), "a"), HashBlock(kRootBlockHash, Iota(4), "b"));
  EXPECT_NE(HashBlock(kRootBlockHash, Iota(4), "ab"), HashBlock(kRootBlockHash, Iota(4), "a"));
}

TEST(PagedKvCacheTest, OnlyComputedFullBlocksAreShared) {
  PagedKvCache kv = MakeCache(8);
  auto plan = kv.PlanAdd(1, Iota(12), "");
  kv.Apply(*plan);
  EXPECT_EQ(kv.MatchPrefix(Iota(13), "").n_tokens, 0);  // reserved, not computed yet
  kv.MarkComputed(1, 7);
  EXPECT_EQ(kv.MatchPrefix(Iota(13), "").n_tokens, 4);
  kv.MarkComputed(1, 12);
  EXPECT_EQ(kv.MatchPrefix(Iota(13), "").n_tokens, 12);
  EXPECT_EQ(kv.Stats().cached_blocks, 3);
}

TEST(PagedKvCacheTest, FreedPrefixStaysCachedAndIsReused) {
  PagedKvCache kv = MakeCache(4);
  AddComputed(kv, 1, Iota(10));
  kv.Free(1);
  KvStats s = kv.Stats();
  EXPECT_EQ(s.evictable_blocks, 2);
  EXPECT_EQ(s.free_blocks, 2);
  EXPECT_EQ(s.used_blocks, 0);
  EXPECT_EQ(kv.NumAvailableBlocks(), 4);
  auto plan = kv.PlanAdd(2, Iota(9), "");
  ASSERT_TRUE(plan.has_value());
  EXPECT_THAT(plan->reused, ElementsAre(0, 1));
  kv.Apply(*plan);
  EXPECT_EQ(kv.RefCount(0), 1);
  s = kv.Stats();
  EXPECT_EQ(s.evictable_blocks, 0);
  EXPECT_EQ(s.used_blocks, 3);
  EXPECT_EQ(s.prefix_hit_tokens, 8);
}

TEST(PagedKvCacheTest, ReusedEvictableBlocksDoNotCountAsAvailable) {
  PagedKvCache kv = MakeCache(3);
  AddComputed(kv, 1, Iota(8));
  kv.Free(1);  // blocks 0,1 evictable, block 2 free: 3 available
  // 13 tokens: reuses 0,1 and needs 2 fresh blocks, but only block 2 remains once 0,1 are pinned.
  EXPECT_FALSE(kv.PlanAdd(2, Iota(13), "").has_value());
  EXPECT_TRUE(kv.PlanAdd(2, Iota(12), "").has_value());
  // A prompt that does not match may evict them instead.
  auto plan = kv.PlanAdd(3, Iota(12, 50), "");
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->n_fresh_blocks, 3);
}

TEST(PagedKvCacheTest, FreeListFirstThenLruEvictionOrder) {
  PagedKvCache kv = MakeCache(6);
  AddComputed(kv, 1, Iota(8));       // blocks 0,1
  AddComputed(kv, 2, Iota(8, 100));  // blocks 2,3
  kv.Free(2);                        // LRU: 3, 2 (a sequence's last block first)
  kv.Free(1);                        // LRU: 3, 2, 1, 0
  EXPECT_EQ(kv.Stats().evictable_blocks, 4);
  // Free blocks 4,5 go first; then the LRU head.
  auto plan = kv.PlanAdd(3, Iota(16, 500), "");
  ASSERT_TRUE(plan.has_value());
  kv.Apply(*plan);
  EXPECT_THAT(kv.BlockTable(3), ElementsAre(4, 5, 3, 2));
  // Sequence 2's prefix is gone (its head block 2 was evicted), sequence 1's survives.
  EXPECT_EQ(kv.MatchPrefix(Iota(9, 100), "").n_tokens, 0);
  EXPECT_EQ(kv.MatchPrefix(Iota(9), "").n_tokens, 8);
  EXPECT_EQ(kv.Stats().cached_blocks, 2);
}

TEST(PagedKvCacheTest, ReuseRefreshesLruPosition) {
  PagedKvCache kv = MakeCache(4);
  AddComputed(kv, 1, Iota(4));       // block 0 (4 tokens: full, hashed)
  AddComputed(kv, 2, Iota(4, 100));  // block 1
  kv.Free(1);
  kv.Free(2);                   // LRU: 0, 1
  AddComputed(kv, 3, Iota(5));  // reuses block 0 (+ block 3 fresh... from free list: 3)
  kv.Free(3);                   // LRU: 1, 3?, 0 -> block 0 now most recent
  EXPECT_EQ(kv.MatchPrefix(Iota(5), "").n_tokens, 4);
  // Take all 4 blocks: free block(s) first, then LRU 1 before 0.
  auto plan = kv.PlanAdd(4, Iota(12, 900), "");
  ASSERT_TRUE(plan.has_value());
  kv.Apply(*plan);
  EXPECT_EQ(kv.MatchPrefix(Iota(5), "").n_tokens, 4);       // block 0 survived
  EXPECT_EQ(kv.MatchPrefix(Iota(5, 100), "").n_tokens, 0);  // block 1 evicted
}

TEST(PagedKvCacheTest, DuplicateComputationKeepsFirstEntry) {
  PagedKvCache kv = MakeCache(8);
  auto p1 = kv.PlanAdd(1, Iota(5), "");
  kv.Apply(*p1);
  auto p2 = kv.PlanAdd(2, Iota(5), "");  // nothing cached yet: computes its own copy
  kv.Apply(*p2);
  kv.MarkComputed(1, 5);
  kv.MarkComputed(2, 5);
  EXPECT_EQ(kv.Stats().cached_blocks, 1);
  EXPECT_THAT(kv.MatchPrefix(Iota(5), "").blocks, ElementsAre(0));
  kv.Free(2);  // its copy of the block was never hashed: back to the free list
  KvStats s = kv.Stats();
  EXPECT_EQ(s.evictable_blocks, 0);
  EXPECT_EQ(s.used_blocks, 2);
}

TEST(PagedKvCacheTest, PrefixDigestMostRecentFirst) {
  PagedKvCache kv = MakeCache(8);
  AddComputed(kv, 1, Iota(4));
  AddComputed(kv, 2, Iota(4, 100));
  const uint64_t h1 = HashBlock(kRootBlockHash, Iota(4), "");
  const uint64_t h2 = HashBlock(kRootBlockHash, Iota(4, 100), "");
  EXPECT_THAT(kv.PrefixDigest(10), ElementsAre(h2, h1));
  kv.Free(1);  // touching block 0 makes it the most recent
  EXPECT_THAT(kv.PrefixDigest(10), ElementsAre(h1, h2));
  EXPECT_THAT(kv.PrefixDigest(1), ElementsAre(h1));
}

TEST(PagedKvCacheDeathTest, Misuse) {
  PagedKvCache kv = MakeCache(4);
  auto stale = kv.PlanAdd(1, Iota(4), "");
  AddComputed(kv, 2, Iota(4, 10));
  EXPECT_DEATH(kv.Apply(*stale), "epoch");
  EXPECT_DEATH((void)kv.PlanAdd(2, Iota(4), ""), "contains");
  EXPECT_DEATH((void)kv.PlanAppend(3, Iota(1)), "WEFT_CHECK");
  EXPECT_DEATH(kv.MarkComputed(2, 5), "WEFT_CHECK");
  EXPECT_DEATH(kv.Free(3), "WEFT_CHECK");
  EXPECT_DEATH((void)kv.PlanAdd(4, {}, ""), "empty");
}

TEST(FakeKvCacheTest, CountsBlocks) {
  FakeKvCache kv(4, 4);
  auto p = kv.PlanAdd(1, Iota(5), "");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->n_fresh_blocks, 2);
  kv.Apply(*p);
  kv.set_reserved_blocks(2);
  EXPECT_FALSE(kv.PlanAppend(1, Iota(4)).has_value());
  EXPECT_TRUE(kv.PlanAppend(1, Iota(3)).has_value());
  kv.Free(1);
  EXPECT_EQ(kv.free_blocks(), 2);
}

TEST(KvStorageTest, PoolsAndRows) {
  EXPECT_FALSE(
      KvStorage::Create({.n_layers = 0, .n_blocks = 1, .block_size = 4, .kv_dim = 8}).ok());
  const KvStorageOptions o{.n_layers = 2, .n_blocks = 3, .block_size = 4, .kv_dim = 8};
  EXPECT_EQ(KvStorage::BytesFor(o), 2u * 2 * 3 * 4 * 8 * sizeof(float));
  auto storage = KvStorage::Create(o);
  ASSERT_TRUE(storage.ok()) << storage.status();
  EXPECT_EQ((*storage)->k(1) - (*storage)->k(0), 3 * 4 * 8);
  EXPECT_EQ((*storage)->v(0)[3 * 4 * 8 - 1], 0.0f);
  const std::vector<BlockId> table = {2, 0};
  EXPECT_EQ(PoolRow(table, 0, 4), 8);
  EXPECT_EQ(PoolRow(table, 5, 4), 1);
}

}  // namespace
}  // namespace weft::kv
