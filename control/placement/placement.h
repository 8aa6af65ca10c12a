// SPDX-License-Identifier: Apache-2.0
// Placement: which provider takes each new replica of a deployment. A pure policy over plain
// values (no I/O, no clock, deterministic for equal inputs); the reconciler calls it while
// planning. Safe from any thread.
//
// Filters: accelerator kind offered, provider and region allowed, enough free slots for
// accelerator.count, not degraded (degraded providers only when no healthy one fits). Order:
// first the spread rule (a provider the deployment does not use yet while fewer than
// max(spread_min_providers, min >= 2 ? 2 : 1) providers are used), then a score of price,
// measured reliability and balance, then the name.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "control/deployments/deployment_spec.h"

namespace weft::control {

// What placement knows of one provider at planning time.
struct ProviderView {
  std::string name;                       // unique
  std::string kind;                       // "local", "hosts", "kubernetes", "fake" (informational)
  std::vector<std::string> regions;       // regions it can place in; empty = unknown
  std::vector<std::string> accelerators;  // accelerator kinds offered ("cpu", "nvidia-h100")
  int32_t free_slots = 0;                 // free accelerator devices (slots for cpu)
  double usd_per_hour = 0;                // price of one slot-hour
  double reliability = 1;                 // measured, in [0, 1]: share of replicas that lived
  bool degraded = false;                  // failing lately: avoided unless nothing else fits
};

struct PlacementRequest {
  AcceleratorSpec accelerator;  // a replica needs accelerator.count free slots of this kind
  PlacementSpec constraints;
  int32_t min_replicas = 1;           // the deployment's replicas.min (spread rule at >= 2)
  std::vector<std::string> existing;  // provider of each live replica it already has
  int32_t count = 1;                  // new replicas to place
};

struct PlacementWeights {
  double price = 1;        // x price / highest candidate price, in [0, 1]
  double reliability = 2;  // x (1 - reliability)
  double balance = 0.5;    // x replicas already on the provider / replicas after this one
};

struct Placement {
  std::string provider;
  std::string region;  // first allowed region the provider lists; "" when it lists none
};

// An expected outcome, not a failure: as many replicas as fit, and why the rest did not.
struct PlacementDecision {
  std::vector<Placement> placements;  // one per placed replica, in placement order
  int32_t unplaced = 0;               // count - placements.size()
  // "" when all were placed; else per provider why it could not take one more, e.g.
  // "no provider can take replica 3 of 4: a: accelerator nvidia-h100 not offered; b: ...".
  std::string reason;
  bool used_degraded = false;  // some replica went to a degraded provider
};

PlacementDecision Place(const PlacementRequest& request, std::span<const ProviderView> providers,
                        const PlacementWeights& weights = {});

// The provider count placement aims for: max(spread_min_providers, min_replicas >= 2 ? 2 : 1).
int32_t SpreadTarget(const PlacementRequest& request);

// Why `provider` cannot take a replica of `request` right now ("" when it can, degraded or not).
std::string Unfit(const PlacementRequest& request, const ProviderView& provider);

}  // namespace weft::control
