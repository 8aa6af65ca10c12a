// SPDX-License-Identifier: Apache-2.0
// Autoscaler: turns one deployment's load signals into a replica target. A pure policy with a
// little state (recent recommendations); time is a parameter (now_ms), no I/O. One instance per
// deployment, owned by the control loop; not thread-safe (call from one thread).
//
// Up fast: within the evaluation that sees the breach (load per replica over target, or TTFT p95
// over the SLO), enough replicas to bring load per replica to the target, capped at max.
// Down slowly: to the highest recommendation of the last scale_down_delay_s (the stabilization
// window of Kubernetes' HPA), so a flapping load does not make replicas oscillate.
// To zero (scale_to_zero): after scale_down_delay_s with no load and no held request; from zero
// to the floor as soon as the gateway holds a request.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>

#include "api/load_report.h"
#include "control/deployments/deployment_spec.h"

namespace weft::control {

struct AutoscalerInput {
  int64_t now_ms = 0;             // any monotonic clock; must not go backwards
  int32_t ready_replicas = 0;     // serving
  int32_t starting_replicas = 0;  // provisioned, not ready yet (pending counts here too)
  // Fresh load reports of ready replicas (may be fewer than ready_replicas: the missing ones are
  // assumed to carry the average load).
  std::span<const api::LoadReport> loads;
  std::optional<double> ttft_p95_ms;  // recent TTFT p95 over the deployment; nullopt: no samples
  int64_t pending_requests = 0;       // requests the gateway holds because no replica is ready
};

enum class ScaleDirection { kNone, kUp, kDown };
std::string_view ScaleDirectionName(ScaleDirection d);  // "none" | "up" | "down"

struct ScaleDecision {
  int32_t desired = 0;  // replicas wanted (ready + starting), in [0, replicas.max]
  ScaleDirection direction = ScaleDirection::kNone;  // desired vs ready + starting
  // One line for logs and `weft describe`: "concurrency 37.0 over 3 replicas > target 8.0 per
  // replica: 3 -> 5".
  std::string reason;
  int32_t recommendation = 0;  // this evaluation's own target before stabilization
};

struct AutoscalerOptions {
  // Scale down is held while TTFT p95 is above this share of the SLO (hysteresis).
  double slo_scale_down_fraction = 0.8;
  // An SLO breach without a load breach adds replicas in proportion to TTFT / SLO, at most this
  // factor of the ready replicas per evaluation, and at least one.
  double max_slo_scale_up_factor = 2;
};

// The deployment's TTFT p95 (for AutoscalerInput::ttft_p95_ms) from its replicas' load reports:
// the highest p95 among the replicas with at least `min_samples` recent requests (among all
// replicas with samples when none has that many); nullopt when no replica has samples.
// Why the max: quantiles do not merge (the p95 over the union of the samples lies somewhere
// between the smallest and the largest replica p95, and the reports carry no samples), and the
// SLO is a promise per request, so the conservative upper bound is the one that cannot hide a
// breach; replicas with only a few samples are left out so one slow cold request does not scale.
std::optional<double> DeploymentTtftP95(std::span<const api::LoadReport> loads,
                                        int32_t min_samples = 5);

class Autoscaler {
 public:
  Autoscaler(const AutoscalingSpec& autoscaling, const ReplicasSpec& replicas,
             AutoscalerOptions options = {});

  // One evaluation (the control loop calls it every autoscaling.evaluation_period_s).
  ScaleDecision Evaluate(const AutoscalerInput& input);

  // A new spec (e.g. `weft scale`, an edited deployment): limits apply from the next evaluation;
  // the history is kept so a spec edit does not cause an immediate scale down.
  void UpdateSpec(const AutoscalingSpec& autoscaling, const ReplicasSpec& replicas);

  // The fewest replicas while the deployment has traffic: max(min, 1) with scale_to_zero.
  int32_t ActiveFloor() const;

 private:
  struct Recommendation {
    int64_t at_ms;
    int32_t replicas;
  };

  AutoscalingSpec autoscaling_;
  ReplicasSpec replicas_;
  AutoscalerOptions options_;
  std::optional<int64_t> first_eval_ms_;
  std::deque<Recommendation> history_;  // recommendations of the last scale_down_delay_s
};

}  // namespace weft::control
