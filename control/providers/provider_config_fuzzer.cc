// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: providers files (`weft control --providers`). Parsing must never crash or
// throw, and what parses is a usable config: named providers of known kinds, unique names, hosts
// providers with agents and one token source.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

#include "control/providers/provider_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto configs = weft::control::ParseProvidersYaml(text, "fuzz.yaml");
  if (!configs.ok()) return 0;
  if (configs->empty()) std::abort();
  const auto& kinds = weft::control::ProviderKinds();
  std::set<std::string> names;
  for (const weft::control::ProviderConfig& c : *configs) {
    if (c.name.empty() || !names.insert(c.name).second) std::abort();
    if (std::find(kinds.begin(), kinds.end(), c.kind) == kinds.end()) std::abort();
    if (c.kind == "local" && c.slots < 1) std::abort();
    if (c.kind == "hosts" && (c.hosts.empty() || c.token.empty() == c.token_env.empty())) {
      std::abort();
    }
    if (c.kind == "kubernetes" && (c.kubeconfig.empty() || c.accelerator_slots.empty())) {
      std::abort();
    }
  }
  return 0;
}
