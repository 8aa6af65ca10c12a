// SPDX-License-Identifier: Apache-2.0
// Example-based tests of the balancers and the cross-cutting rules; the seeded simulations are in
// balancer_simulation_test.cc.
#include <map>
#include <set>

#include "gateway/routing/balancers.h"
#include "gateway/routing/prefix_keys.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

// Replica views over owned strings.
struct Fleet {
  std::vector<std::string> ids, providers, regions;
  std::vector<std::vector<std::string>> adapters;
  std::vector<ReplicaView> views;

  explicit Fleet(int n) : ids(n), providers(n), regions(n), adapters(n), views(n) {
    for (int i = 0; i < n; ++i) ids[i] = "r" + std::to_string(i);
    Refresh();
  }
  void Refresh() {
    for (size_t i = 0; i < views.size(); ++i) {
      views[i].id = ids[i];
      views[i].provider = providers[i];
      views[i].region = regions[i];
      views[i].adapters = adapters[i];
    }
  }
  std::span<const ReplicaView> span() const { return views; }
};

RequestView Request(uint64_t random = 0) {
  RequestView r;
  r.deployment = "m";
  r.random = random;
  return r;
}

std::vector<std::unique_ptr<Balancer>> AllBalancers() {
  std::vector<std::unique_ptr<Balancer>> all;
  for (BalancerPolicy p :
       {BalancerPolicy::kLeastTokens, BalancerPolicy::kPrefix, BalancerPolicy::kLatency,
        BalancerPolicy::kP2c, BalancerPolicy::kRoundRobin}) {
    BalancerConfig c;
    c.policy = p;
    all.push_back(MakeBalancer(c).value());
  }
  return all;
}

TEST(BalancerTest, FactoryNamesAndValidation) {
  for (auto& b : AllBalancers()) {
    EXPECT_EQ(ParseBalancerPolicy(b->name()).has_value(), true) << b->name();
  }
  BalancerConfig c;
  c.policy = BalancerPolicy::kPrefix;
  c.prefix_virtual_nodes = 0;
  EXPECT_EQ(MakeBalancer(c).status().code(), absl::StatusCode::kInvalidArgument);
  c.policy = BalancerPolicy::kLatency;
  c.latency_decay_s = 0;
  EXPECT_EQ(MakeBalancer(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BalancerTest, NeverPicksUnavailableOnes) {
  Fleet f(5);
  f.views[0].state = ReplicaState::kDraining;
  f.views[1].state = ReplicaState::kDown;
  f.views[2].ejected = true;
  f.views[3].healthy = false;
  for (auto& b : AllBalancers()) {
    for (uint64_t seed = 0; seed < 50; ++seed) {
      RequestView r = Request(seed * 0x9e3779b97f4a7c15ULL);
      EXPECT_EQ(b->Pick(r, f.span()), "r4") << b->name();
    }
    f.views[4].ejected = true;
    EXPECT_EQ(b->Pick(Request(), f.span()), std::nullopt) << b->name();
    f.views[4].ejected = false;
  }
  EXPECT_EQ(AllBalancers()[0]->Pick(Request(), {}), std::nullopt);
}

TEST(BalancerTest, ExcludedAndSaturatedAreSkippedAndAllSaturatedSheds) {
  Fleet f(3);
  for (auto& v : f.views) v.max_outstanding = 4;
  f.views[0].outstanding_requests = 4;  // saturated
  std::vector<ReplicaId> exclude = {"r1"};
  for (auto& b : AllBalancers()) {
    RequestView r = Request();
    r.exclude = exclude;
    EXPECT_EQ(b->Pick(r, f.span()), "r2") << b->name();
  }
  for (auto& v : f.views) v.outstanding_requests = 4;
  for (auto& b : AllBalancers()) EXPECT_EQ(b->Pick(Request(), f.span()), std::nullopt);
}

TEST(BalancerTest, ProviderAndRegionPreferenceWithSpillOver) {
  Fleet f(4);
  f.providers = {"aws", "aws", "gcp", "gcp"};
  f.regions = {"eu", "us", "eu", "us"};
  f.Refresh();
  std::vector<std::string> providers = {"aws"}, regions = {"eu"};
  auto pick = [&](Balancer& b) {
    RequestView r = Request(7);
    r.preferred_providers = providers;
    r.preferred_regions = regions;
    return b.Pick(r, f.span());
  };
  for (auto& b : AllBalancers()) {
    for (auto& v : f.views) v = ReplicaView{}, v.max_outstanding = 2;
    f.Refresh();
    EXPECT_EQ(pick(*b), "r0") << b->name();  // aws and eu
    f.views[0].outstanding_requests = 2;     // saturated: spill to one-match tier
    auto second = pick(*b);
    EXPECT_TRUE(second == "r1" || second == "r2") << b->name() << " " << second.value_or("-");
    f.views[1].healthy = false;
    f.views[2].ejected = true;
    EXPECT_EQ(pick(*b), "r3") << b->name();  // the last tier
  }
}

TEST(BalancerTest, AdapterAffinityBounded) {
  Fleet f(3);
  f.adapters[1] = {"sql"};
  f.Refresh();
  LeastTokensBalancer b;
  RequestView r = Request();
  r.adapter = "sql";
  f.views[1].outstanding_tokens = 500;  // busier in tokens, but holds the adapter
  f.views[1].outstanding_requests = 1;
  EXPECT_EQ(b.Pick(r, f.span()), "r1");
  // The holder is far above the mean: the adapter spreads to the least loaded replica.
  f.views[1].outstanding_requests = 10;
  EXPECT_EQ(b.Pick(r, f.span()), "r0");
  // Off: plain least tokens.
  f.views[1].outstanding_requests = 1;
  LeastTokensBalancer off(false);
  EXPECT_NE(off.Pick(r, f.span()), "r1");
  // A request for the base model ignores adapters.
  EXPECT_NE(b.Pick(Request(), f.span()), "r1");
}

TEST(BalancerTest, LeastTokensUsesTokensReportsAndWeights) {
  Fleet f(3);
  LeastTokensBalancer b;
  f.views[0].outstanding_tokens = 300;
  f.views[1].outstanding_tokens = 100;
  f.views[2].outstanding_tokens = 200;
  EXPECT_EQ(b.Pick(Request(), f.span()), "r1");
  // Another gateway's load shows in r1's report.
  api::LoadReport report;
  report.tokens_in_flight = 1000;
  FillLoadReport(report, &f.views[1]);
  EXPECT_EQ(b.Pick(Request(), f.span()), "r2");
  // r0 has four times the capacity.
  f.views[0].weight = 4;
  EXPECT_EQ(b.Pick(Request(), f.span()), "r0");
  // Ties are broken at random, not always toward the same replica.
  Fleet even(3);
  std::set<std::string> picked;
  for (uint64_t i = 0; i < 30; ++i) picked.insert(*b.Pick(Request(i), even.span()));
  EXPECT_EQ(picked.size(), 3u);
}

TEST(BalancerTest, P2cPicksTheLessLoadedOfTwo) {
  Fleet f(2);
  P2cBalancer b;
  f.views[0].outstanding_tokens = 10;
  for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(b.Pick(Request(i * 977), f.span()), "r1");
  // With more replicas it never picks the most loaded (it is never the lesser of two).
  Fleet g(4);
  for (int i = 0; i < 4; ++i) g.views[i].outstanding_tokens = 100 * (i + 1);
  for (uint64_t i = 0; i < 200; ++i) {
    EXPECT_NE(b.Pick(Request(i * 0x9e3779b97f4a7c15ULL), g.span()), "r3");
  }
}

TEST(BalancerTest, RoundRobinCycles) {
  Fleet f(3);
  RoundRobinBalancer b;
  std::vector<std::string> seq;
  for (int i = 0; i < 6; ++i) seq.push_back(*b.Pick(Request(), f.span()));
  EXPECT_EQ(seq, (std::vector<std::string>{"r0", "r1", "r2", "r0", "r1", "r2"}));
}

TEST(BalancerTest, LatencyPrefersFastAndDecaysStaleSamples) {
  Fleet f(2);
  LatencyBalancer::Options o;
  o.stale_after_s = 10;
  o.decay_s = 5;
  o.output_tokens = 100;
  LatencyBalancer b(o);
  f.views[0].ewma_ttft_ms = 100;
  f.views[0].ewma_itl_ms = 50;  // 5100 ms expected
  f.views[0].latency_updated_s = 0;
  f.views[1].ewma_ttft_ms = 100;
  f.views[1].ewma_itl_ms = 10;  // 1100 ms
  f.views[1].latency_updated_s = 0;
  RequestView r = Request();
  r.now_s = 1;
  EXPECT_EQ(b.Pick(r, f.span()), "r1");
  // In-flight requests multiply the cost: 1100 x 6 > 5100 x 1.
  f.views[1].outstanding_requests = 5;
  EXPECT_EQ(b.Pick(r, f.span()), "r0");
  f.views[1].outstanding_requests = 0;
  // r0's sample is old and r1's fresh: r0's cost moves toward the fresh mean.
  f.views[1].latency_updated_s = 100;
  r.now_s = 100;
  EXPECT_NEAR(b.ExpectedLatencyMs(f.views[0], r.now_s, 1100), 1100, 1);
  EXPECT_EQ(b.ExpectedLatencyMs(f.views[1], r.now_s, 1100), 1100);
  EXPECT_NEAR(b.ExpectedLatencyMs(f.views[0], 15, 1100), 1100 + 4000 * std::exp(-1.0), 1e-6);
  // No sample anywhere: least tokens.
  Fleet g(2);
  g.views[0].outstanding_tokens = 9;
  EXPECT_EQ(b.Pick(Request(), g.span()), "r1");
}

TEST(BalancerTest, PrefixAffinityIsStickyAndConsistent) {
  PrefixBalancer::Options o;
  o.affinity_blocks = 2;
  PrefixBalancer b(o);
  Fleet f(5);
  std::map<int, std::string> home;
  std::vector<std::vector<uint64_t>> keys;
  for (int p = 0; p < 200; ++p) {
    keys.push_back(PrefixKeys("prefix " + std::to_string(p) + std::string(64, 'x'), 16, 8));
    RequestView r = Request(p);
    r.prefix_keys = keys.back();
    home[p] = *b.Pick(r, f.span());
    EXPECT_EQ(b.Pick(r, f.span()), home[p]);  // sticky
  }
  std::map<std::string, int> counts;
  for (auto& [p, id] : home) ++counts[id];
  EXPECT_EQ(counts.size(), 5u);
  for (auto& [id, n] : counts) EXPECT_GT(n, 15) << id;  // virtual nodes spread keys
  // Ejecting r2 moves only r2's keys; the others keep their replica.
  f.views[2].ejected = true;
  for (int p = 0; p < 200; ++p) {
    RequestView r = Request(p);
    r.prefix_keys = keys[p];
    std::string now = *b.Pick(r, f.span());
    if (home[p] != "r2") {
      EXPECT_EQ(now, home[p]) << p;
    } else {
      EXPECT_NE(now, "r2");
    }
  }
  // Removing r4 from the table (a new ring) also keeps everyone else's home.
  f.views[2].ejected = false;
  Fleet smaller(4);
  for (int p = 0; p < 200; ++p) {
    RequestView r = Request(p);
    r.prefix_keys = keys[p];
    if (home[p] != "r4") {
      EXPECT_EQ(*b.Pick(r, smaller.span()), home[p]) << p;
    }
  }
  // Only the first affinity_blocks keys matter: a different third block keeps the replica.
  std::vector<uint64_t> k = keys[0];
  k[2] ^= 1;
  RequestView r = Request();
  r.prefix_keys = k;
  EXPECT_EQ(b.Pick(r, f.span()), home[0]);
}

TEST(BalancerTest, PrefixBoundedLoadSkipsAnOverloadedHome) {
  PrefixBalancer::Options o;
  o.load_epsilon = 0.5;
  PrefixBalancer b(o);
  Fleet f(3);
  std::vector<uint64_t> keys = PrefixKeys(std::string(256, 'q'), 64, 4);
  RequestView r = Request();
  r.prefix_keys = keys;
  std::string home = *b.Pick(r, f.span());
  int h = home[1] - '0';
  // cap = ceil(1.5 x (total + 1) / 3); home at 3 with total 3: cap = 2 -> skipped.
  f.views[h].outstanding_requests = 3;
  std::string spilled = *b.Pick(r, f.span());
  EXPECT_NE(spilled, home);
  // The spill goes to the next replica on the ring consistently.
  EXPECT_EQ(*b.Pick(r, f.span()), spilled);
  f.views[h].outstanding_requests = 1;  // cap = ceil(1.5 x 2 / 3) = 1 ... 1 + 1 > 1: still full
  EXPECT_EQ(*b.Pick(r, f.span()), spilled);
  f.views[(h + 1) % 3].outstanding_requests = 2;
  f.views[(h + 2) % 3].outstanding_requests = 2;  // total 5: cap = 3, home has room again
  EXPECT_EQ(*b.Pick(r, f.span()), home);
}

}  // namespace
}  // namespace weft::gateway
