// SPDX-License-Identifier: Apache-2.0
#include "bench/gateway/latency_stats.h"

#include <algorithm>
#include <cmath>

namespace weft::bench {

double NearestRank(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  // A little slack so that q x n landing a hair above an integer (0.99 x 100 = 99.00000000000001)
  // does not skip a rank.
  int64_t rank = static_cast<int64_t>(std::ceil(q * n - 1e-9));
  rank = std::clamp<int64_t>(rank, 1, static_cast<int64_t>(sorted.size()));
  return sorted[static_cast<size_t>(rank - 1)];
}

LatencySummary Summarize(std::vector<double>& latencies_ms) {
  LatencySummary s;
  if (latencies_ms.empty()) return s;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  s.count = static_cast<int64_t>(latencies_ms.size());
  double sum = 0;
  for (double v : latencies_ms) sum += v;
  s.mean_ms = sum / static_cast<double>(s.count);
  s.p50_ms = NearestRank(latencies_ms, 0.50);
  s.p90_ms = NearestRank(latencies_ms, 0.90);
  s.p99_ms = NearestRank(latencies_ms, 0.99);
  s.p999_ms = NearestRank(latencies_ms, 0.999);
  s.max_ms = latencies_ms.back();
  return s;
}

double ScheduledOffsetS(int64_t i, double rate_per_s, double phase) {
  return (static_cast<double>(i) + phase) / rate_per_s;
}

int64_t RequestsBefore(double window_s, double rate_per_s, double phase) {
  if (window_s <= 0 || rate_per_s <= 0) return 0;
  // Smallest i with (i + phase) / rate >= window, i.e. i >= window x rate - phase.
  const double x = window_s * rate_per_s - phase;
  if (x <= 0) return 0;
  int64_t i = static_cast<int64_t>(std::ceil(x));
  // Guard the floating-point edge: i must be the first index at or past the window.
  while (i > 0 && ScheduledOffsetS(i - 1, rate_per_s, phase) >= window_s) --i;
  while (ScheduledOffsetS(i, rate_per_s, phase) < window_s) ++i;
  return i;
}

}  // namespace weft::bench
