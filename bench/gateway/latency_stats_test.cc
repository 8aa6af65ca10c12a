// SPDX-License-Identifier: Apache-2.0
#include "bench/gateway/latency_stats.h"

#include <algorithm>
#include <random>

#include "gtest/gtest.h"

namespace weft::bench {
namespace {

TEST(NearestRankTest, SmallSets) {
  EXPECT_EQ(NearestRank({}, 0.5), 0);
  EXPECT_EQ(NearestRank({7}, 0.5), 7);
  EXPECT_EQ(NearestRank({7}, 0.999), 7);
  // n = 4: p50 is the 2nd value (ceil(2) = 2), p51 the 3rd, p100 the 4th, p0 the 1st.
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_EQ(NearestRank(v, 0.5), 2);
  EXPECT_EQ(NearestRank(v, 0.51), 3);
  EXPECT_EQ(NearestRank(v, 1.0), 4);
  EXPECT_EQ(NearestRank(v, 0.0), 1);
  EXPECT_EQ(NearestRank(v, 0.25), 1);
}

TEST(NearestRankTest, ExactRanksOnOneToN) {
  // On 1..n the q-quantile is ceil(q x n) exactly, including where q x n is an integer that
  // floating point rounds up (0.99 x 100, 0.999 x 1000, 0.9 x 10).
  for (int n : {10, 100, 1000, 10000, 12345}) {
    std::vector<double> v(n);
    for (int i = 0; i < n; ++i) v[i] = i + 1;
    EXPECT_EQ(NearestRank(v, 0.5), std::ceil(0.5 * n - 1e-9)) << n;
    EXPECT_EQ(NearestRank(v, 0.9), std::ceil(0.9 * n - 1e-9)) << n;
    EXPECT_EQ(NearestRank(v, 0.99), std::ceil(0.99 * n - 1e-9)) << n;
    EXPECT_EQ(NearestRank(v, 0.999), std::max(1.0, std::ceil(0.999 * n - 1e-9))) << n;
  }
  std::vector<double> v(100);
  for (int i = 0; i < 100; ++i) v[i] = i + 1;
  EXPECT_EQ(NearestRank(v, 0.99), 99);
  EXPECT_EQ(NearestRank(v, 0.9), 90);
  std::vector<double> w(1000);
  for (int i = 0; i < 1000; ++i) w[i] = i + 1;
  EXPECT_EQ(NearestRank(w, 0.999), 999);
}

TEST(SummarizeTest, ShuffledInputMatchesDefinition) {
  std::mt19937 rng(42);
  std::vector<double> v;
  for (int i = 1; i <= 2000; ++i) v.push_back(i * 0.5);  // 0.5 .. 1000
  std::shuffle(v.begin(), v.end(), rng);
  LatencySummary s = Summarize(v);
  EXPECT_EQ(s.count, 2000);
  EXPECT_DOUBLE_EQ(s.p50_ms, 500);   // rank 1000
  EXPECT_DOUBLE_EQ(s.p90_ms, 900);   // rank 1800
  EXPECT_DOUBLE_EQ(s.p99_ms, 990);   // rank 1980
  EXPECT_DOUBLE_EQ(s.p999_ms, 999);  // rank 1998
  EXPECT_DOUBLE_EQ(s.max_ms, 1000);
  EXPECT_DOUBLE_EQ(s.mean_ms, 500.25);
  EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
}

TEST(SummarizeTest, EmptyAndOutlier) {
  std::vector<double> none;
  LatencySummary e = Summarize(none);
  EXPECT_EQ(e.count, 0);
  EXPECT_EQ(e.p99_ms, 0);
  // One 100 ms stall in 1000 samples of 1 ms: p99 stays 1, p99.9 and max see it.
  std::vector<double> v(999, 1.0);
  v.push_back(100);
  LatencySummary s = Summarize(v);
  EXPECT_EQ(s.p99_ms, 1);
  EXPECT_EQ(s.p999_ms, 1);
  EXPECT_EQ(s.max_ms, 100);
  v.assign(998, 1.0);
  v.push_back(100);
  v.push_back(100);
  EXPECT_EQ(Summarize(v).p999_ms, 100);
}

TEST(ScheduleTest, SendersInterleaveIntoOneEvenStream) {
  // 4 senders at 250/s with phases 0, .25, .5, .75 make one stream at 1000/s, 1 ms apart.
  std::vector<double> all;
  for (int k = 0; k < 4; ++k) {
    for (int64_t i = 0; i < RequestsBefore(1.0, 250, k / 4.0); ++i) {
      all.push_back(ScheduledOffsetS(i, 250, k / 4.0));
    }
  }
  ASSERT_EQ(all.size(), 1000u);
  std::sort(all.begin(), all.end());
  for (size_t j = 0; j < all.size(); ++j) EXPECT_NEAR(all[j], j * 0.001, 1e-12) << j;
}

TEST(ScheduleTest, RequestsBeforeIsTheFirstIndexAtOrPastTheWindow) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> rate(1, 20000), window(0, 30), phase(0, 1);
  for (int t = 0; t < 20000; ++t) {
    const double r = rate(rng), w = window(rng), p = phase(rng);
    const int64_t n = RequestsBefore(w, r, p);
    ASSERT_GE(n, 0);
    if (n > 0) {
      EXPECT_LT(ScheduledOffsetS(n - 1, r, p), w);
    }
    EXPECT_GE(ScheduledOffsetS(n, r, p), w);
  }
  EXPECT_EQ(RequestsBefore(0, 1000, 0), 0);
  EXPECT_EQ(RequestsBefore(1, 1000, 0), 1000);  // 0, 1 ms, ..., 999 ms
  EXPECT_EQ(RequestsBefore(1, 1000, 0.5), 1000);
  EXPECT_EQ(RequestsBefore(-1, 1000, 0), 0);
}

}  // namespace
}  // namespace weft::bench
