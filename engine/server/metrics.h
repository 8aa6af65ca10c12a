// SPDX-License-Identifier: Apache-2.0
// ServerMetrics: the engine server's own counters and latency histograms, rendered with the
// engine's LoadReport as Prometheus text exposition (GET /metrics). Thread-safe; shared by the
// server and its in-flight requests.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/runtime/engine.h"

namespace weft::engine {

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

class ServerMetrics {
 public:
  ServerMetrics();

  void CountRequest(const std::string& endpoint, int status);
  void AddTokens(int64_t prompt, int64_t completion, int64_t cached);
  void ObserveTtft(double seconds) { ttft_.Observe(seconds); }
  void ObserveInterToken(double seconds) { itl_.Observe(seconds); }
  void CountClientCancel() { client_cancels_++; }

  // The exposition text, with gauges from `load`.
  std::string Render(const LoadReport& load) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // guarded by mu_
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> completion_tokens_{0};
  std::atomic<int64_t> cached_tokens_{0};
  std::atomic<int64_t> client_cancels_{0};
  Histogram ttft_;
  Histogram itl_;
};

}  // namespace weft::engine
