// SPDX-License-Identifier: Apache-2.0
#include "control/placement/placement.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace weft::control {
namespace {

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string RegionFor(const PlacementRequest& request, const ProviderView& p) {
  for (const std::string& r : p.regions) {
    if (request.constraints.regions.empty() || Contains(request.constraints.regions, r)) return r;
  }
  return "";
}

}  // namespace

int32_t SpreadTarget(const PlacementRequest& request) {
  return std::max(request.constraints.spread_min_providers, request.min_replicas >= 2 ? 2 : 1);
}

std::string Unfit(const PlacementRequest& request, const ProviderView& p) {
  if (!Contains(p.accelerators, request.accelerator.kind)) {
    return absl::StrCat("accelerator ", request.accelerator.kind, " not offered");
  }
  if (!request.constraints.providers.empty() && !Contains(request.constraints.providers, p.name)) {
    return "not in placement.providers";
  }
  if (!request.constraints.regions.empty() && RegionFor(request, p).empty()) {
    return absl::StrCat("no region in placement.regions (has: ",
                        p.regions.empty() ? "none listed" : absl::StrJoin(p.regions, ", "), ")");
  }
  if (p.free_slots < request.accelerator.count) {
    return absl::StrCat(p.free_slots, " free slots, needs ", request.accelerator.count);
  }
  return "";
}

PlacementDecision Place(const PlacementRequest& request, std::span<const ProviderView> providers,
                        const PlacementWeights& weights) {
  PlacementDecision out;
  // Working copies: free slots shrink as replicas are placed.
  std::vector<ProviderView> views(providers.begin(), providers.end());
  std::map<std::string, int32_t> on;  // provider -> replicas of this deployment there
  for (const std::string& p : request.existing) ++on[p];
  int32_t total = static_cast<int32_t>(request.existing.size());
  const int32_t target = SpreadTarget(request);

  for (int32_t i = 0; i < request.count; ++i) {
    std::vector<size_t> fit;
    bool any_healthy = false;
    for (size_t k = 0; k < views.size(); ++k) {
      if (!Unfit(request, views[k]).empty()) continue;
      fit.push_back(k);
      any_healthy = any_healthy || !views[k].degraded;
    }
    if (any_healthy) {
      std::erase_if(fit, [&](size_t k) { return views[k].degraded; });
    }
    if (fit.empty()) {
      std::vector<std::string> why;
      for (const ProviderView& p : views)
        why.push_back(absl::StrCat(p.name, ": ", Unfit(request, p)));
      out.unplaced = request.count - i;
      out.reason = absl::StrCat("no provider can take replica ", i + 1, " of ", request.count, ": ",
                                views.empty() ? "no providers" : absl::StrJoin(why, "; "));
      break;
    }
    int32_t distinct = 0;
    for (const auto& [name, n] : on) distinct += n > 0 ? 1 : 0;
    const bool spread_needed = distinct < target;
    double max_price = 0;
    for (size_t k : fit) max_price = std::max(max_price, views[k].usd_per_hour);

    // Lowest (spread penalty, score, name) wins: spread first, then cost of price, unreliability
    // and concentration, then the name for determinism.
    auto key = [&](size_t k) {
      const ProviderView& p = views[k];
      int32_t here = on.count(p.name) ? on.at(p.name) : 0;
      int spread_penalty = spread_needed && here > 0 ? 1 : 0;
      double reliability = std::clamp(p.reliability, 0.0, 1.0);
      double score = (max_price > 0 ? weights.price * p.usd_per_hour / max_price : 0) +
                     weights.reliability * (1 - reliability) +
                     weights.balance * static_cast<double>(here) / (total + 1);
      return std::make_tuple(spread_penalty, score, p.name);
    };
    size_t best = fit[0];
    for (size_t k : fit) {
      if (key(k) < key(best)) best = k;
    }
    ProviderView& chosen = views[best];
    out.placements.push_back({chosen.name, RegionFor(request, chosen)});
    out.used_degraded = out.used_degraded || chosen.degraded;
    chosen.free_slots -= request.accelerator.count;
    ++on[chosen.name];
    ++total;
  }
  return out;
}

}  // namespace weft::control
