// SPDX-License-Identifier: Apache-2.0
// Latency summaries and the open-loop schedule of weft_ratebench: pure functions, no I/O, safe
// from any thread.
#pragma once

#include <cstdint>
#include <vector>

namespace weft::bench {

struct LatencySummary {
  int64_t count = 0;
  double mean_ms = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double p999_ms = 0;
  double max_ms = 0;
};

// The nearest-rank q-quantile (0 < q <= 1) of `sorted` (ascending, non-empty): the smallest value
// with at least q x n values at or below it, i.e. sorted[ceil(q x n) - 1]. q <= 0 gives the
// minimum.
double NearestRank(const std::vector<double>& sorted, double q);

// Sorts `latencies_ms` in place and summarizes it; all zero when it is empty.
LatencySummary Summarize(std::vector<double>& latencies_ms);

// Open-loop schedule: request i of a sender at `rate_per_s` whose phase is `phase` (in [0, 1), a
// fraction of one period, so that T senders at rate R/T with phases k/T interleave into one
// evenly spaced stream at rate R) is due `ScheduledOffsetS(i)` seconds after the start.
double ScheduledOffsetS(int64_t i, double rate_per_s, double phase);
// How many requests of that sender fall strictly before `window_s` seconds after the start.
int64_t RequestsBefore(double window_s, double rate_per_s, double phase);

}  // namespace weft::bench
