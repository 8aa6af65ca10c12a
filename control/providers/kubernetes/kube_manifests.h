// SPDX-License-Identifier: Apache-2.0
// The objects the kubernetes provider creates for one replica: an apps/v1 Deployment (one pod
// running `weft engine`) and a v1 Service in front of it, as the JSON the API takes, plus the names
// and labels that tie them together. deploy/kubernetes/ holds the same manifests for review; a test
// keeps the two from drifting. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "control/providers/provider.h"
#include "nlohmann/json.hpp"

namespace weft::control {

// Labels and annotations (the managed-by label selects everything the provider owns).
inline constexpr char kLabelManagedBy[] = "weft.dev/managed-by";   // = "weft"
inline constexpr char kLabelReplica[] = "weft.dev/replica";        // the replica id (label-safe)
inline constexpr char kLabelDeployment[] = "weft.dev/deployment";  // the deployment (label-safe)
inline constexpr char kLabelInstance[] = "weft.dev/instance";      // one Provision of that id
inline constexpr char kAnnotationReplicaId[] = "weft.dev/replica-id";  // the exact id
inline constexpr char kAnnotationDeployment[] = "weft.dev/deployment";
inline constexpr char kAnnotationAccelerator[] = "weft.dev/accelerator";
inline constexpr char kAnnotationAcceleratorCount[] = "weft.dev/accelerator-count";
inline constexpr char kAnnotationStartedMs[] = "weft.dev/started-ms";
inline constexpr char kEngineContainer[] = "engine";

// One accelerator kind the cluster offers the provider.
struct KubeAccelerator {
  std::string kind = "cpu";  // the ReplicaSpec::accelerator it serves ("cpu", "h100", ...)
  int slots = 0;             // slots the provider may use at once (replicas x accelerator_count)
  double usd_per_hour = 0;   // price of one slot for one hour
  // Extended resource taken per slot ("nvidia.com/gpu"); "" for none (a CPU slot).
  std::string resource;
  int cpu_millis_per_slot = 1000;  // requests.cpu per slot, millicores (0 = none)
  int memory_mib_per_slot = 2048;  // requests and limits.memory per slot, MiB (0 = none)
  std::map<std::string, std::string> node_selector;  // e.g. {"nvidia.com/gpu.product": "..."}
};

// How engine pods are made, beyond the replica spec.
struct KubeEngineTemplate {
  std::string namespace_name = "default";
  std::string image = "ghcr.io/weft/weft:latest";  // its entrypoint is the `weft` binary
  std::string image_pull_policy = "IfNotPresent";
  uint16_t port = 8080;                    // the engine's --port, the container and Service port
  std::string service_type = "ClusterIP";  // or NodePort / LoadBalancer
  // A PersistentVolumeClaim holding the models, mounted read-only at model_mount; "" = none (the
  // model path must then exist in the image or be reachable otherwise).
  std::string model_pvc;
  std::string model_mount = "/models";
};

// The Kubernetes names of one replica's objects.
struct KubeNames {
  std::string object;      // Deployment and Service name: "weft-<id>" as a DNS-1035 label
  std::string replica;     // label-safe replica id
  std::string deployment;  // label-safe deployment name
};

// Names for `spec`: ids that are valid names are kept; others are lowered, cleaned and suffixed
// with a hash of the id so distinct ids never share a name.
KubeNames KubeNamesFor(const ReplicaSpec& spec);
// `value` when it is a valid label value, else a cleaned, hash-suffixed one.
std::string LabelSafe(const std::string& value);

// `weft engine` arguments (the image's entrypoint is `weft`), as LocalProvider::EngineArgv minus
// the binary, listening on 0.0.0.0:port.
std::vector<std::string> KubeEngineArgs(const ReplicaSpec& spec, uint16_t port);

// The Deployment for `spec` (one replica, Recreate strategy, readiness probe on GET /health).
nlohmann::json BuildEngineDeployment(const KubeEngineTemplate& t, const KubeAccelerator& a,
                                     const ReplicaSpec& spec, const std::string& instance,
                                     int64_t started_ms);
// The Service in front of it.
nlohmann::json BuildEngineService(const KubeEngineTemplate& t, const ReplicaSpec& spec,
                                  const std::string& instance);

}  // namespace weft::control
