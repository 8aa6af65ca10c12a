// SPDX-License-Identifier: Apache-2.0
// HashRing: a consistent-hashing ring (Karger et al. 1997) with virtual nodes: each replica owns
// round(virtual_nodes x weight) points placed by hashing its id, so adding or removing one replica
// moves only the keys on its arcs. Immutable after construction; safe from any thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "gateway/routing/balancer.h"

namespace weft::gateway {

class HashRing {
 public:
  HashRing(std::span<const ReplicaView> replicas, int virtual_nodes);

  // Identifies the ring's inputs (ids and weights in order, virtual_nodes): a cached ring is
  // valid for a replica span with the same fingerprint.
  static uint64_t Fingerprint(std::span<const ReplicaView> replicas, int virtual_nodes);
  uint64_t fingerprint() const { return fingerprint_; }

  // Visits replica indices in ring order, clockwise from `key`'s position, each index once, until
  // `accept(index)` returns true; returns that index, or nullopt if no index was accepted.
  template <typename Accept>
  std::optional<size_t> Walk(uint64_t key, Accept&& accept) const;

  size_t size() const { return points_.size(); }  // points on the ring

 private:
  std::vector<std::pair<uint64_t, uint32_t>> points_;  // (position, replica index), sorted
  size_t replicas_ = 0;
  uint64_t fingerprint_ = 0;
};

template <typename Accept>
std::optional<size_t> HashRing::Walk(uint64_t key, Accept&& accept) const {
  if (points_.empty()) return std::nullopt;
  size_t start = static_cast<size_t>(
      std::lower_bound(points_.begin(), points_.end(), std::make_pair(key, uint32_t{0})) -
      points_.begin());
  std::vector<bool> seen(replicas_, false);
  size_t left = replicas_;
  for (size_t step = 0; step < points_.size() && left > 0; ++step) {
    uint32_t index = points_[(start + step) % points_.size()].second;
    if (seen[index]) continue;
    seen[index] = true;
    --left;
    if (accept(static_cast<size_t>(index))) return index;
  }
  return std::nullopt;
}

}  // namespace weft::gateway
