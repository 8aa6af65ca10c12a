// SPDX-License-Identifier: Apache-2.0
// Writes safetensors files (tests, tools; not used by the engine's load path). The header is
// padded with spaces to a multiple of 8 bytes, as the reference implementation does.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace weft::model {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;  // outermost first
  std::vector<uint8_t> bytes;  // raw little-endian data
};

// The complete file contents. Entries are laid out in the given order.
std::vector<uint8_t> SafetensorsBytes(const std::vector<SafetensorsEntry>& tensors,
                                      const std::map<std::string, std::string>& metadata = {});
absl::Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace weft::model
