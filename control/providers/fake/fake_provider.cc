// SPDX-License-Identifier: Apache-2.0
#include "control/providers/fake/fake_provider.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace weft::control {

FakeProvider::FakeProvider(FakeProviderOptions options)
    : options_(std::move(options)), rng_(options_.seed) {}

int64_t FakeProvider::Now() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void FakeProvider::AdvanceLocked(int64_t now) {
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    Replica& r = it->second;
    if (now >= r.settle_ms) {
      if (r.status.phase == ReplicaPhase::kDraining) {
        it = replicas_.erase(it);
        continue;
      }
      if (r.status.phase == ReplicaPhase::kStarting) {
        if (r.will_fail) {
          r.status.phase = ReplicaPhase::kFailed;
          r.status.failure_reason = "injected provisioning failure";
        } else {
          r.status.phase = ReplicaPhase::kReady;
        }
      }
    }
    ++it;
  }
}

int FakeProvider::UsedSlotsLocked() const {
  int used = 0;
  for (const auto& [id, r] : replicas_) used += std::max(1, r.spec.accelerator_count);
  return used;
}

absl::Status FakeProvider::OutageLocked() const {
  if (!outage_) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("fake provider: ", outage_reason_));
}

absl::StatusOr<ProviderCapacity> FakeProvider::Capacity() {
  std::lock_guard lock(mu_);
  if (absl::Status s = OutageLocked(); !s.ok()) return s;
  AdvanceLocked(Now());
  ProviderCapacity c;
  c.accelerators.push_back({options_.accelerator, options_.slots,
                            std::max(0, options_.slots - UsedSlotsLocked()),
                            options_.usd_per_hour});
  c.regions.push_back(options_.region);
  return c;
}

absl::StatusOr<ReplicaStatus> FakeProvider::Provision(const ReplicaSpec& spec) {
  if (spec.id.empty()) return absl::InvalidArgumentError("replica id: empty");
  if (spec.accelerator_count < 1) return absl::InvalidArgumentError("accelerator_count: < 1");
  std::lock_guard lock(mu_);
  if (absl::Status s = OutageLocked(); !s.ok()) return s;
  const int64_t now = Now();
  AdvanceLocked(now);
  if (auto it = replicas_.find(spec.id); it != replicas_.end()) return it->second.status;
  if (spec.accelerator != options_.accelerator) {
    return absl::ResourceExhaustedError(
        absl::StrCat("fake provider has no ", spec.accelerator, " slots"));
  }
  const int free = options_.slots - UsedSlotsLocked();
  if (spec.accelerator_count > free) {
    return absl::ResourceExhaustedError(absl::StrCat("fake provider: ", free, " free ",
                                                     options_.accelerator, " slots, replica needs ",
                                                     spec.accelerator_count));
  }
  Replica r;
  r.spec = spec;
  r.status.id = spec.id;
  r.status.deployment = spec.deployment;
  r.status.phase = ReplicaPhase::kStarting;
  r.status.endpoint = options_.endpoint ? options_.endpoint(spec)
                                        : absl::StrCat("http://fake.invalid:", 10000 + created_);
  r.status.started_ms = now;
  r.settle_ms = now + options_.provision_delay_ms;
  // Draw for every replica (not only when the rate is > 0) so a seed gives the same sequence.
  r.will_fail = std::uniform_real_distribution<double>(0, 1)(rng_) < options_.failure_rate;
  ++created_;
  auto [it, inserted] = replicas_.emplace(spec.id, std::move(r));
  AdvanceLocked(now);  // a zero delay settles at once
  // AdvanceLocked never erases a starting replica, so `it` is still valid.
  return it->second.status;
}

absl::Status FakeProvider::Terminate(const ReplicaId& id) {
  std::lock_guard lock(mu_);
  if (absl::Status s = OutageLocked(); !s.ok()) return s;
  const int64_t now = Now();
  AdvanceLocked(now);
  auto it = replicas_.find(id);
  if (it == replicas_.end() || it->second.status.phase == ReplicaPhase::kDraining) {
    return absl::OkStatus();
  }
  if (options_.terminate_delay_ms <= 0 || it->second.status.phase == ReplicaPhase::kFailed) {
    replicas_.erase(it);
    return absl::OkStatus();
  }
  it->second.status.phase = ReplicaPhase::kDraining;
  it->second.settle_ms = now + options_.terminate_delay_ms;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReplicaStatus>> FakeProvider::List() {
  std::lock_guard lock(mu_);
  if (absl::Status s = OutageLocked(); !s.ok()) return s;
  AdvanceLocked(Now());
  std::vector<ReplicaStatus> out;
  out.reserve(replicas_.size());
  for (const auto& [id, r] : replicas_) out.push_back(r.status);
  return out;
}

ProviderHealth FakeProvider::Health() {
  std::lock_guard lock(mu_);
  if (outage_) return {false, outage_reason_};
  return {};
}

absl::Status FakeProvider::FailReplica(const ReplicaId& id, const std::string& reason) {
  std::lock_guard lock(mu_);
  AdvanceLocked(Now());
  auto it = replicas_.find(id);
  if (it == replicas_.end()) return absl::NotFoundError(absl::StrCat("replica ", id));
  if (it->second.status.phase == ReplicaPhase::kDraining) return absl::OkStatus();
  it->second.status.phase = ReplicaPhase::kFailed;
  it->second.status.failure_reason = reason;
  return absl::OkStatus();
}

void FakeProvider::SetOutage(bool on, const std::string& reason) {
  std::lock_guard lock(mu_);
  if (on && !outage_) {
    AdvanceLocked(Now());
    for (auto& [id, r] : replicas_) {
      if (r.status.phase == ReplicaPhase::kFailed || r.status.phase == ReplicaPhase::kDraining) {
        continue;
      }
      r.status.phase = ReplicaPhase::kFailed;
      r.status.failure_reason = reason;
    }
  }
  outage_ = on;
  outage_reason_ = on ? reason : "";
}

int64_t FakeProvider::provisions() const {
  std::lock_guard lock(mu_);
  return created_;
}

}  // namespace weft::control
