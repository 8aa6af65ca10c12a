// SPDX-License-Identifier: Apache-2.0
// The providers `weft control --providers FILE.yaml` runs, and the factory that builds them:
//   providers:
//     - name: local                 # [a-z0-9][a-z0-9._-]{0,62}, unique
//       kind: local                 # local | hosts | kubernetes
//       slots: 2
//     - name: east
//       kind: hosts
//       region: us-east
//       token_env: WEFT_AGENT_TOKEN # or token: ...
//       hosts: [http://10.0.0.1:7071, http://10.0.0.2:7071]
//     - name: cluster
//       kind: kubernetes
//       kubeconfig: /etc/weft/kubeconfig.yaml
//       namespace: weft
//       slots: {cpu: 8, h100: 4}    # per accelerator kind
// Parsing is strict and pure (unknown keys, wrong types and bad values are InvalidArgument
// "source:line: providers[1].hosts[0]: message"); building reads the environment (token_env) and
// files (kubeconfig) and starts the providers. Adding a kind: a field block below, a case in
// ParseProvidersYaml's per-kind keys, and a case in MakeProvider. Safe from any thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "control/providers/provider.h"

namespace weft::control {

struct ProviderConfig {
  std::string name;
  std::string kind;          // one of ProviderKinds()
  std::string region;        // "" = the provider's default ("local"; hosts: what the agents say;
                             // kubernetes: "kubernetes")
  double usd_per_hour = -1;  // per slot; -1 = the provider's default (local, kubernetes: 0; hosts:
                             // the agents')

  // kind: local (engines as children of `weft control`)
  int slots = 2;  // (kind kubernetes spells `slots` as a map: accelerator_slots)
  std::string accelerator = "cpu";

  // kind: hosts (bare machines running `weft agent`)
  std::vector<std::string> hosts;  // agent URLs, http://host:port
  std::string token;               // the agents' bearer token, given in the file...
  std::string token_env;           // ...or the environment variable holding it (exactly one)
  int timeout_ms = 1500;           // per agent call

  // kind: kubernetes (a Deployment + Service per replica in a cluster; docs/kubernetes.md)
  std::string kubeconfig;      // path of the kubeconfig holding the cluster and credentials
  std::string context;         // its context; "" = its current-context
  std::string namespace_name;  // `namespace`; "" = the context's namespace, then "default"
  std::string image = "ghcr.io/weft/weft:latest";  // the engine pods' image (entrypoint `weft`)
  std::string model_pvc;  // PersistentVolumeClaim with the models, mounted read-only at /models
  // `slots`: slots per accelerator kind ({cpu: 8, h100: 4}); kinds other than cpu take one
  // nvidia.com/gpu per slot.
  std::map<std::string, int> accelerator_slots;
};

// The kinds the factory builds: "hosts", "kubernetes", "local".
const std::vector<std::string>& ProviderKinds();

// Parses the YAML document; `source` names it in errors. At least one provider.
absl::StatusOr<std::vector<ProviderConfig>> ParseProvidersYaml(
    std::string_view yaml, std::string_view source = "<providers>");
// Reads and parses a file: NotFound when it cannot be read.
absl::StatusOr<std::vector<ProviderConfig>> LoadProvidersFile(const std::string& path);

// What building needs from the process around it.
struct ProviderEnvironment {
  std::string weft_binary;  // runs `weft engine` (local providers)
  std::string data_dir;     // local providers log engines to <data_dir>/logs
  // Reads an environment variable (token_env); empty = std::getenv.
  std::function<const char*(const char*)> getenv;
};

struct BuiltProvider {
  std::string name;
  std::string kind;
  std::unique_ptr<Provider> provider;
};

// One provider from its config. InvalidArgument naming the field when the environment lacks what
// the config points at (an unset token_env); the kubeconfig's load errors (NotFound, or
// InvalidArgument naming its field); the provider's own Create errors otherwise.
absl::StatusOr<std::unique_ptr<Provider>> MakeProvider(const ProviderConfig& config,
                                                       const ProviderEnvironment& env);
// Every provider, in order; the first failure, prefixed with "providers[i] (name): ".
absl::StatusOr<std::vector<BuiltProvider>> BuildProviders(
    const std::vector<ProviderConfig>& configs, const ProviderEnvironment& env);

}  // namespace weft::control
