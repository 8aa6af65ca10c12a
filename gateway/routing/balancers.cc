// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/balancers.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace weft::gateway {
namespace {

bool Contains(std::span<const std::string> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Load per unit of weight, in requests.
double RequestLoad(const ReplicaView& r) { return r.outstanding_requests / r.weight; }

}  // namespace

void FillLoadReport(const api::LoadReport& report, ReplicaView* view) {
  view->has_load = true;
  view->waiting = report.waiting;
  view->running = report.running;
  view->tokens_in_flight = report.tokens_in_flight;
  view->kv_blocks_free = report.kv_blocks_free;
  view->kv_blocks_total = report.kv_blocks_total;
  view->adapters = report.adapters;
  view->prefix_digest = report.prefix_digest;
}

bool Unavailable(const ReplicaView& r) {
  return r.state != ReplicaState::kReady || !r.healthy || r.ejected || !(r.weight > 0);
}

bool Saturated(const ReplicaView& r) {
  return r.max_outstanding > 0 && r.outstanding_requests >= r.max_outstanding;
}

double TokenLoad(const ReplicaView& r) {
  int64_t tokens = r.outstanding_tokens;
  if (r.has_load) tokens = std::max(tokens, r.tokens_in_flight);
  return static_cast<double>(tokens) / r.weight;
}

void SelectCandidates(const RequestView& request, std::span<const ReplicaView> replicas,
                      bool adapter_affinity, CandidateList* out) {
  out->clear();
  for (size_t i = 0; i < replicas.size(); ++i) {
    const ReplicaView& r = replicas[i];
    if (Unavailable(r) || Saturated(r)) continue;
    if (std::find(request.exclude.begin(), request.exclude.end(), r.id) != request.exclude.end()) {
      continue;
    }
    out->push_back(i);
  }
  if (out->empty()) return;

  // Preference tiers; the unavailable and saturated are already gone, so a preferred tier that has
  // none left spills over to the next.
  if (!request.preferred_providers.empty() || !request.preferred_regions.empty()) {
    auto tier = [&](size_t i) {
      const ReplicaView& r = replicas[i];
      bool provider =
          request.preferred_providers.empty() || Contains(request.preferred_providers, r.provider);
      bool region =
          request.preferred_regions.empty() || Contains(request.preferred_regions, r.region);
      return (provider ? 0 : 1) + (region ? 0 : 1);
    };
    int best = 2;
    for (size_t i : *out) best = std::min(best, tier(i));
    out->erase(std::remove_if(out->begin(), out->end(), [&](size_t i) { return tier(i) != best; }),
               out->end());
  }

  if (adapter_affinity && !request.adapter.empty()) {
    CandidateList holders;
    double mean = 0;
    double least_holder = 0;
    for (size_t i : *out) {
      mean += RequestLoad(replicas[i]);
      if (Contains(replicas[i].adapters, request.adapter)) {
        least_holder = holders.empty() ? RequestLoad(replicas[i])
                                       : std::min(least_holder, RequestLoad(replicas[i]));
        holders.push_back(i);
      }
    }
    mean /= static_cast<double>(out->size());
    // Bounded affinity: an overloaded holder set lets the adapter spread to another replica.
    if (!holders.empty() && least_holder <= 2 * mean + 1) *out = std::move(holders);
  }
}

std::optional<ReplicaId> Balancer::Pick(const RequestView& request,
                                        std::span<const ReplicaView> replicas) {
  std::optional<size_t> i = PickIndex(request, replicas);
  if (!i) return std::nullopt;
  return ReplicaId(replicas[*i].id);
}

std::optional<size_t> PolicyBalancer::PickIndex(const RequestView& request,
                                                std::span<const ReplicaView> replicas) {
  CandidateList candidates;
  SelectCandidates(request, replicas, adapter_affinity_, &candidates);
  if (candidates.empty()) return std::nullopt;
  if (candidates.size() == 1) return candidates[0];
  return Choose(request, replicas, candidates);
}

size_t LeastTokensBalancer::ChooseLeast(const RequestView& request,
                                        std::span<const ReplicaView> replicas,
                                        std::span<const size_t> candidates) {
  // Scan from a random offset so that exact ties do not always land on the same replica.
  size_t n = candidates.size();
  size_t offset = static_cast<size_t>(request.random % n);
  size_t best = candidates[offset];
  auto score = [&](size_t i) {
    return TokenLoad(replicas[i]) +
           static_cast<double>(std::max<int64_t>(request.estimated_tokens, 0)) / replicas[i].weight;
  };
  double best_score = score(best);
  for (size_t k = 1; k < n; ++k) {
    size_t i = candidates[(offset + k) % n];
    double s = score(i);
    if (s < best_score ||
        (s == best_score && RequestLoad(replicas[i]) < RequestLoad(replicas[best]))) {
      best = i;
      best_score = s;
    }
  }
  return best;
}

size_t LeastTokensBalancer::Choose(const RequestView& request,
                                   std::span<const ReplicaView> replicas,
                                   std::span<const size_t> candidates) {
  return ChooseLeast(request, replicas, candidates);
}

PrefixBalancer::PrefixBalancer(Options options)
    : PolicyBalancer(options.adapter_affinity), options_(options) {}

std::shared_ptr<const HashRing> PrefixBalancer::Ring(std::string_view deployment,
                                                     std::span<const ReplicaView> replicas) {
  uint64_t fingerprint = HashRing::Fingerprint(replicas, options_.virtual_nodes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = rings_.find(deployment);
    if (it != rings_.end() && it->second->fingerprint() == fingerprint) return it->second;
  }
  auto ring = std::make_shared<const HashRing>(replicas, options_.virtual_nodes);
  std::lock_guard<std::mutex> lock(mu_);
  rings_[std::string(deployment)] = ring;
  return ring;
}

size_t PrefixBalancer::Choose(const RequestView& request, std::span<const ReplicaView> replicas,
                              std::span<const size_t> candidates) {
  if (request.prefix_keys.empty()) {
    return LeastTokensBalancer::ChooseLeast(request, replicas, candidates);
  }
  size_t depth =
      std::min(request.prefix_keys.size(), std::max<size_t>(options_.affinity_blocks, 1));
  uint64_t key = request.prefix_keys[depth - 1];

  absl::InlinedVector<bool, 16> is_candidate(replicas.size(), false);
  double total = 0;
  double weights = 0;
  for (size_t i : candidates) {
    is_candidate[i] = true;
    total += replicas[i].outstanding_requests;
    weights += replicas[i].weight;
  }
  // Bounded load: a replica may hold at most ceil((1 + eps) x its weighted share of the requests in
  // flight, this one included). The capacities sum to more than the load, so one always accepts.
  auto accept = [&](size_t i) {
    if (!is_candidate[i]) return false;
    double cap =
        std::ceil((1 + options_.load_epsilon) * (total + 1) * replicas[i].weight / weights);
    return replicas[i].outstanding_requests + 1 <= cap;
  };
  std::optional<size_t> pick = Ring(request.deployment, replicas)->Walk(key, accept);
  if (pick) return *pick;
  return LeastTokensBalancer::ChooseLeast(request, replicas, candidates);
}

double LatencyBalancer::ExpectedLatencyMs(const ReplicaView& r, double now_s,
                                          double mean_ms) const {
  if (r.ewma_ttft_ms <= 0 && r.ewma_itl_ms <= 0) return mean_ms;
  double own = r.ewma_ttft_ms + static_cast<double>(options_.output_tokens) * r.ewma_itl_ms;
  double age = now_s - r.latency_updated_s;
  if (age <= options_.stale_after_s) return own;
  double w = std::exp(-(age - options_.stale_after_s) / options_.decay_s);
  return w * own + (1 - w) * mean_ms;
}

size_t LatencyBalancer::Choose(const RequestView& request, std::span<const ReplicaView> replicas,
                               std::span<const size_t> candidates) {
  // The mean of fresh samples (or of any samples, when none is fresh) stands in for replicas
  // without one.
  double fresh_sum = 0, any_sum = 0;
  int fresh = 0, any = 0;
  for (size_t i : candidates) {
    const ReplicaView& r = replicas[i];
    if (r.ewma_ttft_ms <= 0 && r.ewma_itl_ms <= 0) continue;
    double own = r.ewma_ttft_ms + static_cast<double>(options_.output_tokens) * r.ewma_itl_ms;
    any_sum += own;
    ++any;
    if (request.now_s - r.latency_updated_s <= options_.stale_after_s) {
      fresh_sum += own;
      ++fresh;
    }
  }
  if (any == 0) return LeastTokensBalancer::ChooseLeast(request, replicas, candidates);
  double mean = fresh > 0 ? fresh_sum / fresh : any_sum / any;

  size_t n = candidates.size();
  size_t offset = static_cast<size_t>(request.random % n);
  size_t best = 0;
  double best_cost = 0;
  for (size_t k = 0; k < n; ++k) {
    size_t i = candidates[(offset + k) % n];
    const ReplicaView& r = replicas[i];
    double cost =
        ExpectedLatencyMs(r, request.now_s, mean) * (r.outstanding_requests + 1) / r.weight;
    if (k == 0 || cost < best_cost ||
        (cost == best_cost && TokenLoad(r) < TokenLoad(replicas[best]))) {
      best = i;
      best_cost = cost;
    }
  }
  return best;
}

size_t P2cBalancer::Choose(const RequestView& request, std::span<const ReplicaView> replicas,
                           std::span<const size_t> candidates) {
  uint64_t n = candidates.size();
  uint64_t a = (request.random & 0xffffffffULL) % n;
  uint64_t b = (request.random >> 32) % (n - 1);
  if (b >= a) ++b;
  size_t x = candidates[a];
  size_t y = candidates[b];
  double lx = TokenLoad(replicas[x]);
  double ly = TokenLoad(replicas[y]);
  if (ly < lx || (ly == lx && RequestLoad(replicas[y]) < RequestLoad(replicas[x]))) return y;
  return x;
}

size_t RoundRobinBalancer::Choose(const RequestView&, std::span<const ReplicaView>,
                                  std::span<const size_t> candidates) {
  return candidates[next_.fetch_add(1, std::memory_order_relaxed) % candidates.size()];
}

absl::StatusOr<std::unique_ptr<Balancer>> MakeBalancer(const BalancerConfig& config) {
  switch (config.policy) {
    case BalancerPolicy::kLeastTokens:
      return std::unique_ptr<Balancer>(new LeastTokensBalancer(config.adapter_affinity));
    case BalancerPolicy::kPrefix: {
      if (config.prefix_virtual_nodes < 1 || !(config.prefix_load_epsilon >= 0) ||
          config.prefix_affinity_blocks < 1) {
        return absl::InvalidArgumentError(
            "balancer.prefix: virtual_nodes and affinity_blocks must be >= 1, load_epsilon >= 0");
      }
      PrefixBalancer::Options o;
      o.adapter_affinity = config.adapter_affinity;
      o.affinity_blocks = config.prefix_affinity_blocks;
      o.virtual_nodes = config.prefix_virtual_nodes;
      o.load_epsilon = config.prefix_load_epsilon;
      return std::unique_ptr<Balancer>(new PrefixBalancer(o));
    }
    case BalancerPolicy::kLatency: {
      if (!(config.latency_decay_s > 0) || !(config.latency_stale_after_s >= 0) ||
          config.latency_output_tokens < 0) {
        return absl::InvalidArgumentError(
            "balancer.latency: decay_s must be > 0, stale_after_s and output_tokens >= 0");
      }
      LatencyBalancer::Options o;
      o.adapter_affinity = config.adapter_affinity;
      o.stale_after_s = config.latency_stale_after_s;
      o.decay_s = config.latency_decay_s;
      o.output_tokens = config.latency_output_tokens;
      return std::unique_ptr<Balancer>(new LatencyBalancer(o));
    }
    case BalancerPolicy::kP2c:
      return std::unique_ptr<Balancer>(new P2cBalancer(config.adapter_affinity));
    case BalancerPolicy::kRoundRobin:
      return std::unique_ptr<Balancer>(new RoundRobinBalancer(config.adapter_affinity));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown balancer policy ", static_cast<int>(config.policy)));
}

}  // namespace weft::gateway
