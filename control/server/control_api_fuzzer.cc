// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the control plane's demand reports (POST /weft/v1/demand, from gateways) and
// scale requests (POST /v1/deployments/{name}/scale). Parsing must never crash or throw, and
// what parses keeps its documented ranges.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "control/server/control_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto r = weft::control::ParseDemandReport(body); r.ok()) {
    if (r->gateway.empty()) std::abort();
    for (const auto& [name, held] : r->held) {
      if (held < 0 || held > weft::control::kMaxHeldPerDeployment) std::abort();
    }
  }
  (void)weft::control::ParseScaleRequest(body);
  return 0;
}
