// SPDX-License-Identifier: Apache-2.0
// Tensor element types, numbered as GGML/GGUF numbers them, and their block layouts.
// Quantized types store rows in blocks along the innermost dimension (ne[0]).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace weft::kernels {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,   // 32 weights: f16 scale d, 16 bytes of nibbles; w = d * (q - 8)
  kQ8_0 = 8,   // 32 weights: f16 scale d, 32 int8; w = d * q
  kQ8_K = 15,  // activations for K-quant dot products: f32 d, 256 int8, 16 int16 block sums
  kQ4_K = 12,  // 256 weights: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes nibbles
  kQ6_K = 14,  // 256 weights: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 scales, f16 d
  kBF16 = 30,
};

struct DTypeTraits {
  std::string_view name;  // "f32", "q8_0", ... as llama.cpp prints them
  int64_t block_size;     // weights per block (1 for float types)
  int64_t block_bytes;    // bytes per block
};

// Traits of a supported type; nullopt for a GGML type Weft does not support.
std::optional<DTypeTraits> TraitsOf(uint32_t ggml_type);
const DTypeTraits& Traits(DType t);

// Bytes of a row of n elements; n must be a multiple of the block size.
inline int64_t RowBytes(DType t, int64_t n) {
  const DTypeTraits& tr = Traits(t);
  return n / tr.block_size * tr.block_bytes;
}

}  // namespace weft::kernels
