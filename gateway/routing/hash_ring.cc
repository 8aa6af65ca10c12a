// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/hash_ring.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "gateway/routing/prefix_keys.h"

namespace weft::gateway {
namespace {

int PointsFor(double weight, int virtual_nodes) {
  double n = std::round(std::max(weight, 0.0) * virtual_nodes);
  return static_cast<int>(std::clamp(n, 1.0, 100000.0));
}

}  // namespace

uint64_t HashRing::Fingerprint(std::span<const ReplicaView> replicas, int virtual_nodes) {
  uint64_t h = Hash64("ring", static_cast<uint64_t>(virtual_nodes));
  for (const ReplicaView& r : replicas) {
    uint64_t w = 0;
    static_assert(sizeof(w) == sizeof(r.weight));
    std::memcpy(&w, &r.weight, sizeof(w));
    h = Hash64(r.id, h ^ w);
  }
  return h;
}

HashRing::HashRing(std::span<const ReplicaView> replicas, int virtual_nodes)
    : replicas_(replicas.size()), fingerprint_(Fingerprint(replicas, virtual_nodes)) {
  for (size_t i = 0; i < replicas.size(); ++i) {
    int n = PointsFor(replicas[i].weight, virtual_nodes);
    // Points depend on the id only (not the index), so a replica keeps its arcs when others
    // come and go.
    uint64_t base = Hash64(replicas[i].id, 0x72696e67);
    for (int v = 0; v < n; ++v) {
      points_.emplace_back(
          Hash64(std::string_view(reinterpret_cast<const char*>(&v), sizeof(v)), base),
          static_cast<uint32_t>(i));
    }
  }
  std::sort(points_.begin(), points_.end());
}

}  // namespace weft::gateway
