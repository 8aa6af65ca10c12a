// SPDX-License-Identifier: Apache-2.0
// Known-value tests of the block formats, the (de)quantizers and the fp16/bf16 conversions.
#include "engine/kernels/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/kernels/block_formats.h"
#include "engine/kernels/kernels.h"
#include "gtest/gtest.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace weft::kernels {
namespace {

TEST(DTypeTest, TraitsMatchGgml) {
  struct Case {
    DType type;
    const char* name;
    int64_t block_size, block_bytes;
  };
  const Case cases[] = {
      {DType::kF32, "f32", 1, 4},       {DType::kF16, "f16", 1, 2},
      {DType::kBF16, "bf16", 1, 2},     {DType::kQ8_0, "q8_0", 32, 34},
      {DType::kQ4_0, "q4_0", 32, 18},   {DType::kQ4_K, "q4_K", 256, 144},
      {DType::kQ6_K, "q6_K", 256, 210}, {DType::kQ8_K, "q8_K", 256, 292},
  };
  for (const Case& c : cases) {
    const DTypeTraits& t = Traits(c.type);
    EXPECT_EQ(t.name, c.name);
    EXPECT_EQ(t.block_size, c.block_size) << c.name;
    EXPECT_EQ(t.block_bytes, c.block_bytes) << c.name;
    ASSERT_TRUE(TraitsOf(static_cast<uint32_t>(c.type)).has_value());
    EXPECT_EQ(TraitsOf(static_cast<uint32_t>(c.type))->name, c.name);
  }
  EXPECT_FALSE(TraitsOf(3).has_value());   // q4_1
  EXPECT_FALSE(TraitsOf(10).has_value());  // q2_K
  EXPECT_FALSE(TraitsOf(999).has_value());
  EXPECT_EQ(RowBytes(DType::kQ4_0, 4096), 128 * 18);
  EXPECT_EQ(RowBytes(DType::kF16, 7), 14);
}

TEST(Fp16Test, KnownValues) {
  EXPECT_EQ(Fp32ToFp16(0.0f), 0x0000);
  EXPECT_EQ(Fp32ToFp16(-0.0f), 0x8000);
  EXPECT_EQ(Fp32ToFp16(1.0f), 0x3C00);
  EXPECT_EQ(Fp32ToFp16(-2.0f), 0xC000);
  EXPECT_EQ(Fp32ToFp16(65504.0f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(65520.0f), 0x7C00);  // rounds to +inf
  EXPECT_EQ(Fp32ToFp16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(Fp32ToFp16(0x1.0p-24f), 0x0001);  // smallest subnormal
  EXPECT_EQ(Fp32ToFp16(0x1.0p-25f), 0x0000);  // halfway to zero: ties to even
  EXPECT_EQ(Fp32ToFp16(0x1.8p-25f), 0x0001);
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties to even -> 1.
  EXPECT_EQ(Fp32ToFp16(1.0f + 0x1.0p-11f), 0x3C00);
  // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even) -> even.
  EXPECT_EQ(Fp32ToFp16(1.0f + 3 * 0x1.0p-11f), 0x3C02);
  EXPECT_EQ(Fp32ToFp16(1.0f + 0x1.0p-11f + 0x1.0p-20f), 0x3C01);
  EXPECT_EQ(Fp16ToFp32(0x3555), 0x1.554p-2f);
  EXPECT_EQ(Fp16ToFp32(0x0001), 0x1.0p-24f);
  EXPECT_EQ(Fp16ToFp32(0x03FF), 0x1.ff8p-15f);
  EXPECT_TRUE(std::isinf(Fp16ToFp32(0xFC00)) && Fp16ToFp32(0xFC00) < 0);
  EXPECT_TRUE(std::isnan(Fp16ToFp32(0x7E00)));
  EXPECT_TRUE(std::isnan(Fp16ToFp32(Fp32ToFp16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(Fp16Test, AllHalvesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(Fp32ToFp16(f), h) << std::hex << h;
#if defined(__x86_64__) && defined(__F16C__)
    ASSERT_EQ(f, _cvtsh_ss(static_cast<uint16_t>(h)));
#endif
  }
}

// Rounding against a double-precision oracle: the nearest half, ties to the even mantissa.
TEST(Fp16Test, RandomFloatsRoundToNearestEven) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits(0, 0xFFFFFFFFu);
  for (int i = 0; i < 200000; ++i) {
    uint32_t u = bits(rng);
    // Concentrate on the half range (exponents around 2^-26 .. 2^17).
    u = (u & 0x807FFFFFu) | ((96 + (u >> 23) % 48) << 23);
    float f;
    std::memcpy(&f, &u, 4);
    const uint16_t h = Fp32ToFp16(f);
    const double got = Fp16ToFp32(h);
    const uint16_t next = static_cast<uint16_t>((h & 0x7FFF) == 0x7C00 ? h : h + 1);
    const uint16_t prev = static_cast<uint16_t>((h & 0x7FFF) == 0 ? h : h - 1);
    const double err = std::fabs(got - f);
    if (!std::isinf(got)) {
      ASSERT_LE(err, std::fabs(Fp16ToFp32(next) - static_cast<double>(f))) << f;
      ASSERT_LE(err, std::fabs(Fp16ToFp32(prev) - static_cast<double>(f))) << f;
      if (err == std::fabs(Fp16ToFp32(next) - static_cast<double>(f)) && err > 0) {
        ASSERT_EQ(h & 1, 0) << "tie not to even: " << f;
      }
    }
#if defined(__x86_64__) && defined(__F16C__)
    ASSERT_EQ(h, _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)) << f;
#endif
  }
}

TEST(Bf16Test, KnownValues) {
  EXPECT_EQ(Fp32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(Fp32ToBf16(-2.0f), 0xC000);
  EXPECT_EQ(Bf16ToFp32(0x3F80), 1.0f);
  EXPECT_EQ(Bf16ToFp32(0x4049), 3.140625f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even -> 1.
  EXPECT_EQ(Fp32ToBf16(1.0f + 0x1.0p-8f), 0x3F80);
  EXPECT_EQ(Fp32ToBf16(1.0f + 3 * 0x1.0p-8f), 0x3F82);
  EXPECT_EQ(Fp32ToBf16(1.0f + 0x1.0p-8f + 0x1.0p-20f), 0x3F81);
  EXPECT_TRUE(std::isnan(Bf16ToFp32(Fp32ToBf16(std::numeric_limits<float>::quiet_NaN()))));
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Bf16ToFp32(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(Fp32ToBf16(f), h);
    }
  }
}

TEST(DequantizeTest, Q8_0KnownBlock) {
  BlockQ8_0 b;
  b.d = Fp32ToFp16(0.5f);
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j - 16);
  float out[32];
  DequantizeRow(DType::kQ8_0, &b, out, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * (j - 16));
}

TEST(DequantizeTest, Q4_0KnownBlock) {
  BlockQ4_0 b;
  b.d = Fp32ToFp16(0.25f);
  // Byte j: low nibble is weight j, high nibble weight j + 16.
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float out[32];
  DequantizeRow(DType::kQ4_0, &b, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 0.25f * (j - 8));
    EXPECT_EQ(out[j + 16], 0.25f * (15 - j - 8));
  }
}

TEST(DequantizeTest, Q4_KKnownBlock) {
  BlockQ4_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = Fp32ToFp16(2.0f);
  b.dmin = Fp32ToFp16(0.5f);
  // Sub-block scales 1..8 and mins 10..17 (6 bits each), packed as ggml packs them.
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(j + 1 + (j >= 4 ? 40 : 0));  // upper sub-blocks use bits 4..5
    mn[j] = static_cast<uint8_t>(10 + j + (j >= 4 ? 32 : 0));
  }
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
    b.scales[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
    b.scales[j + 8] = (sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4);
  }
  for (int j = 0; j < 8; ++j) {
    uint8_t d, m;
    GetScaleMinK4(j, b.scales, &d, &m);
    EXPECT_EQ(d, sc[j]) << j;
    EXPECT_EQ(m, mn[j]) << j;
  }
  // Weight e of sub-block s (32 each) has nibble (e + s) % 16.
  for (int chunk = 0; chunk < 4; ++chunk) {
    for (int l = 0; l < 32; ++l) {
      const int lo = (l + 2 * chunk) % 16, hi = (l + 2 * chunk + 1) % 16;
      b.qs[32 * chunk + l] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
  float out[256];
  DequantizeRow(DType::kQ4_K, &b, out, 256);
  for (int s = 0; s < 8; ++s) {
    for (int l = 0; l < 32; ++l) {
      const float expect = 2.0f * sc[s] * ((l + s) % 16) - 0.5f * mn[s];
      ASSERT_EQ(out[32 * s + l], expect) << s << " " << l;
    }
  }
}

TEST(DequantizeTest, Q6_KKnownBlock) {
  BlockQ6_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = Fp32ToFp16(0.125f);
  for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<int8_t>(g - 8);
  // Weight e holds 6-bit code (e * 7) % 64, i.e. value code - 32.
  auto code = [](int e) { return (e * 7) % 64; };
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int base = 128 * half;
      const int q1 = code(base + l), q2 = code(base + l + 32);
      const int q3 = code(base + l + 64), q4 = code(base + l + 96);
      b.ql[64 * half + l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      b.ql[64 * half + l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
      b.qh[32 * half + l] =
          static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
  float out[256];
  DequantizeRow(DType::kQ6_K, &b, out, 256);
  for (int e = 0; e < 256; ++e) {
    ASSERT_EQ(out[e], 0.125f * (e / 16 - 8) * (code(e) - 32)) << e;
  }
}

TEST(QuantizeTest, Q8_0MatchesGgmlReference) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = (j - 10) * 0.1f;
  BlockQ8_0 b;
  QuantizeRow(DType::kQ8_0, x, &b, 32);
  const float d = 2.1f / 127.0f;  // max |x| = 2.1 at j = 31
  EXPECT_EQ(b.d, Fp32ToFp16(d));
  for (int j = 0; j < 32; ++j) EXPECT_EQ(b.qs[j], static_cast<int8_t>(std::round(x[j] / d))) << j;
}

TEST(QuantizeTest, Q4_0MatchesGgmlReference) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = (j - 20) * 0.25f;  // the largest magnitude is -5 at j = 0
  BlockQ4_0 b;
  QuantizeRow(DType::kQ4_0, x, &b, 32);
  EXPECT_EQ(Fp16ToFp32(b.d), 5.0f / 8.0f);
  float out[32];
  DequantizeRow(DType::kQ4_0, &b, out, 32);
  EXPECT_EQ(out[0], -5.0f);  // -8 * d
  for (int j = 0; j < 32; ++j) EXPECT_NEAR(out[j], x[j], 0.5f * 0.625f + 1e-6f) << j;
}

// Round trips through every quantized type stay within half a quantization step.
TEST(QuantizeTest, RoundTripErrorIsBounded) {
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t n = 1024;
  std::vector<float> x(n), y(n);
  for (float& v : x) v = dist(rng);
  struct Case {
    DType type;
    double max_rel_rms;  // rms error / rms value
  };
  for (const Case c : {Case{DType::kF16, 1e-3}, Case{DType::kBF16, 5e-3}, Case{DType::kQ8_0, 1e-2},
                       Case{DType::kQ4_0, 0.15}, Case{DType::kQ4_K, 0.15}, Case{DType::kQ6_K, 0.05},
                       Case{DType::kQ8_K, 1e-2}}) {
    std::vector<uint8_t> buf(RowBytes(c.type, n));
    QuantizeRow(c.type, x.data(), buf.data(), n);
    DequantizeRow(c.type, buf.data(), y.data(), n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (x[i] - y[i]) * (x[i] - y[i]);
      ref += x[i] * x[i];
    }
    EXPECT_LT(std::sqrt(err / ref), c.max_rel_rms) << Traits(c.type).name;
    // Quantizing the dequantized values again is stable for the float-scaled types.
    if (c.type == DType::kQ8_0 || c.type == DType::kQ4_0 || c.type == DType::kF16) {
      std::vector<uint8_t> buf2(buf.size());
      QuantizeRow(c.type, y.data(), buf2.data(), n);
      EXPECT_EQ(buf, buf2) << Traits(c.type).name;
    }
  }
}

TEST(QuantizeTest, AllZeroRows) {
  std::vector<float> x(256, 0.0f), y(256, 1.0f);
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kQ8_K}) {
    std::vector<uint8_t> buf(RowBytes(t, 256));
    QuantizeRow(t, x.data(), buf.data(), 256);
    DequantizeRow(t, buf.data(), y.data(), 256);
    for (float v : y) ASSERT_EQ(v, 0.0f) << Traits(t).name;
  }
}

}  // namespace
}  // namespace weft::kernels
