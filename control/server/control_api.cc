// SPDX-License-Identifier: Apache-2.0
#include "control/server/control_api.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/json_number.h"
#include "nlohmann/json.hpp"

namespace weft::control {
namespace {

using json = nlohmann::json;

// An integer in [lo, hi] (JSON integers only: 2.0 is not a count).
std::optional<int64_t> IntegerIn(const json& v, int64_t lo, int64_t hi) {
  const std::optional<int64_t> i = api::JsonInteger<int64_t>(v);
  if (!i || *i < lo || *i > hi) return std::nullopt;
  return i;
}

}  // namespace

absl::StatusOr<DemandReport> ParseDemandReport(std::string_view body) {
  const json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("body: not a JSON object");
  }
  DemandReport report;
  auto gateway = j.find("gateway");
  if (gateway == j.end() || !gateway->is_string() ||
      gateway->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError("gateway: must be a non-empty string");
  }
  report.gateway = gateway->get<std::string>();
  auto deployments = j.find("deployments");
  if (deployments == j.end() || !deployments->is_object()) {
    return absl::InvalidArgumentError("deployments: must be an object");
  }
  for (const auto& [name, d] : deployments->items()) {
    auto n = d.is_object() ? d.find("held") : d.end();
    std::optional<int64_t> held;
    if (d.is_object() && n != d.end()) held = IntegerIn(*n, 0, kMaxHeldPerDeployment);
    if (!held) {
      return absl::InvalidArgumentError(absl::StrCat(
          "deployments.", name, ".held: must be an integer in [0, ", kMaxHeldPerDeployment, "]"));
    }
    report.held[name] = *held;
  }
  return report;
}

absl::StatusOr<ScaleRequest> ParseScaleRequest(std::string_view body) {
  const json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("body: not a JSON object");
  }
  ScaleRequest req;
  for (const auto& [key, value] : j.items()) {
    if (key != "min" && key != "max") {
      return absl::InvalidArgumentError(absl::StrCat(key, ": unknown field"));
    }
    std::optional<int64_t> v =
        IntegerIn(value, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
    if (!v) return absl::InvalidArgumentError(absl::StrCat(key, ": must be a 32-bit integer"));
    (key == "min" ? req.min : req.max) = static_cast<int32_t>(*v);
  }
  return req;
}

}  // namespace weft::control
