// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: gateway config YAML. Parsing must never crash or throw; a config that parses
// has valid deployments (re-validating them succeeds and changes nothing).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "gateway/config/gateway_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto config = weft::gateway::ParseGatewayConfig(yaml, "fuzz.yaml");
  if (!config.ok()) return 0;
  auto deployments = config->deployments;
  if (!weft::gateway::ValidateDeployments(deployments).ok()) std::abort();
  if (deployments != config->deployments) std::abort();
  for (const auto& d : config->deployments) {
    for (const auto& r : d.replicas) {
      if (r.port == 0 || r.host.empty() || !(r.weight > 0)) std::abort();
    }
  }
  return 0;
}
