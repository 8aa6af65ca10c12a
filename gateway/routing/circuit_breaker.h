// SPDX-License-Identifier: Apache-2.0
// CircuitBreaker: one replica's breaker. Closed: requests pass up to max_pending at once.
// `failure_threshold` failures in a row open it: no requests for open_s, then half-open, where
// exactly one probe request passes; the probe's success closes it, its failure opens it again.
// Pure (time is a parameter); thread-safe (one mutex). Owned by the gateway's per-replica state.
#pragma once

#include <cstdint>
#include <mutex>

namespace weft::gateway {

struct CircuitBreakerOptions {
  int max_pending = 256;      // requests in flight at once
  int failure_threshold = 5;  // consecutive failures that open the breaker
  double open_s = 10;         // open -> half-open after this long
};

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  explicit CircuitBreaker(CircuitBreakerOptions options) : options_(options) {}

  // Whether TryAcquire would succeed now (for the balancer's view; reserves nothing).
  bool Allows(double now_s) const;
  // Reserves a slot for one request: false when open, at max_pending, or half-open with the probe
  // already out. Every true must be followed by exactly one Release or Cancel.
  bool TryAcquire(double now_s);
  // Ends an acquired request with its outcome (failure: 5xx, connect failure, reset, stall).
  void Release(bool success, double now_s);
  // Ends an acquired request whose outcome says nothing about the replica (the client left).
  void Cancel();

  State state(double now_s) const;
  int pending() const;

 private:
  State StateLocked(double now_s) const;
  bool AllowsLocked(double now_s) const;

  CircuitBreakerOptions options_;
  mutable std::mutex mu_;
  int pending_ = 0;         // guarded by mu_
  int consecutive_ = 0;     // failures in a row; guarded by mu_
  bool open_ = false;       // guarded by mu_
  double opened_s_ = 0;     // guarded by mu_
  bool probe_out_ = false;  // half-open probe in flight; guarded by mu_
};

}  // namespace weft::gateway
