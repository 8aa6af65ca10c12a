// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: route tables as the control plane's watch stream carries them (JSON). Parsing
// must never crash or throw; a table that parses resolves its own model names and serializes back
// to JSON that parses to the same table.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/routing/route_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto table = weft::gateway::RouteTableFromJson(body);
  if (!table.ok()) return 0;
  for (const std::string& name : (*table)->ModelNames()) {
    if (!(*table)->Resolve(name)) std::abort();
  }
  const std::string text = weft::gateway::RouteTableToJson(**table).dump();
  auto back = weft::gateway::RouteTableFromJson(text);
  if (!back.ok() || weft::gateway::RouteTableToJson(**back).dump() != text) std::abort();
  return 0;
}
