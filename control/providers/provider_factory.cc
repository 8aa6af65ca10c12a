// SPDX-License-Identifier: Apache-2.0
// The provider factory: a ProviderConfig (provider_config.h) becomes a running Provider. One case
// per kind.
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "control/providers/hosts/hosts_provider.h"
#include "control/providers/kubernetes/kubeconfig.h"
#include "control/providers/kubernetes/kubernetes_provider.h"
#include "control/providers/local/local_provider.h"
#include "control/providers/provider_config.h"

namespace weft::control {

absl::StatusOr<std::unique_ptr<Provider>> MakeProvider(const ProviderConfig& c,
                                                       const ProviderEnvironment& env) {
  if (c.kind == "local") {
    LocalProviderOptions o;
    o.weft_binary = env.weft_binary;
    o.log_dir = (std::filesystem::path(env.data_dir) / "logs").string();
    o.slots = c.slots;
    o.accelerator = c.accelerator;
    if (!c.region.empty()) o.region = c.region;
    if (c.usd_per_hour >= 0) o.usd_per_hour = c.usd_per_hour;
    auto p = LocalProvider::Create(o);
    if (!p.ok()) return p.status();
    return std::unique_ptr<Provider>(*std::move(p));
  }
  if (c.kind == "hosts") {
    HostsProviderOptions o;
    o.hosts = c.hosts;
    o.token = c.token;
    if (!c.token_env.empty()) {
      const char* v =
          env.getenv ? env.getenv(c.token_env.c_str()) : std::getenv(c.token_env.c_str());
      if (v == nullptr || *v == '\0') {
        return absl::InvalidArgumentError(
            absl::StrCat("token_env: environment variable ", c.token_env, " is not set"));
      }
      o.token = v;
    }
    o.region = c.region;
    o.timeout_ms = c.timeout_ms;
    o.usd_per_hour = c.usd_per_hour;  // < 0: the agents' own prices (weft agent --usd-per-hour)
    auto p = HostsProvider::Create(o);
    if (!p.ok()) return p.status();
    return std::unique_ptr<Provider>(*std::move(p));
  }
  if (c.kind == "kubernetes") {
    absl::StatusOr<Kubeconfig> cluster = LoadKubeconfig(c.kubeconfig, c.context);
    if (!cluster.ok()) return cluster.status();
    KubernetesProviderOptions o;
    o.cluster = *std::move(cluster);
    o.engine.namespace_name = c.namespace_name;  // "" = the context's, then "default" (Create)
    o.engine.image = c.image;
    o.engine.model_pvc = c.model_pvc;
    for (const auto& [kind, slots] : c.accelerator_slots) {
      KubeAccelerator a;
      a.kind = kind;
      a.slots = slots;
      a.usd_per_hour = c.usd_per_hour >= 0 ? c.usd_per_hour : 0;
      // The engine's accelerators are CUDA devices: a GPU slot is one whole nvidia.com/gpu.
      a.resource = kind == "cpu" ? "" : "nvidia.com/gpu";
      o.accelerators.push_back(std::move(a));
    }
    if (!c.region.empty()) o.region = c.region;
    auto p = KubernetesProvider::Create(std::move(o));
    if (!p.ok()) return p.status();
    return std::unique_ptr<Provider>(*std::move(p));
  }
  return absl::InvalidArgumentError(absl::StrCat("kind: unknown kind '", c.kind, "'"));
}

absl::StatusOr<std::vector<BuiltProvider>> BuildProviders(
    const std::vector<ProviderConfig>& configs, const ProviderEnvironment& env) {
  std::vector<BuiltProvider> out;
  for (size_t i = 0; i < configs.size(); ++i) {
    absl::StatusOr<std::unique_ptr<Provider>> p = MakeProvider(configs[i], env);
    if (!p.ok()) {
      return absl::Status(p.status().code(), absl::StrCat("providers[", i, "] (", configs[i].name,
                                                          "): ", p.status().message()));
    }
    out.push_back({configs[i].name, configs[i].kind, *std::move(p)});
  }
  return out;
}

}  // namespace weft::control
