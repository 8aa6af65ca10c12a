// SPDX-License-Identifier: Apache-2.0
// Request bodies of the control plane's small write endpoints, parsed as untrusted input (a
// gateway's or an operator's): plain values out, InvalidArgument naming the field for anything
// else. ControlServer answers those errors with 400. Pure functions; no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace weft::control {

// The most requests one gateway may report holding for one deployment: far above any real hold
// queue, low enough that the sum over many gateways cannot overflow.
inline constexpr int64_t kMaxHeldPerDeployment = int64_t{1} << 31;

// POST /weft/v1/demand: {"gateway": ID, "deployments": {NAME: {"held": N}}}.
struct DemandReport {
  std::string gateway;                  // non-empty
  std::map<std::string, int64_t> held;  // deployment -> requests, each in [0, kMaxHeld...]
};
absl::StatusOr<DemandReport> ParseDemandReport(std::string_view body);

// POST /v1/deployments/{name}/scale: {"min": N, "max": M}, either optional, no other field.
// Values are int32 range-checked here; the spec's own validation (min <= max, ...) comes later.
struct ScaleRequest {
  std::optional<int32_t> min;
  std::optional<int32_t> max;
};
absl::StatusOr<ScaleRequest> ParseScaleRequest(std::string_view body);

}  // namespace weft::control
