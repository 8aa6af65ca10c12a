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

#include "base/histogram.h"
#include "engine/runtime/engine.h"
#include "engine/server/recent_latency.h"

namespace weft::engine {

class ServerMetrics {
 public:
  ServerMetrics();

  void CountRequest(const std::string& endpoint, int status);
  void AddTokens(int64_t prompt, int64_t completion, int64_t cached);
  // Also kept in a recent window for the load report's ttft_p95_ms.
  void ObserveTtft(double seconds);
  void ObserveInterToken(double seconds) { itl_.Observe(seconds); }
  void CountClientCancel() { client_cancels_++; }

  // TTFT p95 of recent requests (RecentLatency's window), for GET /weft/v1/load.
  RecentLatency::Summary RecentTtft() const;

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
  mutable RecentLatency recent_ttft_;  // guarded by mu_
};

}  // namespace weft::engine
