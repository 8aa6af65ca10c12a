// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/retry_budget.h"

#include <cmath>

namespace weft::gateway {

RetryBudget::RetryBudget(RetryBudgetOptions options)
    : options_(options),
      bucket_s_(options.window_s > 0 ? options.window_s / kBuckets : 1.0),
      buckets_(kBuckets) {}

RetryBudget::Bucket& RetryBudget::Current(double now_s) {
  int64_t epoch = static_cast<int64_t>(std::floor(now_s / bucket_s_));
  Bucket& b = buckets_[static_cast<size_t>(((epoch % kBuckets) + kBuckets) % kBuckets)];
  if (b.epoch != epoch) b = Bucket{epoch, 0, 0};
  return b;
}

void RetryBudget::Sums(double now_s, int64_t* requests, int64_t* retries) {
  int64_t epoch = static_cast<int64_t>(std::floor(now_s / bucket_s_));
  *requests = 0;
  *retries = 0;
  for (const Bucket& b : buckets_) {
    if (b.epoch > epoch - kBuckets && b.epoch <= epoch) {
      *requests += b.requests;
      *retries += b.retries;
    }
  }
}

void RetryBudget::RecordRequest(double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  ++Current(now_s).requests;
}

bool RetryBudget::TryRetry(double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  Bucket& current = Current(now_s);
  int64_t requests = 0, retries = 0;
  Sums(now_s, &requests, &retries);
  double allowed =
      options_.ratio * static_cast<double>(requests) + options_.min_per_s * bucket_s_ * kBuckets;
  if (static_cast<double>(retries) + 1 > allowed) return false;
  ++current.retries;
  return true;
}

int64_t RetryBudget::requests(double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t requests = 0, retries = 0;
  Sums(now_s, &requests, &retries);
  return requests;
}

int64_t RetryBudget::retries(double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t requests = 0, retries = 0;
  Sums(now_s, &requests, &retries);
  return retries;
}

}  // namespace weft::gateway
