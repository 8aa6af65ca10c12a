// SPDX-License-Identifier: Apache-2.0
// RetryBudget: caps retries at a share of recent traffic so that retries cannot multiply load on a
// struggling fleet (Linkerd's retry budget; Envoy's retry_budget is the concurrent form). Over a
// sliding window of window_s, retries are allowed while
//   retries < ratio x requests + min_per_s x window_s.
// Pure (time is a parameter); thread-safe (one mutex). One per gateway (or per deployment).
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace weft::gateway {

struct RetryBudgetOptions {
  double ratio = 0.2;    // retries per original request
  double min_per_s = 3;  // retries always allowed per second (low traffic)
  double window_s = 10;  // how far back "recent" reaches
};

class RetryBudget {
 public:
  explicit RetryBudget(RetryBudgetOptions options);

  // Counts one original request (not a retry).
  void RecordRequest(double now_s);
  // Asks to retry: true (and the retry is counted) if the budget allows it now.
  bool TryRetry(double now_s);

  // Recent requests and retries inside the window (for tests and metrics).
  int64_t requests(double now_s);
  int64_t retries(double now_s);

 private:
  static constexpr int kBuckets = 10;
  struct Bucket {
    int64_t epoch = -1;  // which slice of time the counts belong to
    int64_t requests = 0;
    int64_t retries = 0;
  };
  Bucket& Current(double now_s);
  void Sums(double now_s, int64_t* requests, int64_t* retries);

  RetryBudgetOptions options_;
  double bucket_s_;
  std::mutex mu_;
  std::vector<Bucket> buckets_;  // ring of kBuckets; guarded by mu_
};

}  // namespace weft::gateway
