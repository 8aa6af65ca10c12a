// SPDX-License-Identifier: Apache-2.0
#include "engine/server/recent_latency.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace weft::engine {

void RecentLatency::Add(double now_s, double ms) {
  samples_.push_back({now_s, std::max(ms, 0.0)});
  Trim(now_s);
}

void RecentLatency::Trim(double now_s) {
  while (!samples_.empty() && samples_.front().at_s < now_s - options_.window_s) {
    samples_.pop_front();
  }
  while (samples_.size() > static_cast<size_t>(std::max(options_.max_samples, 1))) {
    samples_.pop_front();
  }
}

RecentLatency::Summary RecentLatency::Get(double now_s) {
  Trim(now_s);
  Summary s;
  if (samples_.empty()) return s;
  std::vector<double> v;
  v.reserve(samples_.size());
  for (const Sample& x : samples_) v.push_back(x.ms);
  // Nearest rank: the smallest sample with at least 95% of the samples at or below it.
  const size_t rank = static_cast<size_t>(std::ceil(0.95 * static_cast<double>(v.size())));
  const size_t k = std::clamp<size_t>(rank, 1, v.size()) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  s.p95_ms = v[k];
  s.samples = static_cast<int32_t>(v.size());
  return s;
}

}  // namespace weft::engine
