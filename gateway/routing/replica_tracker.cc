// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/replica_tracker.h"

#include <algorithm>
#include <utility>

namespace weft::gateway {

ReplicaTrackerOptions ReplicaTrackerOptionsFrom(const GatewayConfig& config) {
  ReplicaTrackerOptions o;
  o.max_outstanding = config.limits.max_outstanding_per_replica;
  o.ewma_alpha = config.balancer.latency_ewma_alpha;
  o.outlier = config.outlier;
  o.unhealthy_threshold = config.health.unhealthy_threshold;
  o.healthy_threshold = config.health.healthy_threshold;
  return o;
}

ReplicaTracker::ReplicaTracker(ReplicaTrackerOptions options) : options_(std::move(options)) {}

ReplicaTracker::State* ReplicaTracker::Find(std::string_view replica) {
  auto it = replicas_.find(replica);
  return it == replicas_.end() ? nullptr : &it->second;
}

void ReplicaTracker::SetRoutes(const RouteTable& table) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, State, std::less<>> next;
  std::map<std::string, std::unique_ptr<OutlierDetector>, std::less<>> detectors;
  for (const DeploymentConfig& d : table.deployments()) {
    std::vector<std::string> ids;
    for (const ReplicaConfig& r : d.replicas) {
      ids.push_back(r.id);
      auto it = replicas_.find(r.id);
      if (it != replicas_.end() && it->second.deployment == d.name) {
        next.emplace(r.id, std::move(it->second));
        continue;
      }
      State s;
      s.deployment = d.name;
      s.ttft = Ewma(options_.ewma_alpha);
      s.itl = Ewma(options_.ewma_alpha);
      s.breaker = std::make_unique<CircuitBreaker>(
          CircuitBreakerOptions{options_.max_outstanding, options_.outlier.breaker_failures,
                                options_.outlier.breaker_open_s});
      next.emplace(r.id, std::move(s));
    }
    auto dit = detectors_.find(d.name);
    std::unique_ptr<OutlierDetector> detector =
        dit != detectors_.end() ? std::move(dit->second)
                                : std::make_unique<OutlierDetector>(options_.outlier);
    detector->SetReplicas(ids);
    detectors.emplace(d.name, std::move(detector));
  }
  for (const auto& [name, detector] : detectors_) {
    if (detector) retired_ejections_ += detector->ejections_total();
  }
  replicas_ = std::move(next);
  detectors_ = std::move(detectors);
}

ReplicaTracker::Snapshot ReplicaTracker::Views(const DeploymentConfig& deployment,
                                               double now_s) const {
  Snapshot snap;
  snap.views_.resize(deployment.replicas.size());
  snap.loads_.resize(deployment.replicas.size());
  std::lock_guard<std::mutex> lock(mu_);
  auto dit = detectors_.find(deployment.name);
  const OutlierDetector* detector = dit == detectors_.end() ? nullptr : dit->second.get();
  for (size_t i = 0; i < deployment.replicas.size(); ++i) {
    const ReplicaConfig& r = deployment.replicas[i];
    ReplicaView& v = snap.views_[i];
    v.id = r.id;
    v.provider = r.provider;
    v.region = r.region;
    v.state = r.state;
    v.weight = r.weight;
    v.max_outstanding = options_.max_outstanding;
    auto it = replicas_.find(r.id);
    if (it == replicas_.end()) continue;  // a table newer than SetRoutes: an idle replica
    const State& s = it->second;
    v.healthy = s.healthy;
    v.ejected =
        (detector != nullptr && detector->IsEjected(r.id, now_s)) ||
        (s.breaker->state(now_s) != CircuitBreaker::State::kClosed && !s.breaker->Allows(now_s));
    v.outstanding_requests = s.outstanding;
    v.outstanding_tokens = s.tokens;
    if (s.load) {
      snap.loads_[i] = s.load;
      FillLoadReport(*s.load, &v);
    }
    v.ewma_ttft_ms = s.ttft.value();
    v.ewma_itl_ms = s.itl.value();
    v.latency_updated_s = std::max(s.ttft.updated_s(), s.itl.updated_s());
  }
  return snap;
}

bool ReplicaTracker::Begin(std::string_view replica, int64_t tokens, double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  State* s = Find(replica);
  if (s == nullptr) return false;
  if (!s->breaker->TryAcquire(now_s)) return false;
  ++s->outstanding;
  s->tokens += tokens;
  return true;
}

void ReplicaTracker::FirstToken(std::string_view replica, double ttft_ms, double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (State* s = Find(replica)) s->ttft.Add(ttft_ms, now_s);
}

void ReplicaTracker::InterToken(std::string_view replica, double itl_ms, double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (State* s = Find(replica)) s->itl.Add(itl_ms, now_s);
}

void ReplicaTracker::End(std::string_view replica, int64_t tokens, Outcome outcome, double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  State* s = Find(replica);
  if (s == nullptr) return;
  s->outstanding = std::max(0, s->outstanding - 1);
  s->tokens = std::max<int64_t>(0, s->tokens - tokens);
  auto dit = detectors_.find(s->deployment);
  OutlierDetector* detector = dit == detectors_.end() ? nullptr : dit->second.get();
  switch (outcome) {
    case Outcome::kSuccess:
      s->breaker->Release(true, now_s);
      if (detector) detector->RecordSuccess(replica, now_s);
      break;
    case Outcome::kFailure:
      s->breaker->Release(false, now_s);
      if (detector) detector->RecordFailure(replica, now_s);
      break;
    case Outcome::kCancelled:
      s->breaker->Cancel();
      break;
  }
}

void ReplicaTracker::OnLoadReport(std::string_view replica,
                                  const absl::StatusOr<api::LoadReport>& report, double) {
  std::lock_guard<std::mutex> lock(mu_);
  State* s = Find(replica);
  if (s == nullptr) return;
  if (report.ok() && report->ready) {
    s->load = std::make_shared<const api::LoadReport>(*report);
    s->poll_failures = 0;
    if (++s->poll_successes >= options_.healthy_threshold) s->healthy = true;
  } else {
    if (report.ok()) s->load = std::make_shared<const api::LoadReport>(*report);
    s->poll_successes = 0;
    if (++s->poll_failures >= options_.unhealthy_threshold) s->healthy = false;
  }
}

int64_t ReplicaTracker::ejections_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = retired_ejections_;
  for (const auto& [name, detector] : detectors_) n += detector->ejections_total();
  return n;
}

}  // namespace weft::gateway
