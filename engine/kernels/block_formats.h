// SPDX-License-Identifier: Apache-2.0
// Internal: GGML's quantized block layouts, byte for byte, and the activation formats the CPU
// matmul kernels dot them against. Plain data; no ownership, no threads.
#pragma once

#include <cstdint>

namespace weft::kernels {

inline constexpr int kQK = 32;    // weights per Q4_0 / Q8_0 block
inline constexpr int kQKK = 256;  // weights per K-quant super-block

struct BlockQ4_0 {
  uint16_t d;           // f16 scale
  uint8_t qs[kQK / 2];  // byte j: weight j in the low nibble, weight j + 16 in the high
};
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQK];
};
struct BlockQ4_K {
  uint16_t d;            // f16 super-block scale for the 6-bit sub-block scales
  uint16_t dmin;         // f16 super-block scale for the 6-bit sub-block mins
  uint8_t scales[12];    // 8 scales + 8 mins, 6 bits each (see GetScaleMinK4)
  uint8_t qs[kQKK / 2];  // 4 chunks of 64: 32 bytes, low nibbles first half, high second
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];      // low 4 bits
  uint8_t qh[kQKK / 4];      // high 2 bits
  int8_t scales[kQKK / 16];  // one per 16 weights
  uint16_t d;                // f16 super-block scale
};
struct BlockQ8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];  // sums of qs over each 16
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// Sub-block j (0..7) scale and min of a Q4_K block (ggml's get_scale_min_k4).
inline void GetScaleMinK4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

// Quantizes one activation row of n (multiple of 256) floats to Q8_K (ggml's quantize_row_q8_K).
void QuantizeRowQ8K(const float* x, BlockQ8_K* y, int64_t n);

}  // namespace weft::kernels
