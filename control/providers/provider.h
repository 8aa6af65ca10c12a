// SPDX-License-Identifier: Apache-2.0
// Provider: where replicas run (child processes here, agents on bare hosts, a Kubernetes cluster,
// or the in-memory fake). The control plane owns one instance per configured provider; every
// method is thread-safe and returns promptly (no waiting for a replica to load): phases move on
// asynchronously and are observed through List(). Implementations: local/, fake/ (hosts/,
// kubernetes/ to come); each passes the shared conformance suite (provider_conformance.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/types.h"

namespace weft::control {

// How the engine is run, beyond the model: `weft engine` flags.
struct EngineArgs {
  int threads = 0;                 // --threads; 0 = the engine's default
  int ctx = 0;                     // --ctx in tokens; 0 = the model's own
  std::vector<std::string> extra;  // more flags passed as is, e.g. {"--kv-mem", "256"}

  friend bool operator==(const EngineArgs&, const EngineArgs&) = default;
};

// One replica to provision. `id` is chosen by the caller and unique across the control plane; it is
// the idempotency key of Provision and the handle for Terminate.
struct ReplicaSpec {
  ReplicaId id;
  std::string deployment;                       // also the model name the engine serves (--name)
  std::string model_path;                       // a local GGUF file, already resolved
  std::map<std::string, std::string> adapters;  // adapter name -> local path
  EngineArgs engine;
  std::string accelerator = "cpu";  // accelerator kind: "cpu", "h100", ...
  int accelerator_count = 1;        // slots of that kind the replica takes (at least 1)

  friend bool operator==(const ReplicaSpec&, const ReplicaSpec&) = default;
};

// What a provider knows about one replica.
struct ReplicaStatus {
  ReplicaId id;
  std::string deployment;
  ReplicaPhase phase = ReplicaPhase::kPending;
  std::string endpoint;        // "http://host:port" of the engine; set from kStarting on
  std::string failure_reason;  // why, when phase == kFailed ("exited with status 1", ...)
  int64_t started_ms = 0;      // when it was provisioned, ms since the Unix epoch (provider clock)

  friend bool operator==(const ReplicaStatus&, const ReplicaStatus&) = default;
};

// Slots of one accelerator kind. A replica takes `accelerator_count` slots from Provision until it
// is gone (a failed replica keeps its slots until it is terminated).
struct AcceleratorSlots {
  std::string kind;         // "cpu", "h100", ...
  int total = 0;            // slots
  int free = 0;             // slots
  double usd_per_hour = 0;  // price of one slot for one hour

  friend bool operator==(const AcceleratorSlots&, const AcceleratorSlots&) = default;
};

struct ProviderCapacity {
  std::vector<AcceleratorSlots> accelerators;
  std::vector<std::string> regions;

  // The slots of `kind`, or nullptr when the provider has none of that kind.
  const AcceleratorSlots* Find(const std::string& kind) const {
    for (const AcceleratorSlots& a : accelerators) {
      if (a.kind == kind) return &a;
    }
    return nullptr;
  }
};

// The provider as a whole: ok, or degraded with the reason (an outage, an unreachable API, ...).
struct ProviderHealth {
  bool ok = true;
  std::string reason;  // empty when ok
};

class Provider {
 public:
  virtual ~Provider() = default;

  // Slots per accelerator kind and the regions served. Unavailable when the provider cannot be
  // reached.
  virtual absl::StatusOr<ProviderCapacity> Capacity() = 0;

  // Starts a replica and returns at once with phase kStarting (the engine loads in the
  // background). Idempotent by spec.id: provisioning an id that exists returns its current status
  // and changes nothing. ResourceExhausted when the accelerator kind has too few free slots;
  // InvalidArgument for a malformed spec; Unavailable when the provider cannot be reached.
  virtual absl::StatusOr<ReplicaStatus> Provision(const ReplicaSpec& spec) = 0;

  // Stops a replica (gracefully, then forcibly) and frees its slots once it is gone; returns
  // without waiting. While stopping it is listed as kDraining, then it is no longer listed.
  // Idempotent: terminating an unknown or already-gone id is OK.
  virtual absl::Status Terminate(const ReplicaId& id) = 0;

  // Every replica the provider holds, with its current phase: kStarting -> kReady once the engine
  // answers GET /health with 200; kFailed (with a reason) if it died or was not healthy in time.
  virtual absl::StatusOr<std::vector<ReplicaStatus>> List() = 0;

  // The provider-level condition. Never blocks on the network for long.
  virtual ProviderHealth Health() = 0;
};

}  // namespace weft::control
