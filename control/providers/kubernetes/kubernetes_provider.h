// SPDX-License-Identifier: Apache-2.0
// KubernetesProvider: replicas as one apps/v1 Deployment + Service each in a namespace of a cluster
// named by a kubeconfig, through the Kubernetes REST API (KubeApiClient). A watch thread lists and
// watches the provider's pods (labelSelector weft.dev/managed-by=weft; resourceVersion kept,
// re-listed on 410 Gone) to learn readiness and failure; a worker thread carries out deletions and
// sees replicas gone. On start it adopts the Deployments it finds (a restarted control plane keeps
// its replicas). One provider per namespace. Owned by the control plane; thread-safe; Provision
// makes its API calls inline (bounded by the request timeout), the other methods do not block.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/providers/kubernetes/kube_client.h"
#include "control/providers/kubernetes/kube_manifests.h"
#include "control/providers/kubernetes/kubeconfig.h"
#include "control/providers/provider.h"

namespace weft::control {

struct KubernetesProviderOptions {
  Kubeconfig cluster;  // server and credentials (LoadKubeconfig)
  // Pods' image, namespace, port. An empty namespace_name takes the kubeconfig context's, then
  // "default".
  KubeEngineTemplate engine;
  std::vector<KubeAccelerator> accelerators;  // at least one
  std::string region = "kubernetes";
  // The endpoint reported for a replica; {service}, {namespace}, {port} and {node_port} (the
  // Service's, for NodePort) are replaced.
  std::string endpoint_template = "http://{service}.{namespace}.svc:{port}";
  std::string propagation_policy = "Foreground";  // of deletes: Foreground or Background
  int request_timeout_ms = 10000;                 // one API call
  double watch_timeout_s = 300;  // each watch's timeoutSeconds (then it is renewed)
  double retry_delay_s = 1;      // after a failed list, watch or delete
  double sweep_interval_s = 1;   // the worker's period (deletions, gone checks)
  int max_restarts = 3;          // an engine container restarted this often -> kFailed
  double ready_timeout_s = 900;  // not ready this long after Provision -> kFailed
};

class KubernetesProvider final : public Provider {
 public:
  // InvalidArgument for bad options. Lists the cluster once before returning: a cluster that does
  // not answer still gives a provider, degraded, that keeps trying.
  static absl::StatusOr<std::unique_ptr<KubernetesProvider>> Create(
      KubernetesProviderOptions options);
  ~KubernetesProvider() override;

  absl::StatusOr<ProviderCapacity> Capacity() override;
  absl::StatusOr<ReplicaStatus> Provision(const ReplicaSpec& spec) override;
  absl::Status Terminate(const ReplicaId& id) override;
  absl::StatusOr<std::vector<ReplicaStatus>> List() override;
  ProviderHealth Health() override;

  // Names of the pods now known (from the watch) for replica `id` (tests crash them).
  std::vector<std::string> PodsOf(const ReplicaId& id) const;
  int relists() const;  // full pod lists done so far (the first, and one per 410 Gone or error)
  const std::string& namespace_name() const { return options_.engine.namespace_name; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pod {
    std::string instance;  // weft.dev/instance label
    bool deleting = false;
    bool ready = false;
    std::string phase;    // Pending, Running, Succeeded, Failed
    std::string failure;  // why the engine cannot run ("" when none seen)
    std::string waiting;  // the container's waiting reason, for messages
  };
  struct Replica {
    ReplicaSpec spec;
    ReplicaStatus status;
    std::string instance;
    std::string object;     // Deployment and Service name
    bool creating = false;  // Provision's API calls in flight
    bool terminating = false;
    bool deleted = false;  // the DELETEs were accepted
    Clock::time_point ready_deadline;
  };

  explicit KubernetesProvider(KubernetesProviderOptions options,
                              std::unique_ptr<KubeApiClient> client);
  absl::Status ListPods(std::string* resource_version);  // replaces the cache
  absl::Status AdoptDeployments();
  void WatchLoop(std::string resource_version, bool listed);
  void WorkLoop();
  bool ApplyEvent(std::string_view line, std::string* resource_version, bool* gone);
  void UpdatePodLocked(const nlohmann::json& pod);
  void RefreshLocked(Replica& r);             // phase from the pod cache (failure sticks)
  void NoteApiLocked(const absl::Status& s);  // health from an API result
  absl::Status ApiStatus(const absl::StatusOr<KubeResponse>& r, const std::string& what);
  int UsedSlotsLocked(const std::string& kind) const;
  const KubeAccelerator* FindAccelerator(const std::string& kind) const;
  std::string Endpoint(const std::string& service, int node_port) const;
  std::string PodsPath() const;

  const KubernetesProviderOptions options_;
  std::unique_ptr<KubeApiClient> client_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<ReplicaId, Replica> replicas_;
  std::map<std::string, Pod> pods_;  // by pod name
  std::string api_error_;            // the last API failure; "" once a call succeeds
  int relists_ = 0;
  bool adopted_ = false;  // AdoptDeployments succeeded once
  uint64_t next_instance_ = 0;
  std::thread watcher_;
  std::thread worker_;
};

}  // namespace weft::control
