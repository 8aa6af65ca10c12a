// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: deployment specs as YAML and as JSON. Parsing must never crash or throw; a
// spec that parses is valid (re-validating changes nothing) and survives a JSON round trip with
// the same value and digest.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "control/deployments/deployment_spec.h"

namespace {

void CheckParsed(const weft::control::DeploymentSpec& spec) {
  weft::control::DeploymentSpec copy = spec;
  if (!weft::control::ValidateSpec(copy).ok() || !(copy == spec)) std::abort();
  auto back = weft::control::SpecFromJsonText(weft::control::SpecToJson(spec).dump());
  if (!back.ok() || !(*back == spec)) std::abort();
  if (weft::control::SpecDigest(*back) != weft::control::SpecDigest(spec)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto spec = weft::control::ParseDeploymentSpecYaml(text, "fuzz.yaml"); spec.ok()) {
    CheckParsed(*spec);
  }
  if (auto spec = weft::control::SpecFromJsonText(text); spec.ok()) CheckParsed(*spec);
  return 0;
}
