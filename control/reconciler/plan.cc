// SPDX-License-Identifier: Apache-2.0
#include "control/reconciler/plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace weft::control {

bool IsLive(ReplicaPhase phase) {
  return phase == ReplicaPhase::kPending || phase == ReplicaPhase::kStarting ||
         phase == ReplicaPhase::kReady;
}

int32_t CanaryCount(int32_t desired, int32_t percent) {
  if (desired <= 0 || percent <= 0) return 0;
  const int64_t n = (static_cast<int64_t>(desired) * std::min(percent, 100) + 99) / 100;
  return static_cast<int32_t>(std::clamp<int64_t>(n, 1, desired));
}

double CanaryRouteWeight(int32_t percent, int32_t canaries, int32_t others) {
  if (percent <= 0 || percent >= 100 || canaries <= 0 || others <= 0) return 1.0;
  // Share of capacity: c x w / (c x w + o) = p / 100  <=>  w = p x o / ((100 - p) x c).
  return static_cast<double>(percent) * others / (static_cast<double>(100 - percent) * canaries);
}

std::map<ReplicaId, double> RouteWeights(const std::string& deployment, int64_t generation,
                                         int32_t canary_percent, std::string_view status,
                                         const std::vector<ReplicaRecord>& replicas) {
  std::map<ReplicaId, double> out;
  int32_t canaries = 0, others = 0;
  for (const ReplicaRecord& r : replicas) {
    if (r.deployment != deployment || r.phase != ReplicaPhase::kReady) continue;
    out[r.id] = 1.0;
    (r.spec_generation >= generation ? canaries : others)++;
  }
  // The planner writes the canary phase first in its line; the model gate may put its own first.
  const bool canary_on = status.starts_with(kCanaryStatusPrefix) ||
                         status.find(absl::StrCat("; ", kCanaryStatusPrefix)) != status.npos;
  if (!canary_on) return out;
  const double w = CanaryRouteWeight(canary_percent, canaries, others);
  for (const ReplicaRecord& r : replicas) {
    if (r.deployment == deployment && r.phase == ReplicaPhase::kReady &&
        r.spec_generation >= generation) {
      out[r.id] = w;
    }
  }
  return out;
}

namespace {

bool IsReady(const ReplicaRecord& r) { return r.phase == ReplicaPhase::kReady; }

// Drain order for extras: not ready before ready, then newest first, then by id.
bool DrainFirst(const ReplicaRecord* a, const ReplicaRecord* b) {
  if (IsReady(*a) != IsReady(*b)) return !IsReady(*a);
  if (a->created_ms != b->created_ms) return a->created_ms > b->created_ms;
  return a->id > b->id;
}

// Rolling update order for old replicas: not ready first, then oldest first.
bool RollFirst(const ReplicaRecord* a, const ReplicaRecord* b) {
  if (IsReady(*a) != IsReady(*b)) return !IsReady(*a);
  if (a->created_ms != b->created_ms) return a->created_ms < b->created_ms;
  return a->id < b->id;
}

}  // namespace

Plan PlanReconcile(const std::vector<DesiredDeployment>& deployments,
                   const std::vector<ReplicaRecord>& replicas,
                   const std::vector<ProviderState>& providers, const ReplicaIdGenerator& new_id,
                   const PlanOptions& options, int64_t now_ms) {
  Plan plan;

  // Providers: degraded flags first, so placement sees them.
  std::vector<ProviderView> views;
  views.reserve(providers.size());
  for (const ProviderState& p : providers) {
    ProviderView v = p.view;
    const bool should = !p.healthy || p.recent_failures >= options.failure_threshold;
    if (should != v.degraded) {
      std::string reason = !p.healthy ? (p.reason.empty() ? std::string("unhealthy") : p.reason)
                           : should   ? absl::StrCat(p.recent_failures, " recent failures")
                                      : std::string("healthy again");
      plan.degrade.push_back({.provider = v.name, .degraded = should, .reason = std::move(reason)});
      v.degraded = should;
    }
    if (!p.healthy) v.free_slots = 0;
    views.push_back(std::move(v));
  }
  auto view_of = [&](const std::string& name) -> ProviderView* {
    for (ProviderView& v : views) {
      if (v.name == name) return &v;
    }
    return nullptr;
  };

  std::map<std::string, std::vector<const ReplicaRecord*>> by_deployment;
  for (const ReplicaRecord& r : replicas) {
    if (r.phase == ReplicaPhase::kGone) {
      plan.forget.push_back(r.id);
      continue;
    }
    by_deployment[r.deployment].push_back(&r);
  }

  std::set<std::string> declared;
  for (const DesiredDeployment& d : deployments) declared.insert(d.name);
  for (const auto& [name, rs] : by_deployment) {
    if (declared.count(name)) continue;
    for (const ReplicaRecord* r : rs) {
      if (r->phase == ReplicaPhase::kDraining) continue;
      plan.terminate.push_back({.replica = r->id,
                                .deployment = r->deployment,
                                .provider = r->provider,
                                .reason = "deployment not declared"});
    }
  }

  for (const DesiredDeployment& d : deployments) {
    const auto it = by_deployment.find(d.name);
    const std::vector<const ReplicaRecord*> none;
    const std::vector<const ReplicaRecord*>& rs = it == by_deployment.end() ? none : it->second;

    auto terminate = [&](const ReplicaRecord* r, std::string reason) {
      plan.terminate.push_back({.replica = r->id,
                                .deployment = r->deployment,
                                .provider = r->provider,
                                .reason = std::move(reason)});
    };

    if (d.deleted) {
      for (const ReplicaRecord* r : rs) {
        if (r->phase != ReplicaPhase::kDraining) terminate(r, "deployment deleted");
      }
      if (rs.empty()) {
        plan.remove_deployments.push_back(d.name);
      } else {
        plan.status.emplace_back(d.name, absl::StrCat("deleting: ", rs.size(), " replicas left"));
      }
      continue;
    }

    std::vector<const ReplicaRecord*> fresh, old;
    for (const ReplicaRecord* r : rs) {
      if (r->phase == ReplicaPhase::kFailed) {
        terminate(r, r->failure_reason.empty() ? std::string("failed")
                                               : absl::StrCat("failed: ", r->failure_reason));
        continue;
      }
      if (!IsLive(r->phase)) continue;
      (r->spec_generation >= d.generation ? fresh : old).push_back(r);
    }
    const int32_t want = std::max<int32_t>(0, d.desired_replicas);
    int32_t total = static_cast<int32_t>(fresh.size() + old.size());
    int32_t fresh_not_ready = 0;
    int32_t fresh_ready = 0;
    for (const ReplicaRecord* r : fresh) (IsReady(*r) ? fresh_ready : fresh_not_ready)++;
    int32_t to_provision = 0;
    std::string status;

    // Canary: decide whether this rolling update is still in its canary phase.
    const RolloutSpec& rollout = d.spec.rollout;
    const bool canary_rollout = rollout.canary_percent > 0 && !old.empty() && want > 0;
    const int32_t n_canary = canary_rollout ? CanaryCount(want, rollout.canary_percent) : 0;
    CanaryState canary = d.canary;
    bool canary_phase = false;
    if (canary_rollout) {
      if (canary.generation != d.generation) {
        // Unknown (a restarted controller): past the canary once more new replicas run than it has.
        canary = {.generation = d.generation,
                  .done = static_cast<int32_t>(fresh.size()) > n_canary};
      }
      if (!canary.done) {
        if (canary.ready_since_ms >= 0 && canary.failed.empty()) {
          for (const ReplicaRecord* r : rs) {
            if (r->phase != ReplicaPhase::kFailed || r->spec_generation < d.generation) continue;
            canary.failed = r->failure_reason.empty() ? std::string("failed") : r->failure_reason;
            break;
          }
        }
        if (fresh_not_ready == 0 && fresh_ready >= n_canary) {
          if (canary.ready_since_ms < 0) canary.ready_since_ms = now_ms;
          if (canary.failed.empty() &&
              now_ms - canary.ready_since_ms >= rollout.canary_hold_s * 1000) {
            canary.done = true;
          }
        } else if (canary.failed.empty()) {
          canary.ready_since_ms = -1;
        }
      }
      canary_phase = !canary.done;
      plan.canary.emplace_back(d.name, canary);
    }

    if (canary_phase) {
      // Keep the old replicas (up to `want`) and run n_canary new ones beside them; new ones also
      // stand in for old ones that are missing, so capacity never drops below `want`.
      const int32_t kept_old = std::min<int32_t>(static_cast<int32_t>(old.size()), want);
      const int32_t fresh_target = std::max(n_canary, want - kept_old);
      std::sort(old.begin(), old.end(), DrainFirst);
      const int32_t old_total = static_cast<int32_t>(old.size());
      for (int32_t i = kept_old; i < old_total; ++i) {
        terminate(old[static_cast<size_t>(i)], absl::StrCat("scale down ", total, " -> ", want));
      }
      old.resize(static_cast<size_t>(kept_old));
      std::vector<const ReplicaRecord*> fresh_sorted = fresh;
      std::sort(fresh_sorted.begin(), fresh_sorted.end(), DrainFirst);
      for (size_t i = static_cast<size_t>(fresh_target); i < fresh_sorted.size(); ++i) {
        if (IsReady(*fresh_sorted[i])) fresh_ready--;
        terminate(fresh_sorted[i], absl::StrCat("scale down ", total, " -> ", want));
      }
      to_provision = std::max<int32_t>(0, fresh_target - static_cast<int32_t>(fresh.size()));
    } else if (total < want) {
      to_provision = want - total;
    } else if (total > want) {
      // During a rollout one surge replica may exist while it is not ready yet.
      const int32_t allowed = want + (!old.empty() && fresh_not_ready > 0 && want > 0 ? 1 : 0);
      int32_t excess = total - allowed;
      // After a canary every old replica is still there: they go as the rolling update's drains.
      const bool rolling =
          !old.empty() && want > 0 && (total <= want + 1 || (canary_rollout && canary.done));
      std::sort(old.begin(), old.end(), RollFirst);
      std::vector<const ReplicaRecord*> fresh_sorted = fresh;
      std::sort(fresh_sorted.begin(), fresh_sorted.end(), DrainFirst);
      size_t oi = 0, fi = 0;
      while (excess > 0) {
        if (oi < old.size()) {
          terminate(old[oi++], rolling ? std::string("rolling update")
                                       : absl::StrCat("scale down ", total, " -> ", want));
        } else if (fi < fresh_sorted.size()) {
          const ReplicaRecord* r = fresh_sorted[fi++];
          if (!IsReady(*r)) fresh_not_ready--;
          terminate(r, absl::StrCat("scale down ", total, " -> ", want));
        } else {
          break;
        }
        --excess;
      }
      old.erase(old.begin(), old.begin() + static_cast<std::ptrdiff_t>(oi));
      total = allowed < total ? allowed : total;
    }
    // Surge the next new replica once every new one is ready.
    if (!canary_phase && to_provision == 0 && !old.empty() && fresh_not_ready == 0 && want > 0 &&
        total <= want) {
      to_provision = 1;
    }

    if (to_provision > 0) {
      PlacementRequest req;
      req.accelerator = d.spec.accelerator;
      req.constraints = d.spec.placement;
      req.min_replicas = d.spec.replicas.min;
      for (const ReplicaRecord* r : rs) {
        if (IsLive(r->phase)) req.existing.push_back(r->provider);
      }
      req.count = to_provision;
      PlacementDecision decision = Place(req, views, options.weights);
      for (const Placement& p : decision.placements) {
        plan.provision.push_back({.deployment = d.name,
                                  .replica = new_id(d.name),
                                  .provider = p.provider,
                                  .region = p.region,
                                  .generation = d.generation});
        if (ProviderView* v = view_of(p.provider)) {
          v->free_slots -= std::max<int32_t>(1, d.spec.accelerator.count);
        }
      }
      if (decision.unplaced > 0) {
        status = absl::StrCat("unplaced ", decision.unplaced, ": ", decision.reason);
      }
    }
    if (canary_phase) {
      const std::string unplaced = std::move(status);
      const std::string counts =
          absl::StrCat(std::min(fresh_ready, n_canary), "/", n_canary, " ready");
      if (!canary.failed.empty()) {
        status = absl::StrCat(kCanaryStatusPrefix, " failed: ", canary.failed, "; rollout paused (",
                              counts, ", ", old.size(), " old)");
      } else if (canary.ready_since_ms >= 0) {
        status = absl::StrCat(kCanaryStatusPrefix, ": ", counts, " (", rollout.canary_percent,
                              "% of traffic), holding ", rollout.canary_hold_s, " s; ", old.size(),
                              " old");
      } else {
        status = absl::StrCat(kCanaryStatusPrefix, ": ", counts, " (", rollout.canary_percent,
                              "% of traffic); ", old.size(), " old");
      }
      if (!unplaced.empty()) absl::StrAppend(&status, "; ", unplaced);
    }
    if (status.empty()) {
      int32_t ready = 0;
      for (const ReplicaRecord* r : rs) ready += IsReady(*r) ? 1 : 0;
      status = absl::StrCat(ready, "/", want, " ready");
      if (!old.empty()) {
        status += absl::StrCat("; rolling update: ", fresh_ready, " new ready, ", old.size(),
                               " old left");
      }
    }
    plan.status.emplace_back(d.name, std::move(status));
  }
  return plan;
}

}  // namespace weft::control
