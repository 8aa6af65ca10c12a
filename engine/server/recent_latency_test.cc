// SPDX-License-Identifier: Apache-2.0
#include "engine/server/recent_latency.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace weft::engine {
namespace {

TEST(RecentLatencyTest, EmptyHasNoSamples) {
  RecentLatency r;
  RecentLatency::Summary s = r.Get(100);
  EXPECT_EQ(s.samples, 0);
  EXPECT_EQ(s.p95_ms, 0);
}

TEST(RecentLatencyTest, NearestRankP95) {
  RecentLatency r;
  for (int i = 1; i <= 100; ++i) r.Add(10, i);  // 1..100 ms
  RecentLatency::Summary s = r.Get(10);
  EXPECT_EQ(s.samples, 100);
  EXPECT_EQ(s.p95_ms, 95);
  RecentLatency one;
  one.Add(0, 7);
  EXPECT_EQ(one.Get(0).p95_ms, 7);
}

TEST(RecentLatencyTest, OldSamplesLeaveTheWindow) {
  RecentLatency r({.window_s = 60, .max_samples = 256});
  r.Add(0, 5000);  // a slow burst long ago
  r.Add(1, 5000);
  r.Add(50, 20);
  EXPECT_EQ(r.Get(55).p95_ms, 5000);
  RecentLatency::Summary later = r.Get(61.5);  // t=0 and t=1 are older than 60 s
  EXPECT_EQ(later.samples, 1);
  EXPECT_EQ(later.p95_ms, 20);
  EXPECT_EQ(r.Get(200).samples, 0);
}

TEST(RecentLatencyTest, KeepsOnlyTheLastSamples) {
  RecentLatency r({.window_s = 1e9, .max_samples = 10});
  for (int i = 0; i < 10; ++i) r.Add(i, 1000);
  for (int i = 10; i < 20; ++i) r.Add(i, 1);
  RecentLatency::Summary s = r.Get(20);
  EXPECT_EQ(s.samples, 10);
  EXPECT_EQ(s.p95_ms, 1);
}

// Against a sorted copy, over random windows.
TEST(RecentLatencyTest, MatchesSortedOracle) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    RecentLatency r({.window_s = 5, .max_samples = 64});
    std::vector<std::pair<double, double>> all;
    double t = 0;
    const int n = 1 + static_cast<int>(rng() % 150);
    for (int i = 0; i < n; ++i) {
      t += std::uniform_real_distribution<double>(0, 0.2)(rng);
      double ms = std::exponential_distribution<double>(0.01)(rng);
      r.Add(t, ms);
      all.push_back({t, ms});
    }
    std::vector<double> window;
    for (auto it = all.rbegin(); it != all.rend() && window.size() < 64; ++it) {
      if (it->first >= t - 5) window.push_back(it->second);
    }
    std::sort(window.begin(), window.end());
    RecentLatency::Summary s = r.Get(t);
    ASSERT_EQ(s.samples, static_cast<int32_t>(window.size()));
    size_t rank = static_cast<size_t>(std::ceil(0.95 * static_cast<double>(window.size())));
    EXPECT_EQ(s.p95_ms, window[rank - 1]);
  }
}

}  // namespace
}  // namespace weft::engine
