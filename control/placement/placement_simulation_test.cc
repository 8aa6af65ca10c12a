// SPDX-License-Identifier: Apache-2.0
// Seeded simulation of placement: thousands of random fleets and requests, checking properties
// (fit, capacity, degraded avoidance, spread, the min >= 2 rule, determinism, order independence)
// rather than examples.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "control/placement/placement.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

struct Scenario {
  std::vector<ProviderView> providers;
  PlacementRequest request;
};

Scenario RandomScenario(std::mt19937_64& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const std::vector<std::string> kinds = {"cpu", "nvidia-h100", "nvidia-l4"};
  const std::vector<std::string> regions = {"r1", "r2", "r3"};
  Scenario s;
  int n = 1 + pick(6);
  for (int i = 0; i < n; ++i) {
    ProviderView p;
    p.name = "p" + std::to_string(i);
    p.kind = "fake";
    for (const std::string& k : kinds) {
      if (pick(3) != 0) p.accelerators.push_back(k);
    }
    for (const std::string& r : regions) {
      if (pick(2) != 0) p.regions.push_back(r);
    }
    p.free_slots = pick(4) == 0 ? 0 : pick(9);
    p.usd_per_hour = pick(5) == 0 ? 0 : 0.1 * (1 + pick(40));
    p.reliability = pick(4) == 0 ? 0.3 + 0.1 * pick(6) : 0.9 + 0.01 * pick(11);
    p.degraded = pick(5) == 0;
    s.providers.push_back(p);
  }
  PlacementRequest& r = s.request;
  r.accelerator.kind = kinds[pick(3)];
  r.accelerator.count = 1 + pick(2);
  r.min_replicas = pick(4);
  r.count = 1 + pick(6);
  if (pick(3) == 0) {
    for (const ProviderView& p : s.providers) {
      if (pick(2)) r.constraints.providers.push_back(p.name);
    }
  }
  if (pick(3) == 0) r.constraints.regions = {regions[pick(3)]};
  r.constraints.spread_min_providers = 1 + pick(3);
  for (int i = pick(4); i > 0; --i) {
    // Existing replicas, sometimes on a provider no longer in the list.
    r.existing.push_back(pick(6) == 0 ? "gone" : s.providers[pick(n)].name);
  }
  return s;
}

// Static eligibility: everything but free slots and health.
bool Eligible(const PlacementRequest& r, ProviderView p) {
  p.free_slots = 1 << 20;
  return Unfit(r, p).empty();
}

TEST(PlacementSimulationTest, Properties) {
  std::mt19937_64 rng(1337);
  int spread_cases = 0, degraded_cases = 0, partial_cases = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    Scenario s = RandomScenario(rng);
    const PlacementRequest& r = s.request;
    PlacementDecision d = Place(r, s.providers);
    SCOPED_TRACE("iteration " + std::to_string(iter));

    ASSERT_EQ(d.placements.size() + d.unplaced, static_cast<size_t>(r.count));
    EXPECT_EQ(d.reason.empty(), d.unplaced == 0);

    // Replay: each placement fits the slots left at its step; degraded only when no healthy
    // provider had room; the spread rule picks a new provider whenever one fits.
    std::map<std::string, int> free;
    std::map<std::string, const ProviderView*> by_name;
    for (const ProviderView& p : s.providers) {
      free[p.name] = p.free_slots;
      by_name[p.name] = &p;
    }
    std::map<std::string, int> on;
    for (const std::string& e : r.existing) ++on[e];
    const int distinct_before = static_cast<int>(on.size());
    bool any_degraded = false;
    for (const Placement& pl : d.placements) {
      ASSERT_TRUE(by_name.count(pl.provider)) << pl.provider;
      const ProviderView& p = *by_name[pl.provider];
      ASSERT_TRUE(Eligible(r, p)) << p.name;
      ASSERT_GE(free[p.name], r.accelerator.count) << p.name;
      if (!r.constraints.regions.empty()) {
        EXPECT_TRUE(
            std::count(r.constraints.regions.begin(), r.constraints.regions.end(), pl.region));
      }
      auto fits = [&](const ProviderView& q) {
        return Eligible(r, q) && free[q.name] >= r.accelerator.count;
      };
      if (p.degraded) {
        any_degraded = true;
        for (const ProviderView& q : s.providers) {
          EXPECT_FALSE(!q.degraded && fits(q)) << q.name << " was healthy and had room";
        }
      }
      if (static_cast<int>(on.size()) < SpreadTarget(r) && on.count(p.name)) {
        for (const ProviderView& q : s.providers) {
          EXPECT_FALSE(q.degraded == p.degraded && fits(q) && !on.count(q.name))
              << q.name << " would have spread the deployment";
        }
      }
      free[p.name] -= r.accelerator.count;
      ++on[p.name];
    }
    EXPECT_EQ(d.used_degraded, any_degraded);
    degraded_cases += any_degraded;

    // Unplaced: nobody had room for one more.
    if (d.unplaced > 0) {
      ++partial_cases;
      for (const ProviderView& q : s.providers) {
        EXPECT_FALSE(Eligible(r, q) && free[q.name] >= r.accelerator.count) << q.name;
      }
    }

    // The spread target is met as far as healthy unused providers with room allow.
    int unused_healthy = 0;
    for (const ProviderView& q : s.providers) {
      bool used_before = std::count(r.existing.begin(), r.existing.end(), q.name) > 0;
      if (!q.degraded && !used_before && Eligible(r, q) && q.free_slots >= r.accelerator.count) {
        ++unused_healthy;
      }
    }
    int expect_distinct =
        std::min(SpreadTarget(r), distinct_before + std::min(r.count, unused_healthy));
    EXPECT_GE(static_cast<int>(on.size()), expect_distinct);
    if (SpreadTarget(r) > 1 && unused_healthy > 0) ++spread_cases;

    // min >= 2: never all on one provider when another healthy one could take a replica.
    if (r.min_replicas >= 2 && !d.placements.empty() && on.size() == 1 &&
        r.existing.size() + d.placements.size() >= 2) {
      const std::string& only = on.begin()->first;
      for (const ProviderView& q : s.providers) {
        if (q.name == only || q.degraded) continue;
        EXPECT_FALSE(Eligible(r, q) && q.free_slots >= r.accelerator.count)
            << "all replicas on " << only << " although " << q.name << " had room";
      }
    }

    // Deterministic, and independent of the order providers are listed in.
    PlacementDecision again = Place(r, s.providers);
    std::vector<ProviderView> shuffled = s.providers;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    PlacementDecision reordered = Place(r, shuffled);
    ASSERT_EQ(again.placements.size(), d.placements.size());
    ASSERT_EQ(reordered.placements.size(), d.placements.size());
    for (size_t i = 0; i < d.placements.size(); ++i) {
      EXPECT_EQ(again.placements[i].provider, d.placements[i].provider);
      EXPECT_EQ(reordered.placements[i].provider, d.placements[i].provider);
    }
  }
  // The generator exercises every branch.
  EXPECT_GT(spread_cases, 500);
  EXPECT_GT(degraded_cases, 100);
  EXPECT_GT(partial_cases, 500);
}

// Many small placements (one replica at a time, as a reconciler replacing failures does) spread
// as well as one big placement, and prefer the cheaper provider for the rest.
TEST(PlacementSimulationTest, IncrementalPlacementSpreads) {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 500; ++iter) {
    std::vector<ProviderView> ps;
    int n = 2 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      ProviderView p;
      p.name = "p" + std::to_string(i);
      p.accelerators = {"cpu"};
      p.free_slots = 64;
      p.usd_per_hour = 0.5 + static_cast<double>(rng() % 100) / 10;
      p.reliability = 0.95;
      ps.push_back(p);
    }
    PlacementRequest r;
    r.min_replicas = 2 + static_cast<int>(rng() % 6);
    r.constraints.spread_min_providers = 1 + static_cast<int>(rng() % n);
    for (int i = 0; i < r.min_replicas; ++i) {
      r.count = 1;
      PlacementDecision d = Place(r, ps);
      ASSERT_EQ(d.placements.size(), 1u);
      for (ProviderView& p : ps) {
        if (p.name == d.placements[0].provider) p.free_slots -= 1;
      }
      r.existing.push_back(d.placements[0].provider);
    }
    std::set<std::string> used(r.existing.begin(), r.existing.end());
    EXPECT_GE(static_cast<int>(used.size()),
              std::min<int>(r.min_replicas, std::max(2, r.constraints.spread_min_providers)));
  }
}

}  // namespace
}  // namespace weft::control
