// SPDX-License-Identifier: Apache-2.0
// Controller: the control loop. Each tick it reads the store, refreshes replica phases from every
// provider's List() (a provider that cannot be listed fails its live replicas as unreachable),
// runs one Autoscaler per deployment on the load reports of ready replicas, plans with
// PlanReconcile and applies the plan (store writes + provider calls), recording events, provider
// reliability (successes/failures) and degraded flags.
//
// Ownership: the controller borrows the store and the providers (they outlive it). Threads: Tick()
// may be called by hand (tests: with a fake clock, from one thread), or Start() runs it every
// tick_interval on a thread of its own; Stop() joins it. Only the leader should run it.
//
// Spec changes that do not need new replicas (replicas, autoscaling, tenants...) bump the
// deployment's generation; replicas built for the previous generation are relabelled in place when
// this controller saw that previous spec (a restarted controller rolls them, which is safe).
//
// Canary rollouts (spec.rollout): the controller keeps each deployment's CanaryState between ticks
// and records its steps as events ("canary ready; holding 120 s", "canary failed: ...", "canary
// passed"). The phase is also in the stored status, which the control server reads for route
// weights; a restarted controller reads a paused canary back from it and otherwise holds again.
// Any new generation of the spec clears a paused canary (a retry).
//
// Models: a deployment gets new replicas only once its model source resolves (ModelResolver; an
// hf:// download runs in the background, the status says "Pending: fetching model ..."). A failed
// fetch is retried model_retry.attempts times with exponential backoff ("Retrying: ..."), then the
// deployment's status becomes "Failed: <reason>" and stays so until a new generation of the spec,
// or until someone overwrites that status (the control API does on an unchanged `weft deploy`).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/load_report.h"
#include "control/autoscaler/autoscaler.h"
#include "control/models/model_resolver.h"
#include "control/providers/provider.h"
#include "control/reconciler/plan.h"
#include "control/store/control_store.h"

namespace weft::control {

struct ControllerOptions {
  double tick_interval_s = 0.5;
  // The clock (ms, any epoch, must not go backwards); empty = steady clock.
  std::function<int64_t()> now_ms;
  // Load report of the replica at `endpoint`; nullopt when unavailable. Empty = GET
  // <endpoint>/weft/v1/load with a 500 ms deadline.
  std::function<std::optional<api::LoadReport>(const std::string& endpoint)> fetch_load;
  ReplicaIdGenerator new_id;  // empty = "<deployment>-<8 random hex>"
  // Requests the gateways hold for a deployment because it has no ready replica (scale from
  // zero; DemandBook::Held); empty = none. A deployment with held requests and no replica is
  // evaluated at once instead of at its next evaluation period.
  std::function<int64_t(const std::string& deployment)> held_requests;
  // Resolves a spec's model source into a local path for the provider (borrowed; outlives the
  // controller); nullptr = the URI as is.
  ModelResolver* models = nullptr;
  struct ModelRetry {
    int32_t attempts = 3;       // fetches of a failing model before the deployment fails
    int64_t backoff_ms = 2000;  // before the second attempt; doubles after each failure
    int64_t max_backoff_ms = 60000;
  } model_retry;
  int64_t failure_window_ms = 120000;  // failures counted for the degraded flag
  PlanOptions plan;
};

struct ProviderEntry {
  std::string name;
  std::string kind;  // "local", "fake", ...
  Provider* provider = nullptr;
};

class Controller {
 public:
  Controller(ControlStore* store, std::vector<ProviderEntry> providers,
             ControllerOptions options = {});
  ~Controller();  // Stop()

  // Registers the providers in the store (ProviderRecord upsert, keeping measured counters).
  absl::Status Init();
  // One iteration. Returns the plan it applied (for tests and logs).
  absl::StatusOr<Plan> Tick();

  void Start();  // runs Tick every tick_interval_s on a thread of its own
  void Stop();   // idempotent; joins

  int64_t ticks() const { return ticks_.load(); }

 private:
  // Where fetching a deployment's model stands (reset by a new generation).
  struct ModelGate {
    int32_t failures = 0;  // failed fetches of this generation's model
    bool waiting = false;  // for retry_at_ms, before asking the resolver to fetch again
    int64_t retry_at_ms = 0;
    bool failed = false;         // gave up: the deployment is Failed
    bool failed_stored = false;  // the store has shown our "Failed: ..." status
    std::string status;          // the status line while blocked
  };
  struct DeploymentState {
    int64_t generation = 0;
    ModelGate model;
    DeploymentSpec spec;
    std::unique_ptr<Autoscaler> autoscaler;
    int32_t desired = 0;
    int64_t last_eval_ms = -1;
    CanaryState canary;  // the last plan's; a canary failure is read back from the stored status
  };
  struct ProviderRuntime {
    ProviderEntry entry;
    std::vector<int64_t> failures_ms;  // recent failure times
    bool listed = false;               // last List() succeeded
    std::vector<ReplicaStatus> list;
    std::optional<ProviderCapacity> capacity;
    ProviderHealth health;
  };

  int64_t Now() const;
  ProviderRuntime* FindProvider(const std::string& name);
  void RecordFailure(ProviderRuntime* p, int64_t now, const std::string& why);
  // The local model path for new replicas of `d`, or nullopt with *status saying why not yet.
  std::optional<std::string> GateModel(const DesiredDeployment& d, const std::string& stored_status,
                                       int64_t now, std::string* status);
  absl::Status Event(const std::string& object, const std::string& message);
  absl::Status AdjustCounters(const std::string& provider, int64_t successes, int64_t failures);
  void Loop();

  ControlStore* const store_;
  ControllerOptions options_;
  std::vector<ProviderRuntime> providers_;
  std::map<std::string, DeploymentState> deployments_;
  std::atomic<int64_t> ticks_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace weft::control
