// SPDX-License-Identifier: Apache-2.0
// Scalar fp16/bf16 conversions and the row (de)quantizers of every supported type. These are the
// reference formats: bit-exact to GGML's dequantize_row_* and quantize_row_*_ref.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "engine/kernels/block_formats.h"
#include "engine/kernels/kernels.h"

namespace weft::kernels {
namespace {

inline float FromBits(uint32_t w) {
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}
inline uint32_t ToBits(float f) {
  uint32_t w;
  std::memcpy(&w, &f, 4);
  return w;
}

// Round half to even for |v| < 2^22 (ggml's nearest_int): adding 1.5 * 2^23 leaves the rounded
// integer in the low mantissa bits. Inline, unlike a libm nearbyint call.
inline int NearestInt(float v) {
  const float f = v + 12582912.0f;
  return static_cast<int>(ToBits(f) & 0x007FFFFF) - 0x00400000;
}

void DequantizeQ4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[i * kQK + j] = static_cast<float>((x[i].qs[j] & 0x0F) - 8) * d;
      y[i * kQK + j + kQK / 2] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void DequantizeQ8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[i * kQK + j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

void DequantizeQ4_K(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const float min = Fp16ToFp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    int is = 0;
    for (int j = 0; j < kQKK; j += 64) {
      uint8_t sc, m;
      GetScaleMinK4(is + 0, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      GetScaleMinK4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

void DequantizeQ6_K(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int n = 0; n < kQKK; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void DequantizeQ8_K(const BlockQ8_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < kQKK; ++j) y[i * kQKK + j] = x[i].d * x[i].qs[j];
  }
}

// ggml's quantize_row_q4_0_ref: the signed value of largest magnitude maps to -8.
void QuantizeQ4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      const float v = x[i * kQK + j];
      if (amax < std::fabs(v)) {
        amax = std::fabs(v);
        max = v;
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = x[i * kQK + j] * id;
      const float x1 = x[i * kQK + kQK / 2 + j] * id;
      const uint8_t xi0 = std::min<int8_t>(15, static_cast<int8_t>(x0 + 8.5f));
      const uint8_t xi1 = std::min<int8_t>(15, static_cast<int8_t>(x1 + 8.5f));
      y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
  }
}

// ggml's quantize_row_q8_0_ref.
void QuantizeQ8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[i * kQK + j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::round(x[i * kQK + j] * id));
    }
  }
}

// A simple valid Q4_K quantizer (not ggml's iterative make_qkx2_quants): per 32-weight sub-block
// w = scale * q - min with q in 0..15, min >= 0; scales and mins quantized to 6 bits against the
// f16 super-block d and dmin, then q recomputed against the quantized scale and min.
void QuantizeQ4_K(const float* x, BlockQ4_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float* xb = x + i * kQKK;
    float scales[8], mins[8];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
      float lo = 0.0f, hi = 0.0f;
      for (int l = 0; l < 32; ++l) {
        lo = std::min(lo, xb[32 * j + l]);
        hi = std::max(hi, xb[32 * j + l]);
      }
      scales[j] = (hi - lo) / 15.0f;
      mins[j] = -lo;
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    const float d = max_scale / 63.0f;
    const float dmin = max_min / 63.0f;
    y[i].d = Fp32ToFp16(d);
    y[i].dmin = Fp32ToFp16(dmin);
    const float dq = Fp16ToFp32(y[i].d), dminq = Fp16ToFp32(y[i].dmin);
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
      ls[j] = static_cast<uint8_t>(std::clamp(dq > 0.0f ? NearestInt(scales[j] / dq) : 0, 0, 63));
      lm[j] =
          static_cast<uint8_t>(std::clamp(dminq > 0.0f ? NearestInt(mins[j] / dminq) : 0, 0, 63));
    }
    std::memset(y[i].scales, 0, sizeof(y[i].scales));
    for (int j = 0; j < 8; ++j) {
      if (j < 4) {
        y[i].scales[j] = ls[j];
        y[i].scales[j + 4] = lm[j];
      } else {
        y[i].scales[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
        y[i].scales[j - 4] |= ((ls[j] >> 4) << 6);
        y[i].scales[j - 0] |= ((lm[j] >> 4) << 6);
      }
    }
    uint8_t levels[kQKK];
    for (int j = 0; j < 8; ++j) {
      const float d1 = dq * ls[j], m1 = dminq * lm[j];
      for (int l = 0; l < 32; ++l) {
        const int q = d1 > 0.0f ? NearestInt((xb[32 * j + l] + m1) / d1) : 0;
        levels[32 * j + l] = static_cast<uint8_t>(std::clamp(q, 0, 15));
      }
    }
    uint8_t* q = y[i].qs;
    for (int j = 0; j < kQKK; j += 64) {
      for (int l = 0; l < 32; ++l) q[l] = levels[j + l] | (levels[j + l + 32] << 4);
      q += 32;
    }
  }
}

// A simple valid Q6_K quantizer: per 16-weight group scale = max|x| / 31 (q in -31..31), group
// scales quantized to int8 against the f16 super-block d, q recomputed against them.
void QuantizeQ6_K(const float* x, BlockQ6_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float* xb = x + i * kQKK;
    float scales[16];
    float max_scale = 0.0f;
    for (int g = 0; g < 16; ++g) {
      float amax = 0.0f;
      for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(xb[16 * g + l]));
      scales[g] = amax / 31.0f;
      max_scale = std::max(max_scale, scales[g]);
    }
    const float d = max_scale / 127.0f;
    y[i].d = Fp32ToFp16(d);
    const float dq = Fp16ToFp32(y[i].d);
    int8_t levels[kQKK];
    for (int g = 0; g < 16; ++g) {
      const int sc = std::clamp(dq > 0.0f ? NearestInt(scales[g] / dq) : 0, -128, 127);
      y[i].scales[g] = static_cast<int8_t>(sc);
      const float dg = dq * sc;
      for (int l = 0; l < 16; ++l) {
        const int q = dg != 0.0f ? NearestInt(xb[16 * g + l] / dg) : 0;
        levels[16 * g + l] = static_cast<int8_t>(std::clamp(q, -32, 31) + 32);
      }
    }
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < kQKK; j += 128) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = levels[j + l + 0], q2 = levels[j + l + 32];
        const uint8_t q3 = levels[j + l + 64], q4 = levels[j + l + 96];
        ql[l + 0] = (q1 & 0xF) | ((q3 & 0xF) << 4);
        ql[l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
        qh[l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
      ql += 64;
      qh += 32;
    }
  }
}

}  // namespace

// Half precision conversions after Maratyszcza's FP16 library (as GGML's scalar path): exact,
// with round-to-nearest-even, subnormals, infinities and NaN handled.
float Fp16ToFp32(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  constexpr uint32_t kExpOffset = 0xE0u << 23;
  const float normalized = FromBits((two_w >> 4) + kExpOffset) * 0x1.0p-112f;
  constexpr uint32_t kMagicMask = 126u << 23;
  const float denormalized = FromBits((two_w >> 17) | kMagicMask) - 0.5f;
  constexpr uint32_t kDenormCutoff = 1u << 27;
  return FromBits(sign | (two_w < kDenormCutoff ? ToBits(denormalized) : ToBits(normalized)));
}

uint16_t Fp32ToFp16(float f) {
  float base = (std::fabs(f) * 0x1.0p+112f) * 0x1.0p-110f;
  const uint32_t w = ToBits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = FromBits((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = ToBits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

float Bf16ToFp32(uint16_t h) { return FromBits(static_cast<uint32_t>(h) << 16); }

uint16_t Fp32ToBf16(float f) {
  const uint32_t u = ToBits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7FFFu + ((u >> 16) & 1))) >> 16);
}

void QuantizeRowQ8K(const float* x, BlockQ8_K* y, int64_t n) {
  WEFT_CHECK(n % kQKK == 0);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < kQKK; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQKK; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
    }
    for (int j = 0; j < kQKK / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * j + l];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

void DequantizeRow(DType type, const void* src, float* dst, int64_t n) {
  const int64_t bs = Traits(type).block_size;
  WEFT_CHECK(n % bs == 0);
  const int64_t nb = n / bs;
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFp32(h[i]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFp32(h[i]);
      return;
    }
    case DType::kQ4_0:
      return DequantizeQ4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case DType::kQ8_0:
      return DequantizeQ8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case DType::kQ4_K:
      return DequantizeQ4_K(static_cast<const BlockQ4_K*>(src), dst, nb);
    case DType::kQ6_K:
      return DequantizeQ6_K(static_cast<const BlockQ6_K*>(src), dst, nb);
    case DType::kQ8_K:
      return DequantizeQ8_K(static_cast<const BlockQ8_K*>(src), dst, nb);
  }
  WEFT_CHECK(false && "unsupported dtype");
}

void QuantizeRow(DType type, const float* src, void* dst, int64_t n) {
  const int64_t bs = Traits(type).block_size;
  WEFT_CHECK(n % bs == 0);
  const int64_t nb = n / bs;
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case DType::kF16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = Fp32ToFp16(src[i]);
      return;
    }
    case DType::kBF16: {
      uint16_t* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = Fp32ToBf16(src[i]);
      return;
    }
    case DType::kQ4_0:
      return QuantizeQ4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case DType::kQ8_0:
      return QuantizeQ8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case DType::kQ4_K:
      return QuantizeQ4_K(src, static_cast<BlockQ4_K*>(dst), nb);
    case DType::kQ6_K:
      return QuantizeQ6_K(src, static_cast<BlockQ6_K*>(dst), nb);
    case DType::kQ8_K:
      return QuantizeRowQ8K(src, static_cast<BlockQ8_K*>(dst), n);
  }
  WEFT_CHECK(false && "unsupported dtype");
}

}  // namespace weft::kernels
