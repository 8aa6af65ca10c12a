// SPDX-License-Identifier: Apache-2.0
// Ewma: an exponentially weighted moving average of samples (value = alpha x sample +
// (1 - alpha) x value; the first sample sets it), remembering when it last got a sample so that a
// reader can tell a stale average from a fresh one. A plain value: not thread-safe.
#pragma once

namespace weft::gateway {

class Ewma {
 public:
  explicit Ewma(double alpha = 0.3) : alpha_(alpha) {}

  void Add(double sample, double now_s) {
    value_ = empty_ ? sample : alpha_ * sample + (1 - alpha_) * value_;
    empty_ = false;
    updated_s_ = now_s;
  }
  bool empty() const { return empty_; }
  double value() const { return value_; }  // 0 while empty
  double updated_s() const { return updated_s_; }
  void Reset() { *this = Ewma(alpha_); }

 private:
  double alpha_;
  double value_ = 0;
  double updated_s_ = 0;
  bool empty_ = true;
};

}  // namespace weft::gateway
