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
//   - more live replicas than desired: the extras are drained (old generation first, not ready
//     first, newest first);
//   - a deleted deployment: every replica is drained; once none is left the deployment is removed.
// Replicas of deployments that are not declared at all are terminated. Providers: one that is
// unhealthy, or has `failure_threshold` recent failures, is marked degraded; a degraded one that is
// healthy with fewer recent failures is cleared.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "control/deployments/deployment_spec.h"
#include "control/placement/placement.h"
#include "control/store/control_store.h"

namespace weft::control {

struct DesiredDeployment {
  std::string name;
  int64_t generation = 0;  // the DeploymentRecord's generation
  DeploymentSpec spec;
  bool deleted = false;
  int32_t desired_replicas = 0;  // the autoscaler's (or replicas.min's) target
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

Plan PlanReconcile(const std::vector<DesiredDeployment>& deployments,
                   const std::vector<ReplicaRecord>& replicas,
                   const std::vector<ProviderState>& providers, const ReplicaIdGenerator& new_id,
                   const PlanOptions& options = {});

// Whether a replica in this phase counts toward its deployment (pending, starting, ready).
bool IsLive(ReplicaPhase phase);

}  // namespace weft::control
