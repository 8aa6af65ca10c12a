// SPDX-License-Identifier: Apache-2.0
// The built-in balancers. Each is a PolicyBalancer: the cross-cutting rules (SelectCandidates)
// narrow the replicas first, then the policy chooses among the candidates. All are thread-safe;
// the only shared state is RoundRobin's counter and Prefix's cache of hash rings.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "gateway/routing/balancer.h"
#include "gateway/routing/hash_ring.h"

namespace weft::gateway {

using CandidateList = absl::InlinedVector<size_t, 16>;  // indices into the replica span

// The rules every policy applies before choosing, in order:
//  1. available: ready, healthy, not ejected, not in request.exclude;
//  2. not saturated (max_outstanding); none left -> no candidates (the request is shed);
//  3. provider/region preference: the best non-empty tier of (provider and region preferred),
//     (one of them preferred), (neither); a tier that is all saturated or down is skipped, which is
//     the spill-over to the next;
//  4. adapter affinity (when on and the request names an adapter): replicas whose load report lists
//     the adapter, unless the least loaded of them carries more than twice the mean load plus one
//     (then every candidate, so that the adapter spreads).
void SelectCandidates(const RequestView& request, std::span<const ReplicaView> replicas,
                      bool adapter_affinity, CandidateList* out);

// The load a policy compares: tokens in flight (the larger of the gateway's own count and the
// replica's last report, which includes other gateways' traffic) per unit of weight.
double TokenLoad(const ReplicaView& replica);

class PolicyBalancer : public Balancer {
 public:
  explicit PolicyBalancer(bool adapter_affinity) : adapter_affinity_(adapter_affinity) {}
  std::optional<size_t> PickIndex(const RequestView& request,
                                  std::span<const ReplicaView> replicas) final;

 protected:
  // Chooses among `candidates` (non-empty, indices into `replicas`); returns a replica index.
  virtual size_t Choose(const RequestView& request, std::span<const ReplicaView> replicas,
                        std::span<const size_t> candidates) = 0;

 private:
  bool adapter_affinity_;
};

// Least outstanding tokens (the default): the candidate with the lowest TokenLoad after adding
// this request; ties go to fewer requests in flight, then to a random one.
class LeastTokensBalancer : public PolicyBalancer {
 public:
  explicit LeastTokensBalancer(bool adapter_affinity = true) : PolicyBalancer(adapter_affinity) {}
  std::string_view name() const override { return "least_tokens"; }
  // The least-tokens choice among `candidates` (shared with policies that fall back to it).
  static size_t ChooseLeast(const RequestView& request, std::span<const ReplicaView> replicas,
                            std::span<const size_t> candidates);

 protected:
  size_t Choose(const RequestView& request, std::span<const ReplicaView> replicas,
                std::span<const size_t> candidates) override;
};

// Prefix affinity: consistent hashing (a ring with virtual nodes per replica) of the request's
// prefix key at depth min(n, affinity_blocks), with bounded load (Mirrokni, Thorup, Zadimoghaddam,
// "Consistent Hashing with Bounded Loads", 2018): walking the ring clockwise, a candidate whose
// requests in flight would exceed ceil((1 + epsilon) x weighted average) is skipped, so a hot
// prefix spills to the next replicas on the ring. Requests without prefix keys: least tokens.
class PrefixBalancer : public PolicyBalancer {
 public:
  struct Options {
    bool adapter_affinity = true;
    size_t affinity_blocks = 4;
    int virtual_nodes = 100;
    double load_epsilon = 0.25;
  };
  explicit PrefixBalancer(Options options);
  std::string_view name() const override { return "prefix"; }

 protected:
  size_t Choose(const RequestView& request, std::span<const ReplicaView> replicas,
                std::span<const size_t> candidates) override;

 private:
  // The ring over all of `replicas` (ejected ones included, so that they keep their arcs), cached
  // per deployment until its replica ids or weights change.
  std::shared_ptr<const HashRing> Ring(std::string_view deployment,
                                       std::span<const ReplicaView> replicas);

  Options options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const HashRing>, std::less<>> rings_;  // guarded by mu_
};

// Latency-aware: cost = expected latency x (requests in flight + 1), the "peak EWMA" cost of
// Finagle's load balancer, with expected latency = EWMA TTFT + output_tokens x EWMA inter-token
// time. A replica without a sample, or whose last sample is older than stale_after_s, is costed
// with its EWMA blended toward the candidates' mean (weight exp(-(age - stale_after) / decay_s)),
// so a replica that was slow once is tried again. No samples at all: least tokens.
class LatencyBalancer : public PolicyBalancer {
 public:
  struct Options {
    bool adapter_affinity = true;
    double stale_after_s = 10;
    double decay_s = 30;
    int64_t output_tokens = 128;
  };
  explicit LatencyBalancer(Options options)
      : PolicyBalancer(options.adapter_affinity), options_(options) {}
  std::string_view name() const override { return "latency"; }
  // The latency (ms) the policy expects from `replica` before the in-flight factor; `mean_ms` is
  // used for replicas without fresh samples.
  double ExpectedLatencyMs(const ReplicaView& replica, double now_s, double mean_ms) const;

 protected:
  size_t Choose(const RequestView& request, std::span<const ReplicaView> replicas,
                std::span<const size_t> candidates) override;

 private:
  Options options_;
};

// Power of two choices (Mitzenmacher 2001): two distinct candidates drawn from request.random, the
// one with the lower TokenLoad wins.
class P2cBalancer : public PolicyBalancer {
 public:
  explicit P2cBalancer(bool adapter_affinity = true) : PolicyBalancer(adapter_affinity) {}
  std::string_view name() const override { return "p2c"; }

 protected:
  size_t Choose(const RequestView& request, std::span<const ReplicaView> replicas,
                std::span<const size_t> candidates) override;
};

// Round robin over the candidates (a shared counter; load-blind, the baseline).
class RoundRobinBalancer : public PolicyBalancer {
 public:
  explicit RoundRobinBalancer(bool adapter_affinity = true) : PolicyBalancer(adapter_affinity) {}
  std::string_view name() const override { return "round_robin"; }

 protected:
  size_t Choose(const RequestView& request, std::span<const ReplicaView> replicas,
                std::span<const size_t> candidates) override;

 private:
  std::atomic<uint64_t> next_{0};
};

}  // namespace weft::gateway
