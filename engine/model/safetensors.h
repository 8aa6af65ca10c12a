// SPDX-License-Identifier: Apache-2.0
// safetensors reader: an 8-byte little-endian header length, a JSON header mapping tensor names to
// {dtype, shape, data_offsets}, then the raw bytes. Parsing validates every entry against the
// file; tensors stay views into the caller's bytes. Pure functions; any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kernels/dtype.h"

namespace weft::model {

struct SafetensorsTensor {
  std::string name;
  kernels::DType type = kernels::DType::kF32;
  std::vector<int64_t> shape;  // as stored: outermost first ([out, in] for a matrix)
  uint64_t begin = 0;          // byte range relative to the data section
  uint64_t end = 0;
  const uint8_t* data = nullptr;  // into the caller's bytes
};

struct SafetensorsHeader {
  std::vector<SafetensorsTensor> tensors;            // in header order
  std::map<std::string, size_t, std::less<>> index;  // name -> position in tensors
  std::map<std::string, std::string> metadata;       // "__metadata__"
  uint64_t data_start = 0;                           // 8 + header length
};

// Parses and validates `bytes` (the whole file). `name` is used in error messages. Supported
// dtypes: F32, F16, BF16. Errors: header length beyond the file, bad JSON, unknown keys or
// dtypes, shape/byte-range mismatch, ranges outside the file or overlapping.
absl::StatusOr<SafetensorsHeader> ParseSafetensors(std::span<const uint8_t> bytes,
                                                   const std::string& name);

}  // namespace weft::model
