// SPDX-License-Identifier: Apache-2.0
// FakeProvider: an in-memory Provider for tests and the simulator. Replicas exist only as records:
// each becomes ready (or, with a seeded failure rate, failed) `provision_delay_ms` after Provision
// on the given clock, and is gone `terminate_delay_ms` after Terminate. It can fail one replica or
// everything at once (a provider outage). Thread-safe; never blocks; owns no threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "control/providers/provider.h"

namespace weft::control {

struct FakeProviderOptions {
  std::string accelerator = "cpu";  // the one accelerator kind offered
  int slots = 4;                    // of that kind
  double usd_per_hour = 1.0;        // per slot
  std::string region = "fake-1";
  int64_t provision_delay_ms = 0;  // kStarting -> kReady (or kFailed)
  int64_t terminate_delay_ms = 0;  // kDraining -> gone; 0 = gone at once
  double failure_rate = 0;         // probability in [0, 1] that a provisioned replica fails
  uint64_t seed = 1;               // of the failure draws, taken in Provision order
  // The clock, ms since the Unix epoch; empty = the system clock.
  std::function<int64_t()> now_ms;
  // The endpoint of a new replica; empty = "http://fake.invalid:<10000 + n>".
  std::function<std::string(const ReplicaSpec&)> endpoint;
};

class FakeProvider final : public Provider {
 public:
  explicit FakeProvider(FakeProviderOptions options);

  absl::StatusOr<ProviderCapacity> Capacity() override;
  absl::StatusOr<ReplicaStatus> Provision(const ReplicaSpec& spec) override;
  absl::Status Terminate(const ReplicaId& id) override;
  absl::StatusOr<std::vector<ReplicaStatus>> List() override;
  ProviderHealth Health() override;

  // Fails one replica now (as if its process died). NotFound for an unknown id.
  absl::Status FailReplica(const ReplicaId& id, const std::string& reason);
  // A provider outage: while on, every call returns Unavailable and Health is degraded; turning it
  // on fails every replica not already failed or draining, with `reason`.
  void SetOutage(bool on, const std::string& reason = "provider outage");

  int64_t provisions() const;  // Provision calls that created a replica, over the lifetime

 private:
  struct Replica {
    ReplicaSpec spec;
    ReplicaStatus status;
    int64_t settle_ms = 0;  // when kStarting turns into kReady/kFailed, or kDraining into gone
    bool will_fail = false;
  };
  int64_t Now() const;
  void AdvanceLocked(int64_t now);  // phases due by `now`
  int UsedSlotsLocked() const;
  absl::Status OutageLocked() const;

  const FakeProviderOptions options_;
  mutable std::mutex mu_;
  std::map<ReplicaId, Replica> replicas_;
  std::mt19937_64 rng_;
  int64_t created_ = 0;
  bool outage_ = false;
  std::string outage_reason_;
};

}  // namespace weft::control
