// SPDX-License-Identifier: Apache-2.0
// PlanReconcile: what the control loop should do next to move the observed replicas toward the
// declared deployments. A pure function of plain values (no I/O, no clock; the replica ids come
// from the given generator), deterministic for equal inputs; safe from any thread.
//
// Rules, per deployment:
//   - a kFailed replica is terminated (and no longer counts); a kGone one is forgotten;
//   - fewer live (pending/starting/ready) replicas than desired: new ones are placed with Place()
//     (spread over providers, degraded providers avoided), at the deployment's generation;
//   - rolling update (live replicas of an older generation): surge one new replica, and only once
//     every new one is ready drain one old one, then surge the next;
//   - with spec.rollout.canary_percent = p > 0 the rolling update starts with a canary: the plan
//     keeps every old replica and brings up CanaryCount(desired, p) new ones (their route weights
//     give them about p% of the traffic: RouteWeights); once all are ready it holds for
//     rollout.canary_hold_s (by `now_ms`), then rolls on as above. A canary that fails during the
//     hold is replaced but the rollout pauses ("canary failed: <reason>") until the spec changes;
//   - more live replicas than desired: the extras are drained (old generation first, not ready
//     first, newest first);
//   - a deleted deployment: every replica is drained; once none is left the deployment is removed.
// Replicas of deployments that are not declared at all are terminated. Providers: one that is
// unhealthy, or has `failure_threshold` recent failures, is marked degraded; a degraded one that is
// healthy with fewer recent failures is cleared.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "control/deployments/deployment_spec.h"
#include "control/placement/placement.h"
#include "control/store/control_store.h"

namespace weft::control {

// Where the canary of a deployment's rolling update stands. The planner returns the next value
// (Plan::canary) and the caller hands it back on the next call. A value for another generation (a
// restarted controller) is rebuilt from the replicas: past the canary when more new replicas run
// than the canary count, otherwise at the start of the hold.
struct CanaryState {
  int64_t generation = 0;       // the deployment generation this is about; 0 = unknown
  int64_t ready_since_ms = -1;  // every canary ready since (the caller's clock); -1 = not yet
  bool done = false;            // the hold passed: rolling on
  std::string failed{};         // why a canary failed during the hold ("" = none): paused

  friend bool operator==(const CanaryState&, const CanaryState&) = default;
};

// Marks a canary phase in a deployment's status line ("canary: 1/1 ready ...", "canary failed:
// ..."); the control server gives canary route weights while the stored status carries it.
inline constexpr char kCanaryStatusPrefix[] = "canary";

struct DesiredDeployment {
  std::string name;
  int64_t generation = 0;  // the DeploymentRecord's generation
  DeploymentSpec spec;
  bool deleted = false;
  int32_t desired_replicas = 0;  // the autoscaler's (or replicas.min's) target
  CanaryState canary{};          // the previous plan's Plan::canary for it (default: none)
};

// A provider as the planner sees it: placement's view plus the signals for the degraded flag.
struct ProviderState {
  ProviderView view;    // view.degraded = the stored flag
  bool healthy = true;  // Provider::Health().ok and reachable
  int32_t recent_failures = 0;
  std::string reason;  // why unhealthy ("" when healthy)
};

struct ProvisionAction {
  std::string deployment;
  ReplicaId replica;
  std::string provider;
  std::string region;
  int64_t generation = 0;
};
struct TerminateAction {
  ReplicaId replica;
  std::string deployment;
  std::string provider;
  std::string reason;  // "failed: ...", "scale down 3 -> 2", "rolling update", "deployment deleted"
};
struct MarkDegradedAction {
  std::string provider;
  bool degraded = true;  // false: clear the flag
  std::string reason;
};

struct Plan {
  std::vector<ProvisionAction> provision;
  std::vector<TerminateAction> terminate;
  std::vector<MarkDegradedAction> degrade;
  std::vector<ReplicaId> forget;                // kGone records to delete
  std::vector<std::string> remove_deployments;  // deleted and fully drained
  // Per deployment, one line on what is going on ("3/3 ready", "rolling update: 1/3 new ready",
  // "unplaced 1: no provider can take ...").
  std::vector<std::pair<std::string, std::string>> status;
  // Per deployment in a canary rollout: its next CanaryState (to pass back in DesiredDeployment).
  std::vector<std::pair<std::string, CanaryState>> canary;

  bool empty() const {
    return provision.empty() && terminate.empty() && degrade.empty() && forget.empty() &&
           remove_deployments.empty();
  }
};

struct PlanOptions {
  int32_t failure_threshold = 3;  // recent failures that mark a provider degraded
  PlacementWeights weights;
};

using ReplicaIdGenerator = std::function<ReplicaId(const std::string& deployment)>;

// `now_ms`: the caller's clock (any epoch, never going backwards), read only for canary holds.
Plan PlanReconcile(const std::vector<DesiredDeployment>& deployments,
                   const std::vector<ReplicaRecord>& replicas,
                   const std::vector<ProviderState>& providers, const ReplicaIdGenerator& new_id,
                   const PlanOptions& options = {}, int64_t now_ms = 0);

// New-generation replicas a canary rollout starts with: ceil(desired x percent / 100), at least 1,
// at most desired (0 when desired or percent is 0).
int32_t CanaryCount(int32_t desired, int32_t percent);

// Route weight of a canary replica such that `canaries` of them beside `others` replicas of weight
// 1 take about `percent`% of the capacity (the balancers treat weight as capacity, so the traffic
// share is approximate): percent x others / ((100 - percent) x canaries); 1 when there is nothing
// to share (no canaries, no others, percent 0 or 100).
double CanaryRouteWeight(int32_t percent, int32_t canaries, int32_t others);

// The route weights of a deployment's ready replicas (by id): while `status` (the stored status
// line) shows a canary phase, the replicas of generation >= `generation` get CanaryRouteWeight,
// the others 1; otherwise every one 1.
std::map<ReplicaId, double> RouteWeights(const std::string& deployment, int64_t generation,
                                         int32_t canary_percent, std::string_view status,
                                         const std::vector<ReplicaRecord>& replicas);

// Whether a replica in this phase counts toward its deployment (pending, starting, ready).
bool IsLive(ReplicaPhase phase);

}  // namespace weft::control
