// SPDX-License-Identifier: Apache-2.0
// Histogram: a Prometheus histogram with fixed upper bounds, rendered as text exposition; and
// PrometheusNumber, the number format of that exposition. Thread-safe (one mutex per histogram).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace weft {

// A finite number as Prometheus text exposition writes it (17 significant digits).
std::string PrometheusNumber(double v);

// A Prometheus histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // Appends "# TYPE" and the _bucket/_sum/_count lines for metric `name`.
  void Render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // guarded by mu_; [bounds_.size() + 1], last is +Inf
  double sum_ = 0;                // guarded by mu_
  uint64_t count_ = 0;            // guarded by mu_
};

}  // namespace weft
