// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/circuit_breaker.h"

namespace weft::gateway {

CircuitBreaker::State CircuitBreaker::StateLocked(double now_s) const {
  if (!open_) return State::kClosed;
  return now_s - opened_s_ >= options_.open_s ? State::kHalfOpen : State::kOpen;
}

bool CircuitBreaker::AllowsLocked(double now_s) const {
  switch (StateLocked(now_s)) {
    case State::kClosed:
      return pending_ < options_.max_pending;
    case State::kOpen:
      return false;
    case State::kHalfOpen:
      return !probe_out_ && pending_ < options_.max_pending;
  }
  return false;
}

bool CircuitBreaker::Allows(double now_s) const {
  std::lock_guard<std::mutex> lock(mu_);
  return AllowsLocked(now_s);
}

bool CircuitBreaker::TryAcquire(double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!AllowsLocked(now_s)) return false;
  if (StateLocked(now_s) == State::kHalfOpen) probe_out_ = true;
  ++pending_;
  return true;
}

void CircuitBreaker::Release(bool success, double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_ > 0) --pending_;
  State state = StateLocked(now_s);
  if (success) {
    consecutive_ = 0;
    // A success closes a half-open breaker (the probe came back well). A request that began
    // before the breaker opened and ends while it is still open changes nothing.
    if (state == State::kHalfOpen) {
      open_ = false;
      probe_out_ = false;
    }
    return;
  }
  if (state == State::kHalfOpen) {  // the probe failed: open again for a full period
    opened_s_ = now_s;
    probe_out_ = false;
    return;
  }
  if (state == State::kClosed && ++consecutive_ >= options_.failure_threshold) {
    open_ = true;
    opened_s_ = now_s;
    consecutive_ = 0;
    probe_out_ = false;
  }
}

void CircuitBreaker::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_ > 0) --pending_;
  probe_out_ = false;  // a cancelled probe lets the next request probe
}

CircuitBreaker::State CircuitBreaker::state(double now_s) const {
  std::lock_guard<std::mutex> lock(mu_);
  return StateLocked(now_s);
}

int CircuitBreaker::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_;
}

}  // namespace weft::gateway
