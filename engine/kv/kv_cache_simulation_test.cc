// SPDX-License-Identifier: Apache-2.0
// Seeded simulation of PagedKvCache against a simple reference model: random add / append /
// compute / free / match operations, with the invariants checked after every step.
#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/kv/paged_kv_cache.h"
#include "gtest/gtest.h"

namespace weft::kv {
namespace {

struct RefSeq {
  std::string key;
  std::vector<int32_t> tokens;  // reserved
  int32_t n_computed = 0;
};

class Simulation {
 public:
  Simulation(uint32_t seed, int32_t n_blocks, int32_t block_size)
      : rng_(seed),
        block_size_(block_size),
        kv_({.n_blocks = n_blocks, .block_size = block_size}),
        content_(n_blocks, std::vector<int32_t>(block_size, -1)),
        content_key_(n_blocks) {
    // A few shared system prompts so that prefixes repeat.
    for (int i = 0; i < 4; ++i) bases_.push_back(RandomTokens(Uniform(0, 5 * block_size)));
  }

  void Run(int n_ops) {
    for (int op = 0; op < n_ops; ++op) {
      const int kind = Uniform(0, 99);
      if (kind < 30) {
        Add();
      } else if (kind < 55) {
        Append();
      } else if (kind < 80) {
        Compute();
      } else if (kind < 95) {
        FreeOne();
      } else {
        Match();
      }
      CheckInvariants();
      if (testing::Test::HasFatalFailure()) return;
    }
  }

  int64_t prefix_hits() const { return kv_.Stats().prefix_hit_tokens; }
  int n_failed_plans() const { return n_failed_plans_; }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::vector<int32_t> RandomTokens(int n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = Uniform(0, 7);  // tiny vocabulary: accidental block matches happen
    return t;
  }

  std::vector<int32_t> RandomPrompt() {
    std::vector<int32_t> p = bases_[Uniform(0, bases_.size() - 1)];
    if (Uniform(0, 3) == 0 && !seqs_.empty()) {  // a prefix of a live sequence
      auto it = std::next(seqs_.begin(), Uniform(0, seqs_.size() - 1));
      p.assign(it->second.tokens.begin(),
               it->second.tokens.begin() + Uniform(0, it->second.tokens.size()));
    }
    auto tail = RandomTokens(Uniform(1, 3 * block_size_));
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  }

  void Add() {
    const SeqId id = next_id_++;
    std::vector<int32_t> prompt = RandomPrompt();
    const std::string key = Uniform(0, 3) == 0 ? "adapter" : "";
    const KvStats before = kv_.Stats();
    const PrefixMatch match = kv_.MatchPrefix(prompt, key);
    auto plan = kv_.PlanAdd(id, prompt, key);
    ExpectUnchanged(before);
    if (!plan.has_value()) {
      ++n_failed_plans_;
      // nullopt only when the fresh blocks really do not fit.
      int32_t pinned = 0;
      for (BlockId b : match.blocks) pinned += kv_.RefCount(b) == 0 ? 1 : 0;
      const int32_t need = (static_cast<int32_t>(prompt.size()) + block_size_ - 1) / block_size_ -
                           static_cast<int32_t>(match.blocks.size());
      EXPECT_GT(need, before.free_blocks + before.evictable_blocks - pinned);
      return;
    }
    ASSERT_EQ(plan->reused, match.blocks);
    ASSERT_EQ(plan->n_cached_tokens, match.n_tokens);
    ASSERT_LT(match.n_tokens, static_cast<int32_t>(prompt.size()));
    // A matched prefix's blocks hold exactly the claimed tokens, under the same adapter.
    for (size_t i = 0; i < match.blocks.size(); ++i) {
      const BlockId b = match.blocks[i];
      ASSERT_EQ(content_key_[b], key);
      for (int32_t s = 0; s < block_size_; ++s) {
        ASSERT_EQ(content_[b][s], prompt[i * block_size_ + s]) << "block " << b;
      }
    }
    if (Uniform(0, 9) == 0) return;  // a plan may be dropped: nothing happened
    kv_.Apply(*plan);
    seqs_[id] = RefSeq{key, prompt, match.n_tokens};
    ASSERT_EQ(kv_.NumComputed(id), match.n_tokens);
  }

  void Append() {
    if (seqs_.empty()) return;
    auto it = std::next(seqs_.begin(), Uniform(0, seqs_.size() - 1));
    const std::vector<int32_t> extra = RandomTokens(Uniform(0, 2 * block_size_));
    const KvStats before = kv_.Stats();
    auto plan = kv_.PlanAppend(it->first, extra);
    ExpectUnchanged(before);
    if (!plan.has_value()) {
      ++n_failed_plans_;
      const int32_t n = static_cast<int32_t>(it->second.tokens.size() + extra.size());
      const int32_t need = (n + block_size_ - 1) / block_size_ -
                           static_cast<int32_t>(kv_.BlockTable(it->first).size());
      EXPECT_GT(need, before.free_blocks + before.evictable_blocks);
      return;
    }
    kv_.Apply(*plan);
    it->second.tokens.insert(it->second.tokens.end(), extra.begin(), extra.end());
  }

  // The "engine" writes K/V (here: the token ids) for some not yet computed positions.
  void Compute() {
    if (seqs_.empty()) return;
    auto it = std::next(seqs_.begin(), Uniform(0, seqs_.size() - 1));
    RefSeq& s = it->second;
    const int32_t n = static_cast<int32_t>(s.tokens.size());
    const int32_t upto = Uniform(s.n_computed, n);
    auto table = kv_.BlockTable(it->first);
    for (int32_t pos = s.n_computed; pos < upto; ++pos) {
      const BlockId b = table[pos / block_size_];
      // Never write into a block someone else can read.
      ASSERT_EQ(kv_.RefCount(b), 1) << "write into shared block " << b;
      content_[b][pos % block_size_] = s.tokens[pos];
      content_key_[b] = s.key;
    }
    kv_.MarkComputed(it->first, upto);
    s.n_computed = upto;
  }

  void FreeOne() {
    if (seqs_.empty()) return;
    auto it = std::next(seqs_.begin(), Uniform(0, seqs_.size() - 1));
    kv_.Free(it->first);
    seqs_.erase(it);
  }

  void Match() {
    std::vector<int32_t> prompt = RandomPrompt();
    const std::string key = Uniform(0, 3) == 0 ? "adapter" : "";
    PrefixMatch m = kv_.MatchPrefix(prompt, key);
    ASSERT_EQ(m.n_tokens, static_cast<int32_t>(m.blocks.size()) * block_size_);
    ASSERT_LE(m.blocks.size(), (prompt.size() - 1) / block_size_);
    for (size_t i = 0; i < m.blocks.size(); ++i) {
      for (int32_t s = 0; s < block_size_; ++s) {
        ASSERT_EQ(content_[m.blocks[i]][s], prompt[i * block_size_ + s]);
      }
    }
  }

  void ExpectUnchanged(const KvStats& before) {
    const KvStats after = kv_.Stats();
    EXPECT_EQ(after.free_blocks, before.free_blocks);
    EXPECT_EQ(after.evictable_blocks, before.evictable_blocks);
    EXPECT_EQ(after.cached_blocks, before.cached_blocks);
    EXPECT_EQ(after.n_sequences, before.n_sequences);
  }

  void CheckInvariants() {
    const KvStats st = kv_.Stats();
    ASSERT_EQ(st.free_blocks + st.evictable_blocks + st.used_blocks, st.total_blocks);
    ASSERT_EQ(st.n_sequences, static_cast<int32_t>(seqs_.size()));
    std::vector<int32_t> owners(st.total_blocks, 0);
    for (const auto& [id, s] : seqs_) {
      auto table = kv_.BlockTable(id);
      ASSERT_EQ(static_cast<int32_t>(table.size()),
                (static_cast<int32_t>(s.tokens.size()) + block_size_ - 1) / block_size_);
      ASSERT_EQ(kv_.NumTokens(id), static_cast<int32_t>(s.tokens.size()));
      std::vector<BlockId> sorted(table.begin(), table.end());
      std::sort(sorted.begin(), sorted.end());
      ASSERT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end())
          << "a block twice in one table";
      for (BlockId b : table) ++owners[b];
      // Computed positions hold this sequence's tokens (no one overwrote them).
      for (int32_t pos = 0; pos < s.n_computed; ++pos) {
        const BlockId b = table[pos / block_size_];
        ASSERT_EQ(content_[b][pos % block_size_], s.tokens[pos]) << "seq " << id << " pos " << pos;
        ASSERT_EQ(content_key_[b], s.key);
      }
    }
    int32_t used = 0;
    for (BlockId b = 0; b < st.total_blocks; ++b) {
      ASSERT_EQ(kv_.RefCount(b), owners[b]) << "block " << b;
      used += owners[b] > 0 ? 1 : 0;
    }
    ASSERT_EQ(used, st.used_blocks);
  }

  std::mt19937 rng_;
  int32_t block_size_;
  PagedKvCache kv_;
  std::vector<std::vector<int32_t>> content_;  // [n_blocks][block_size]: what the engine wrote
  std::vector<std::string> content_key_;       // [n_blocks]: under which adapter
  std::vector<std::vector<int32_t>> bases_;
  std::map<SeqId, RefSeq> seqs_;
  SeqId next_id_ = 0;
  int n_failed_plans_ = 0;
};

TEST(KvCacheSimulationTest, RandomOperationsKeepInvariants) {
  int64_t total_hits = 0;
  int total_failed = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(testing::Message() << "seed " << seed);
    const int32_t block_size = seed % 3 == 0 ? 1 : (seed % 3 == 1 ? 4 : 16);
    const int32_t n_blocks = 8 + static_cast<int32_t>(seed * 7 % 60) * (16 / block_size + 1);
    Simulation sim(seed, n_blocks, block_size);
    sim.Run(3000);
    if (HasFatalFailure()) return;
    total_hits += sim.prefix_hits();
    total_failed += sim.n_failed_plans();
  }
  // The workload exercises both the prefix cache and exhaustion (not a vacuous run).
  EXPECT_GT(total_hits, 0);
  EXPECT_GT(total_failed, 0);
}

}  // namespace
}  // namespace weft::kv
