// SPDX-License-Identifier: Apache-2.0
#include "base/histogram.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace weft {

std::string PrometheusNumber(double v) { return absl::StrFormat("%.17g", v); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard lock(mu_);
  counts_[i]++;
  sum_ += value;
  count_++;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string* out) const {
  std::lock_guard lock(mu_);
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(out, name, "_bucket{le=\"", PrometheusNumber(bounds_[i]), "\"} ", cumulative, "\n");
  }
  cumulative += counts_.back();
  absl::StrAppend(out, name, "_bucket{le=\"+Inf\"} ", cumulative, "\n", name, "_sum ", PrometheusNumber(sum_),
                  "\n", name, "_count ", count_, "\n");
}

}  // namespace weft
