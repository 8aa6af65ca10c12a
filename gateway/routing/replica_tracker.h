// SPDX-License-Identifier: Apache-2.0
// ReplicaTracker: the gateway's live state of every replica in the route table, turned into
// ReplicaViews for a Balancer. The proxy reports each attempt's progress and outcome, the load
// poller reports loads and health; passive outlier ejection (per deployment) and a circuit breaker
// per replica are applied here. Owned by the gateway; thread-safe (one mutex); no I/O, time is a
// parameter.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/load_report.h"
#include "gateway/config/gateway_config.h"
#include "gateway/routing/balancer.h"
#include "gateway/routing/circuit_breaker.h"
#include "gateway/routing/ewma.h"
#include "gateway/routing/outlier_detector.h"
#include "gateway/routing/route_table.h"

namespace weft::gateway {

struct ReplicaTrackerOptions {
  int max_outstanding = 256;    // limits.max_outstanding_per_replica
  double ewma_alpha = 0.3;      // balancer.latency_ewma_alpha
  OutlierConfig outlier;        // ejection and breaker knobs
  int unhealthy_threshold = 2;  // failed polls in a row -> unhealthy
  int healthy_threshold = 1;    // good polls in a row -> healthy again
};
ReplicaTrackerOptions ReplicaTrackerOptionsFrom(const GatewayConfig& config);

class ReplicaTracker {
 public:
  explicit ReplicaTracker(ReplicaTrackerOptions options);

  // Adopts a route table: replicas that stay keep their state; new ones start healthy and idle;
  // removed ones are forgotten (their in-flight requests' reports are then ignored).
  void SetRoutes(const RouteTable& table);

  // A deployment's replica views, in route-table order. The views point into `deployment` (keep its
  // RouteTable alive) and into load reports the snapshot holds.
  class Snapshot {
   public:
    std::span<const ReplicaView> views() const { return views_; }

   private:
    friend class ReplicaTracker;
    std::vector<ReplicaView> views_;
    std::vector<std::shared_ptr<const api::LoadReport>> loads_;
  };
  Snapshot Views(const DeploymentConfig& deployment, double now_s) const;

  // One attempt on a replica. Begin reserves a circuit-breaker slot and counts the request and its
  // tokens in flight; false: the breaker refused (pick again with this replica excluded). Every
  // true Begin must be followed by one End.
  bool Begin(std::string_view replica, int64_t tokens, double now_s);
  void FirstToken(std::string_view replica, double ttft_ms, double now_s);
  void InterToken(std::string_view replica, double itl_ms, double now_s);
  enum class Outcome {
    kSuccess,    // any answer from the replica that is not its fault (2xx, 4xx)
    kFailure,    // 5xx, connect failure, reset, stall
    kCancelled,  // the client left: says nothing about the replica
  };
  void End(std::string_view replica, int64_t tokens, Outcome outcome, double now_s);

  // A poll of GET /health + /weft/v1/load (LoadPoller): a report, or why there is none. A report
  // with ready=false counts as a failed poll.
  void OnLoadReport(std::string_view replica, const absl::StatusOr<api::LoadReport>& report,
                    double now_s);

  int64_t ejections_total() const;  // outlier ejections so far (/metrics)

 private:
  struct State {
    std::string deployment;
    int32_t outstanding = 0;
    int64_t tokens = 0;
    Ewma ttft;
    Ewma itl;
    std::shared_ptr<const api::LoadReport> load;
    int poll_failures = 0;
    int poll_successes = 0;
    bool healthy = true;
    std::unique_ptr<CircuitBreaker> breaker;
  };
  State* Find(std::string_view replica);  // needs mu_

  ReplicaTrackerOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, State, std::less<>> replicas_;  // guarded by mu_
  // One detector per deployment (max_ejection_percent is per pool); guarded by mu_.
  std::map<std::string, std::unique_ptr<OutlierDetector>, std::less<>> detectors_;
  int64_t retired_ejections_ = 0;  // of detectors dropped with their deployment; guarded by mu_
};

}  // namespace weft::gateway
