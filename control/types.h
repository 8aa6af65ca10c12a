// SPDX-License-Identifier: Apache-2.0
// Plain types shared across the control plane's folders (store, providers, reconciler, placement,
// autoscaler). Values only; no behaviour.
#pragma once

#include <string>
#include <string_view>

namespace weft::control {

using ReplicaId = std::string;

// The life of a replica: pending (placed, not provisioned) -> starting (provisioned, loading) ->
// ready (serving) -> draining (no new requests) -> gone; failed when it died or never came up.
enum class ReplicaPhase { kPending, kStarting, kReady, kDraining, kGone, kFailed };

inline std::string_view ReplicaPhaseName(ReplicaPhase p) {
  switch (p) {
    case ReplicaPhase::kPending: return "pending";
    case ReplicaPhase::kStarting: return "starting";
    case ReplicaPhase::kReady: return "ready";
    case ReplicaPhase::kDraining: return "draining";
    case ReplicaPhase::kGone: return "gone";
    case ReplicaPhase::kFailed: return "failed";
  }
  return "unknown";
}

}  // namespace weft::control
