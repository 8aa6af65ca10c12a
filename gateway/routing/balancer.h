// SPDX-License-Identifier: Apache-2.0
// Balancer: the pure policy that picks a replica for one request from a snapshot of the
// deployment's replicas (their state and the gateway's view of their load). No I/O, no clock of
// its own (time comes in the request), no randomness of its own (the caller draws it). One
// balancer serves every deployment and is called concurrently from the I/O threads: Pick is
// thread-safe. The views point into storage the caller owns for the duration of the call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "api/load_report.h"
#include "gateway/config/gateway_config.h"

namespace weft::gateway {

using ReplicaId = std::string;

// What the balancer knows of the request.
struct RequestView {
  std::string_view deployment;
  std::string_view adapter;               // "" = base model
  std::span<const uint64_t> prefix_keys;  // PrefixKeys() of PrefixText(); may be empty
  int64_t estimated_tokens = 0;           // prompt estimate + max_tokens
  // The deployment's preferences (DeploymentConfig::preferred_*); empty = none.
  std::span<const std::string> preferred_providers;
  std::span<const std::string> preferred_regions;
  std::span<const ReplicaId> exclude;  // replicas already tried for this request (retries, hedges)
  uint64_t random = 0;                 // drawn by the caller per request (p2c, tie breaks)
  double now_s = 0;                    // the caller's clock (latency staleness)
};

// What the balancer knows of one replica.
struct ReplicaView {
  std::string_view id;
  std::string_view provider;
  std::string_view region;
  ReplicaState state = ReplicaState::kReady;
  double weight = 1;
  bool healthy = true;   // active health checks pass
  bool ejected = false;  // outlier detector ejected it, or its circuit breaker is open
  // Gateway-side accounting of requests in flight to this replica.
  int32_t outstanding_requests = 0;
  int64_t outstanding_tokens = 0;
  int32_t max_outstanding = 0;  // at or above it the replica is saturated; 0 = no limit
  // The last load report (GET /weft/v1/load); has_load false = none yet.
  bool has_load = false;
  int32_t waiting = 0;
  int32_t running = 0;
  int64_t tokens_in_flight = 0;
  int32_t kv_blocks_free = 0;
  int32_t kv_blocks_total = 0;
  std::span<const std::string> adapters;    // adapters loaded
  std::span<const uint64_t> prefix_digest;  // the engine's token-block digests (informational)
  // Latency EWMAs from responses through this gateway (ms); 0 = no sample yet.
  double ewma_ttft_ms = 0;
  double ewma_itl_ms = 0;
  double latency_updated_s = 0;  // the caller's clock at the last sample
};

// Copies a load report's fields into `view` (spans point into `report`).
void FillLoadReport(const api::LoadReport& report, ReplicaView* view);

// True when a replica can take no new request: not ready, unhealthy, ejected.
bool Unavailable(const ReplicaView& replica);
// True when it is available but at its max_outstanding.
bool Saturated(const ReplicaView& replica);

class Balancer {
 public:
  virtual ~Balancer() = default;

  // Picks a replica among `replicas` (all of the deployment's, in route-table order) for
  // `request`, or nullopt when none can take it (all unavailable, excluded or saturated: the
  // caller sheds the request with 503). Never picks a draining, down, unhealthy or ejected one.
  std::optional<ReplicaId> Pick(const RequestView& request, std::span<const ReplicaView> replicas);
  // As Pick, returning the index into `replicas`.
  virtual std::optional<size_t> PickIndex(const RequestView& request,
                                          std::span<const ReplicaView> replicas) = 0;
  virtual std::string_view name() const = 0;
};

// The balancer named by config.policy, with its knobs. InvalidArgument for knobs out of range.
absl::StatusOr<std::unique_ptr<Balancer>> MakeBalancer(const BalancerConfig& config);

}  // namespace weft::gateway
