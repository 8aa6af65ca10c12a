// SPDX-License-Identifier: Apache-2.0
// RecentLatency: a sliding window of latency samples (the last `window_s` seconds, at most
// `max_samples` of them) and their p95, for the load report's TTFT signal. A plain value: time is
// a parameter, no clock and no locking (ServerMetrics guards it).
#pragma once

#include <cstdint>
#include <deque>

namespace weft::engine {

struct RecentLatencyOptions {
  double window_s = 60;
  int32_t max_samples = 256;
};

class RecentLatency {
 public:
  explicit RecentLatency(RecentLatencyOptions options = {}) : options_(options) {}

  void Add(double now_s, double ms);

  struct Summary {
    double p95_ms = 0;  // 0 when there is no sample
    int32_t samples = 0;
  };
  // Over the samples of the window ending at now_s (older ones are dropped). Nearest-rank p95.
  Summary Get(double now_s);

 private:
  struct Sample {
    double at_s;
    double ms;
  };
  void Trim(double now_s);

  RecentLatencyOptions options_;
  std::deque<Sample> samples_;  // oldest first
};

}  // namespace weft::engine
