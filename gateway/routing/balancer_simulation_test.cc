// SPDX-License-Identifier: Apache-2.0
// Seeded discrete simulations of the balancers: replicas with prefix caches, queues and speeds
// driven by a request stream, measuring what each policy is for (cache hits, balance, latency),
// plus property checks over thousands of random fleets.
#include <algorithm>
#include <cmath>
#include <deque>
#include <list>
#include <map>
#include <random>
#include <unordered_map>

#include "gateway/routing/balancers.h"
#include "gateway/routing/ewma.h"
#include "gateway/routing/prefix_keys.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

// An LRU set of prefix keys: the engine's prefix cache, in blocks.
class LruCache {
 public:
  explicit LruCache(size_t capacity) : capacity_(capacity) {}
  bool Contains(uint64_t key) const { return index_.count(key) > 0; }
  void Touch(uint64_t key) {
    auto it = index_.find(key);
    if (it != index_.end()) order_.erase(it->second);
    order_.push_front(key);
    index_[key] = order_.begin();
    if (order_.size() > capacity_) {
      index_.erase(order_.back());
      order_.pop_back();
    }
  }

 private:
  size_t capacity_;
  std::list<uint64_t> order_;
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> index_;
};

std::string RandomText(std::mt19937_64& rng, size_t n) {
  std::string s(n, ' ');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

std::unique_ptr<Balancer> Make(BalancerPolicy policy, double epsilon = 0.25) {
  BalancerConfig c;
  c.policy = policy;
  c.prefix_load_epsilon = epsilon;
  c.prefix_affinity_blocks = 4;
  return MakeBalancer(c).value();
}

// --- Prefix cache hit rate: 3 replicas, 8 distinct long prefixes -------------------------------

struct CacheSimResult {
  double hit_rate = 0;  // cached prefix blocks / prefix blocks
  std::vector<int> served;
};

// Each replica's cache holds 80 blocks (5 of the 8 prefixes); 30 requests are in flight.
CacheSimResult RunCacheSim(Balancer& balancer, uint64_t seed, size_t capacity = 80,
                           int inflight = 30) {
  constexpr int kReplicas = 3;
  constexpr int kPrefixes = 8;
  constexpr size_t kBlock = 64;
  constexpr size_t kPrefixBlocks = 16;  // 1 KiB shared system prompt per prefix
  constexpr int kRequests = 6000;
  std::mt19937_64 rng(seed);
  std::vector<std::string> prefixes;
  for (int p = 0; p < kPrefixes; ++p) prefixes.push_back(RandomText(rng, kPrefixBlocks * kBlock));

  std::vector<std::string> ids = {"a", "b", "c"};
  std::vector<LruCache> caches(kReplicas, LruCache(capacity));
  std::vector<ReplicaView> views(kReplicas);
  for (int i = 0; i < kReplicas; ++i) views[i].id = ids[i];
  // Each request stays in flight for `inflight` arrivals.
  std::deque<std::pair<int, int>> running;  // (finish at arrival #, replica)
  CacheSimResult result;
  result.served.assign(kReplicas, 0);
  int64_t hits = 0, blocks = 0;
  for (int n = 0; n < kRequests; ++n) {
    while (!running.empty() && running.front().first <= n) {
      --views[running.front().second].outstanding_requests;
      running.pop_front();
    }
    int p = static_cast<int>(rng() % kPrefixes);
    std::string prompt = prefixes[p] + RandomText(rng, 2 * kBlock + rng() % kBlock);
    std::vector<uint64_t> keys = PrefixKeys(prompt, kBlock, 64);
    RequestView r;
    r.deployment = "m";
    r.prefix_keys = keys;
    r.estimated_tokens = static_cast<int64_t>(prompt.size() / 4);
    r.random = rng();
    std::optional<size_t> pick = balancer.PickIndex(r, views);
    EXPECT_TRUE(pick.has_value());
    if (!pick) continue;
    int i = static_cast<int>(*pick);
    ++result.served[i];
    // The engine reuses the longest cached run of leading blocks.
    size_t hit = 0;
    while (hit < keys.size() && caches[i].Contains(keys[hit])) ++hit;
    hits += static_cast<int64_t>(std::min(hit, kPrefixBlocks));
    blocks += kPrefixBlocks;
    for (uint64_t k : keys) caches[i].Touch(k);
    ++views[i].outstanding_requests;
    running.emplace_back(n + inflight, i);
    std::sort(running.begin(), running.end());
  }
  result.hit_rate = static_cast<double>(hits) / static_cast<double>(blocks);
  return result;
}

TEST(BalancerSimulationTest, PrefixAffinityHitRateFarAboveRoundRobin) {
  for (uint64_t seed : {1, 2, 3}) {
    auto prefix = Make(BalancerPolicy::kPrefix);
    auto rr = Make(BalancerPolicy::kRoundRobin);
    auto lt = Make(BalancerPolicy::kLeastTokens);
    CacheSimResult p = RunCacheSim(*prefix, seed);
    CacheSimResult r = RunCacheSim(*rr, seed);
    CacheSimResult l = RunCacheSim(*lt, seed);
    std::printf(
        "seed %d: prefix-cache hit rate: prefix %.3f, round robin %.3f, least tokens %.3f\n",
        static_cast<int>(seed), p.hit_rate, r.hit_rate, l.hit_rate);
    EXPECT_GT(p.hit_rate, 0.8) << seed;
    EXPECT_LT(r.hit_rate, 0.56) << seed;
    EXPECT_GT(p.hit_rate, r.hit_rate + 0.3) << seed;
    // Every replica still does work.
    for (int s : p.served) EXPECT_GT(s, 6000 / 3 / 3) << seed;
  }
}

// --- Bounded load spills a hot prefix ---------------------------------------------------------

TEST(BalancerSimulationTest, BoundedLoadSpillsAHotPrefix) {
  std::mt19937_64 rng(11);
  std::vector<uint64_t> hot = PrefixKeys(RandomText(rng, 1024), 64, 16);
  std::vector<std::string> ids = {"a", "b", "c", "d"};
  for (double epsilon : {0.25, 1e9}) {
    PrefixBalancer::Options o;
    o.load_epsilon = epsilon;
    PrefixBalancer balancer(o);
    std::vector<ReplicaView> views(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) views[i].id = ids[i];
    std::vector<int> served(ids.size(), 0);
    std::deque<std::pair<int, size_t>> running;
    int over_cap = 0;  // picks that broke the bound
    for (int n = 0; n < 4000; ++n) {
      while (!running.empty() && running.front().first <= n) {
        --views[running.front().second].outstanding_requests;
        running.pop_front();
      }
      RequestView r;
      r.deployment = "m";
      r.prefix_keys = hot;
      r.random = rng();
      size_t i = *balancer.PickIndex(r, views);
      int total = 0;
      for (auto& v : views) total += v.outstanding_requests;
      double cap = std::ceil((1 + epsilon) * (total + 1) / static_cast<double>(views.size()));
      if (views[i].outstanding_requests + 1 > cap) ++over_cap;
      ++views[i].outstanding_requests;
      ++served[i];
      running.emplace_back(n + 12, i);  // 12 in flight at a time
    }
    int replicas_used = 0;
    for (int s : served) replicas_used += s > 0;
    int top = *std::max_element(served.begin(), served.end());
    if (epsilon < 1) {
      EXPECT_EQ(over_cap, 0);       // the bound holds at every pick
      EXPECT_GE(replicas_used, 3);  // the hot prefix spilled
      EXPECT_LT(top, 4000 * 0.5);
      // ... but it still has a home that takes the largest share.
      EXPECT_GT(top, 4000 / 4);
    } else {
      EXPECT_EQ(replicas_used, 1);  // unbounded: everything on one replica
    }
  }
}

// --- Least tokens balances skewed request sizes ----------------------------------------------

// Replicas process `rate` tokens per tick, first come first served; requests are 90% small and
// 10% huge. Returns the mean completion time in ticks.
double RunSkewSim(Balancer& balancer, uint64_t seed) {
  constexpr int kReplicas = 4;
  constexpr int64_t kRate = 1000;
  std::mt19937_64 rng(seed);
  struct Job {
    int64_t remaining;
    int start;
  };
  std::vector<std::deque<Job>> queues(kReplicas);
  std::vector<std::string> ids = {"a", "b", "c", "d"};
  std::vector<ReplicaView> views(kReplicas);
  for (int i = 0; i < kReplicas; ++i) views[i].id = ids[i];
  double total_latency = 0;
  int done = 0;
  for (int tick = 0; tick < 20000; ++tick) {
    // Mean demand 0.8 x capacity: sizes average 100 x 0.9 + 8000 x 0.1 = 890 tokens.
    int arrivals = static_cast<int>(rng() % 8);  // mean 3.5 per tick
    for (int a = 0; a < arrivals; ++a) {
      int64_t size = rng() % 10 == 0 ? 8000 : 100;
      RequestView r;
      r.deployment = "m";
      r.estimated_tokens = size;
      r.random = rng();
      size_t i = *balancer.PickIndex(r, views);
      queues[i].push_back({size, tick});
      views[i].outstanding_tokens += size;
      ++views[i].outstanding_requests;
    }
    for (int i = 0; i < kReplicas; ++i) {
      int64_t budget = kRate;
      while (budget > 0 && !queues[i].empty()) {
        Job& j = queues[i].front();
        int64_t step = std::min(budget, j.remaining);
        j.remaining -= step;
        budget -= step;
        views[i].outstanding_tokens -= step;
        if (j.remaining == 0) {
          total_latency += tick + 1 - j.start;
          ++done;
          --views[i].outstanding_requests;
          queues[i].pop_front();
        }
      }
    }
  }
  return total_latency / done;
}

TEST(BalancerSimulationTest, LeastTokensBalancesSkewedRequestSizes) {
  for (uint64_t seed : {5, 6}) {
    auto lt = Make(BalancerPolicy::kLeastTokens);
    auto rr = Make(BalancerPolicy::kRoundRobin);
    double lt_latency = RunSkewSim(*lt, seed);
    double rr_latency = RunSkewSim(*rr, seed);
    std::printf("seed %d: mean completion ticks: least tokens %.2f, round robin %.2f\n",
                static_cast<int>(seed), lt_latency, rr_latency);
    EXPECT_LT(lt_latency, rr_latency * 0.5) << seed;
  }
}

// --- Power of two choices vs one random choice -------------------------------------------------

// Balls into bins with departures: returns the mean of the per-tick maximum queue length.
template <typename PickFn>
double RunQueueSim(PickFn pick, uint64_t seed) {
  constexpr int kReplicas = 20;
  std::mt19937_64 rng(seed);
  std::vector<std::string> ids;
  for (int i = 0; i < kReplicas; ++i) ids.push_back("r" + std::to_string(i));
  std::vector<ReplicaView> views(kReplicas);
  for (int i = 0; i < kReplicas; ++i) views[i].id = ids[i];
  double max_sum = 0;
  constexpr int kTicks = 20000;
  for (int tick = 0; tick < kTicks; ++tick) {
    for (int a = 0; a < 18; ++a) {  // 90% utilization: each replica serves one per tick
      RequestView r;
      r.deployment = "m";
      r.estimated_tokens = 1;
      r.random = rng();
      size_t i = pick(r, views);
      ++views[i].outstanding_requests;
      ++views[i].outstanding_tokens;
    }
    int mx = 0;
    for (auto& v : views) {
      mx = std::max(mx, v.outstanding_requests);
      if (v.outstanding_requests > 0) {
        --v.outstanding_requests;
        --v.outstanding_tokens;
      }
    }
    max_sum += mx;
  }
  return max_sum / kTicks;
}

TEST(BalancerSimulationTest, PowerOfTwoChoicesBeatsRandom) {
  P2cBalancer p2c;
  double two = RunQueueSim(
      [&](const RequestView& r, std::span<const ReplicaView> v) { return *p2c.PickIndex(r, v); },
      21);
  double one = RunQueueSim(
      [](const RequestView& r, std::span<const ReplicaView> v) {
        return static_cast<size_t>(r.random % v.size());
      },
      21);
  std::printf("mean max queue: p2c %.2f, random %.2f\n", two, one);
  EXPECT_LT(two, one * 0.5);
}

// --- Latency-aware avoids a slow replica, and tries it again once its samples are stale -------

TEST(BalancerSimulationTest, LatencyAwareAvoidsASlowReplicaAndRetriesItLater) {
  std::mt19937_64 rng(31);
  LatencyBalancer::Options o;
  o.stale_after_s = 5;
  o.decay_s = 5;
  o.output_tokens = 50;
  LatencyBalancer balancer(o);
  std::vector<std::string> ids = {"fast1", "fast2", "slow"};
  std::vector<ReplicaView> views(3);
  std::vector<Ewma> ttft(3, Ewma(0.3)), itl(3, Ewma(0.3));
  for (int i = 0; i < 3; ++i) views[i].id = ids[i];
  std::vector<double> itl_ms = {10, 10, 60};  // the slow one is 6x slower per token
  struct Running {
    double end_s;
    size_t replica;
  };
  std::vector<Running> running;
  auto run = [&](double from_s, double to_s, std::vector<int>& served) {
    for (double now = from_s; now < to_s; now += 0.05) {  // 20 requests/s
      for (auto it = running.begin(); it != running.end();) {
        if (it->end_s <= now) {
          --views[it->replica].outstanding_requests;
          it = running.erase(it);
        } else {
          ++it;
        }
      }
      RequestView r;
      r.deployment = "m";
      r.random = rng();
      r.now_s = now;
      size_t i = *balancer.PickIndex(r, views);
      ++served[i];
      // A busier replica is slower per token (batching); observe and record the sample.
      double per_token = itl_ms[i] * (1 + 0.1 * views[i].outstanding_requests);
      double first = 2 * per_token;
      ttft[i].Add(first, now);
      itl[i].Add(per_token, now);
      views[i].ewma_ttft_ms = ttft[i].value();
      views[i].ewma_itl_ms = itl[i].value();
      views[i].latency_updated_s = now;
      ++views[i].outstanding_requests;
      running.push_back({now + (first + 50 * per_token) / 1000, i});
    }
  };
  std::vector<int> phase1(3, 0);
  run(0, 60, phase1);
  int total1 = phase1[0] + phase1[1] + phase1[2];
  std::printf("latency phase 1 (slow replica): served %d %d %d\n", phase1[0], phase1[1], phase1[2]);
  EXPECT_LT(phase1[2], total1 * 0.12);
  EXPECT_GT(phase1[0], total1 * 0.3);
  EXPECT_GT(phase1[1], total1 * 0.3);
  // The slow replica recovers. Its EWMA is only refreshed if it gets traffic; staleness decay
  // brings it back into rotation, then fresh samples restore its share.
  itl_ms[2] = 10;
  std::vector<int> phase2(3, 0);
  run(60, 180, phase2);
  int total2 = phase2[0] + phase2[1] + phase2[2];
  std::printf("latency phase 2 (recovered): served %d %d %d\n", phase2[0], phase2[1], phase2[2]);
  EXPECT_GT(phase2[2], total2 * 0.2);
}

// --- Properties over thousands of random fleets ------------------------------------------------

TEST(BalancerSimulationTest, RandomFleetsObeyTheCrossCuttingRules) {
  std::mt19937_64 rng(99);
  std::vector<std::string> providers = {"aws", "gcp", "local"};
  std::vector<std::string> regions = {"eu", "us"};
  std::vector<std::string> adapters = {"sql", "chat"};
  auto balancers = std::vector<std::unique_ptr<Balancer>>();
  for (auto p : {BalancerPolicy::kLeastTokens, BalancerPolicy::kPrefix, BalancerPolicy::kLatency,
                 BalancerPolicy::kP2c, BalancerPolicy::kRoundRobin}) {
    balancers.push_back(Make(p));
  }
  int picks = 0, sheds = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    int n = 1 + static_cast<int>(rng() % 8);
    std::vector<std::string> ids(n);
    std::vector<std::vector<std::string>> loaded(n);
    std::vector<ReplicaView> views(n);
    for (int i = 0; i < n; ++i) {
      ids[i] = "r" + std::to_string(i);
      ReplicaView& v = views[i];
      v.id = ids[i];
      v.provider = providers[rng() % 3];
      v.region = regions[rng() % 2];
      v.state = rng() % 6 == 0 ? (rng() % 2 ? ReplicaState::kDraining : ReplicaState::kDown)
                               : ReplicaState::kReady;
      v.healthy = rng() % 8 != 0;
      v.ejected = rng() % 8 == 0;
      v.weight = 0.5 + static_cast<double>(rng() % 4);
      v.max_outstanding = 8;
      v.outstanding_requests = static_cast<int32_t>(rng() % 10);
      v.outstanding_tokens = static_cast<int64_t>(rng() % 5000);
      if (rng() % 2) loaded[i].push_back(adapters[rng() % 2]);
      v.adapters = loaded[i];
      if (rng() % 2) {
        v.ewma_ttft_ms = static_cast<double>(rng() % 500);
        v.ewma_itl_ms = static_cast<double>(rng() % 50);
        v.latency_updated_s = static_cast<double>(rng() % 100);
      }
    }
    std::vector<std::string> pref_p, pref_r;
    if (rng() % 2) pref_p.push_back(providers[rng() % 3]);
    if (rng() % 2) pref_r.push_back(regions[rng() % 2]);
    std::vector<ReplicaId> exclude;
    if (rng() % 3 == 0) exclude.push_back(ids[rng() % n]);
    std::vector<uint64_t> keys;
    for (int k = 0; k < static_cast<int>(rng() % 6); ++k) keys.push_back(rng());
    RequestView r;
    std::string deployment = "d" + std::to_string(trial % 5);
    r.deployment = deployment;
    r.adapter = rng() % 2 ? std::string_view(adapters[rng() % 2]) : std::string_view();
    r.prefix_keys = keys;
    r.estimated_tokens = static_cast<int64_t>(rng() % 1000);
    r.preferred_providers = pref_p;
    r.preferred_regions = pref_r;
    r.exclude = exclude;
    r.random = rng();
    r.now_s = 100;

    // The independent oracle: who may be picked at all, and the best preference tier.
    auto eligible = [&](int i) {
      const ReplicaView& v = views[i];
      return v.state == ReplicaState::kReady && v.healthy && !v.ejected &&
             v.outstanding_requests < v.max_outstanding &&
             std::find(exclude.begin(), exclude.end(), ids[i]) == exclude.end();
    };
    auto tier = [&](int i) {
      bool p = pref_p.empty() || views[i].provider == pref_p[0];
      bool g = pref_r.empty() || views[i].region == pref_r[0];
      return (p ? 0 : 1) + (g ? 0 : 1);
    };
    int best_tier = 3;
    for (int i = 0; i < n; ++i) {
      if (eligible(i)) best_tier = std::min(best_tier, tier(i));
    }
    for (auto& b : balancers) {
      std::optional<size_t> pick = b->PickIndex(r, views);
      if (best_tier == 3) {
        EXPECT_FALSE(pick.has_value()) << b->name() << " trial " << trial;
        ++sheds;
        continue;
      }
      ASSERT_TRUE(pick.has_value()) << b->name() << " trial " << trial;
      ++picks;
      int i = static_cast<int>(*pick);
      EXPECT_TRUE(eligible(i)) << b->name() << " trial " << trial;
      EXPECT_EQ(tier(i), best_tier) << b->name() << " trial " << trial;
      if (b->name() != "round_robin") {  // the others are deterministic given the request
        EXPECT_EQ(b->Pick(r, views), ids[i]);
      }
    }
  }
  EXPECT_GT(picks, 5000);
  EXPECT_GT(sheds, 100);
}

}  // namespace
}  // namespace weft::gateway
