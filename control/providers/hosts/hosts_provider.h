// SPDX-License-Identifier: Apache-2.0
// HostsProvider: a group of bare machines, each running `weft agent` (control/agent/), as one
// Provider. Provision asks the agents which already holds the id (idempotency survives a control
// restart), then places the replica on the reachable host with the most free slots of its kind;
// List merges every agent's list; an agent that cannot be reached has the replicas last seen on it
// reported kFailed ("host <url> unreachable: ...") so the reconciler replaces them, and their
// terminations are sent once it answers again. Capacity sums the reachable agents; Health is
// degraded only when none answers. Agents are called in parallel with a short deadline, so every
// method returns within about one timeout. Owned by the control plane; thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/providers/provider.h"
#include "nlohmann/json.hpp"

namespace weft::control {

struct HostsProviderOptions {
  std::vector<std::string> hosts;  // agent base URLs, "http://10.0.0.1:7071" (plain HTTP)
  std::string token;               // the agents' shared bearer token
  std::string region;              // reported by Capacity; "" = the regions the agents report
  double usd_per_hour = -1;        // per slot, reported by Capacity; < 0 = the agents' mean
  int timeout_ms = 1500;           // per agent call
  int64_t health_cache_ms = 3000;  // Health() reuses contacts this recent instead of probing
};

class HostsProvider final : public Provider {
 public:
  // InvalidArgument naming the field: no hosts, a host that is not an http:// URL, a duplicate
  // host, an empty token, timeout_ms < 1.
  static absl::StatusOr<std::unique_ptr<HostsProvider>> Create(HostsProviderOptions options);

  absl::StatusOr<ProviderCapacity> Capacity() override;
  absl::StatusOr<ReplicaStatus> Provision(const ReplicaSpec& spec) override;
  absl::Status Terminate(const ReplicaId& id) override;
  absl::StatusOr<std::vector<ReplicaStatus>> List() override;
  ProviderHealth Health() override;

  // The agent URL holding `id` as far as this provider knows ("" when unknown). For tests.
  std::string HostOf(const ReplicaId& id) const;

 private:
  struct Placed {
    size_t host = 0;
    ReplicaStatus status;  // as last seen
    uint64_t seq = 0;      // mutation counter when placed (see List)
  };
  struct HostState {
    std::string url;
    int64_t last_ok_ms = -1;    // steady clock
    int64_t last_fail_ms = -1;  // steady clock
    std::string last_error;
  };

  explicit HostsProvider(HostsProviderOptions options);
  // One agent call: the JSON answer, Unavailable "host <url> unreachable: ..." when it cannot be
  // reached, or the agent's own error. Records reachability. Blocks up to timeout_ms.
  absl::StatusOr<nlohmann::json> Call(size_t host, const std::string& method,
                                      const std::string& path, const std::string& body = "");
  // Call on every host at once; results by host index.
  std::vector<absl::StatusOr<nlohmann::json>> CallAll(const std::string& method,
                                                      const std::string& path);
  // Where `id` is held according to fresh agent lists; fills `found` when some host lists it.
  absl::StatusOr<ReplicaStatus> ProvisionNew(const ReplicaSpec& spec);
  void Remember(size_t host, const ReplicaStatus& status);
  static ReplicaStatus Unreachable(const ReplicaStatus& last, const std::string& url,
                                   const std::string& why);

  const HostsProviderOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<HostState> hosts_;
  std::map<ReplicaId, Placed> placed_;
  std::map<ReplicaId, size_t> deferred_terminate_;  // id -> host, sent once the host answers
  std::set<ReplicaId> provisioning_;                // ids with a Provision in flight
  uint64_t seq_ = 0;
};

}  // namespace weft::control
