// SPDX-License-Identifier: Apache-2.0
#include "control/providers/kubernetes/kube_manifests.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace weft::control {
namespace {

using json = nlohmann::json;

// FNV-1a, 32 bits: a stable short hash for name suffixes (std::hash may differ across builds).
std::string Hash8(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return absl::StrFormat("%08x", h);
}

bool IsLabelValue(const std::string& s) {
  if (s.empty()) return true;
  if (s.size() > 63 || !absl::ascii_isalnum(s.front()) || !absl::ascii_isalnum(s.back())) {
    return false;
  }
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// Lowercase alphanumerics and '-', no leading/trailing '-'.
std::string Clean(const std::string& s) {
  std::string out;
  for (char c : s) {
    const char l = absl::ascii_tolower(static_cast<unsigned char>(c));
    out.push_back(absl::ascii_isalnum(static_cast<unsigned char>(l)) ? l : '-');
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  size_t i = 0;
  while (i < out.size() && out[i] == '-') ++i;
  return out.substr(i);
}

json Labels(const ReplicaSpec& spec, const std::string& instance) {
  const KubeNames n = KubeNamesFor(spec);
  return {{kLabelManagedBy, "weft"},
          {kLabelReplica, n.replica},
          {kLabelDeployment, n.deployment},
          {kLabelInstance, instance}};
}

json Selector(const ReplicaSpec& spec, const std::string& instance) {
  const KubeNames n = KubeNamesFor(spec);
  return {{kLabelReplica, n.replica}, {kLabelInstance, instance}};
}

}  // namespace

std::string LabelSafe(const std::string& value) {
  if (IsLabelValue(value)) return value;
  std::string c = Clean(value).substr(0, 54);
  while (!c.empty() && c.back() == '-') c.pop_back();
  return c.empty() ? Hash8(value) : absl::StrCat(c, "-", Hash8(value));
}

KubeNames KubeNamesFor(const ReplicaSpec& spec) {
  KubeNames n;
  const std::string clean = Clean(spec.id);
  // "weft-" + id is a DNS-1035 label (starts with a letter) when the id is clean and short.
  if (clean == spec.id && clean.size() <= 58) {
    n.object = "weft-" + clean;
  } else {
    std::string head = clean.substr(0, 49);
    while (!head.empty() && head.back() == '-') head.pop_back();
    n.object = head.empty() ? absl::StrCat("weft-", Hash8(spec.id))
                            : absl::StrCat("weft-", head, "-", Hash8(spec.id));
  }
  n.replica = LabelSafe(spec.id);
  n.deployment = LabelSafe(spec.deployment);
  return n;
}

std::vector<std::string> KubeEngineArgs(const ReplicaSpec& spec, uint16_t port) {
  std::vector<std::string> args = {"engine",
                                   "--model",
                                   spec.model_path,
                                   "--host",
                                   "0.0.0.0",
                                   "--port",
                                   std::to_string(port),
                                   "--name",
                                   spec.deployment.empty() ? spec.id : spec.deployment};
  if (spec.engine.threads > 0) {
    args.insert(args.end(), {"--threads", std::to_string(spec.engine.threads)});
  }
  if (spec.engine.ctx > 0) args.insert(args.end(), {"--ctx", std::to_string(spec.engine.ctx)});
  for (const auto& [name, path] : spec.adapters) {
    args.insert(args.end(), {"--adapter", absl::StrCat(name, "=", path)});
  }
  args.insert(args.end(), spec.engine.extra.begin(), spec.engine.extra.end());
  return args;
}

json BuildEngineDeployment(const KubeEngineTemplate& t, const KubeAccelerator& a,
                           const ReplicaSpec& spec, const std::string& instance,
                           int64_t started_ms) {
  const KubeNames n = KubeNamesFor(spec);
  const int count = spec.accelerator_count;
  json requests = json::object();
  json limits = json::object();
  if (a.cpu_millis_per_slot > 0) requests["cpu"] = absl::StrCat(a.cpu_millis_per_slot * count, "m");
  if (a.memory_mib_per_slot > 0) {
    requests["memory"] = absl::StrCat(a.memory_mib_per_slot * count, "Mi");
    limits["memory"] = requests["memory"];
  }
  // Extended resources (GPUs) are whole units, set as limits (requests default to them).
  if (!a.resource.empty()) limits[a.resource] = std::to_string(count);
  json container = {
      {"name", kEngineContainer},
      {"image", t.image},
      {"imagePullPolicy", t.image_pull_policy},
      {"args", KubeEngineArgs(spec, t.port)},
      {"ports", json::array({{{"name", "http"}, {"containerPort", t.port}, {"protocol", "TCP"}}})},
      {"readinessProbe",
       {{"httpGet", {{"path", "/health"}, {"port", "http"}}},
        {"periodSeconds", 2},
        {"timeoutSeconds", 2},
        {"failureThreshold", 3}}},
      {"resources", {{"requests", requests}, {"limits", limits}}},
  };
  json pod_spec = {
      {"containers", json::array()},
      {"automountServiceAccountToken", false},  // the engine never calls the API
      {"enableServiceLinks", false},
      {"terminationGracePeriodSeconds", 30},
  };
  if (!a.node_selector.empty()) pod_spec["nodeSelector"] = a.node_selector;
  if (!t.model_pvc.empty()) {
    container["volumeMounts"] =
        json::array({{{"name", "models"}, {"mountPath", t.model_mount}, {"readOnly", true}}});
    pod_spec["volumes"] = json::array(
        {{{"name", "models"},
          {"persistentVolumeClaim", {{"claimName", t.model_pvc}, {"readOnly", true}}}}});
  }
  pod_spec["containers"].push_back(std::move(container));
  const json labels = Labels(spec, instance);
  return {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata",
       {{"name", n.object},
        {"namespace", t.namespace_name},
        {"labels", labels},
        {"annotations",
         {{kAnnotationReplicaId, spec.id},
          {kAnnotationDeployment, spec.deployment},
          {kAnnotationAccelerator, spec.accelerator},
          {kAnnotationAcceleratorCount, std::to_string(count)},
          {kAnnotationStartedMs, std::to_string(started_ms)}}}}},
      {"spec",
       {{"replicas", 1},
        // One pod per replica: never two at once (slots are counted per replica).
        {"strategy", {{"type", "Recreate"}}},
        {"selector", {{"matchLabels", Selector(spec, instance)}}},
        {"template", {{"metadata", {{"labels", labels}}}, {"spec", std::move(pod_spec)}}}}},
  };
}

json BuildEngineService(const KubeEngineTemplate& t, const ReplicaSpec& spec,
                        const std::string& instance) {
  const KubeNames n = KubeNamesFor(spec);
  return {
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata",
       {{"name", n.object},
        {"namespace", t.namespace_name},
        {"labels", Labels(spec, instance)},
        {"annotations", {{kAnnotationReplicaId, spec.id}}}}},
      {"spec",
       {{"type", t.service_type},
        {"selector", Selector(spec, instance)},
        {"ports", json::array({{{"name", "http"},
                                {"port", t.port},
                                {"targetPort", "http"},
                                {"protocol", "TCP"}}})}}},
  };
}

}  // namespace weft::control
