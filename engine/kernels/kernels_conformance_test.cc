// SPDX-License-Identifier: Apache-2.0
// Conformance of every backend to the scalar reference: each op x weight type x ISA level this
// CPU supports, over odd shapes. Errors are relative to the output norm:
//   ||y - y_ref||_2 / ||y_ref||_2 <= tolerance.
// The reference dequantizes weights exactly and accumulates in double. Tolerances:
//   f32 / f16 / bf16 weights (activations stay f32, float FMA accumulation):  1e-5
//   q8_0 / q4_0 weights (activations quantized to Q8 blocks of 32):             1e-2
//   q4_K / q6_K weights (activations quantized to Q8_K blocks of 256):          1e-2
//   rmsnorm, rope, attention, silu-mul, softmax, add (float arithmetic):        1e-5
//   embedding lookup: bit-exact to DequantizeRow.
#include <cmath>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "engine/kernels/cpu/cpu_backend.h"
#include "engine/kernels/isa_kernels.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/reference/reference_backend.h"
#include "gtest/gtest.h"

namespace weft::kernels {
namespace {

double RelErr(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0.0, ref = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    err += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    ref += static_cast<double>(want[i]) * want[i];
  }
  return ref == 0.0 ? std::sqrt(err) : std::sqrt(err / ref);
}

std::vector<float> RandomVector(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A random weight matrix of `type` (rows quantized from Gaussian floats).
std::vector<uint8_t> RandomWeights(DType type, int64_t n_in, int64_t n_out, uint32_t seed) {
  const std::vector<float> f = RandomVector(n_in * n_out, seed, 0.05f);
  std::vector<uint8_t> w(RowBytes(type, n_in) * n_out);
  for (int64_t o = 0; o < n_out; ++o) {
    QuantizeRow(type, f.data() + o * n_in, w.data() + o * RowBytes(type, n_in), n_in);
  }
  return w;
}

double MatMulTolerance(DType type) {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return 1e-5;
    default:
      return 1e-2;
  }
}

constexpr double kOpTolerance = 1e-5;

struct Level {
  Isa isa;
  int n_threads;
  bool no_vnni = false;  // AVX-512 without VNNI (the table CPUs before Ice Lake get)
};

std::string LevelName(const testing::TestParamInfo<Level>& info) {
  return std::string(IsaName(info.param.isa)) + (info.param.no_vnni ? "_novnni" : "") + "_t" +
         std::to_string(info.param.n_threads);
}

class ConformanceTest : public testing::TestWithParam<Level> {
 protected:
  void SetUp() override {
    if (!IsaSupported(GetParam().isa)) {
      GTEST_SKIP() << "ISA level " << IsaName(GetParam().isa)
                   << " is not supported by this CPU or build";
    }
    if (GetParam().no_vnni) {
      ASSERT_NE(Avx512Kernels(), nullptr);
      backend_ = NewCpuBackend(Isa::kAvx512, Avx512Kernels(), GetParam().n_threads);
    } else {
      backend_ = Backend::Create({GetParam().isa, GetParam().n_threads});
    }
    reference_ = NewReferenceBackend();
  }
  std::unique_ptr<Backend> backend_, reference_;
};

void CheckMatMul(Backend& backend, Backend& reference, DType type, int64_t n_in, int64_t n_out,
                 int64_t n_tokens) {
  SCOPED_TRACE(std::string(Traits(type).name) + " n_in=" + std::to_string(n_in) +
               " n_out=" + std::to_string(n_out) + " n_tokens=" + std::to_string(n_tokens));
  const std::vector<uint8_t> w = RandomWeights(type, n_in, n_out, 1000 + n_in + n_out);
  const std::vector<float> x = RandomVector(n_in * n_tokens, 7 + n_tokens);
  const WeightView view{type, w.data(), n_in, n_out};
  std::vector<float> y(n_out * n_tokens, NAN), y_ref(n_out * n_tokens, NAN);
  backend.MatMul(view, x.data(), n_tokens, y.data());
  reference.MatMul(view, x.data(), n_tokens, y_ref.data());
  for (float v : y) ASSERT_TRUE(std::isfinite(v));
  // Norm-relative error over the whole output, when there are enough outputs for the norm to
  // be meaningful (a single dot product can cancel to near zero).
  if (n_out * n_tokens >= 32) {
    EXPECT_LE(RelErr(y, y_ref), MatMulTolerance(type));
  }
  // Every element, against the natural scale of a dot product ||w_o|| ||x_t|| / sqrt(n_in) (the
  // rms of y for uncorrelated w and x), with 5x headroom for the tails of the error
  // distribution: an error confined to one row, token or tail block cannot hide in the norm.
  std::vector<float> wf(n_in);
  for (int64_t o = 0; o < n_out; ++o) {
    DequantizeRow(type, w.data() + o * RowBytes(type, n_in), wf.data(), n_in);
    double w2 = 0;
    for (float v : wf) w2 += static_cast<double>(v) * v;
    for (int64_t t = 0; t < n_tokens; ++t) {
      double x2 = 0;
      for (int64_t i = 0; i < n_in; ++i)
        x2 += static_cast<double>(x[t * n_in + i]) * x[t * n_in + i];
      const double scale = std::sqrt(w2 * x2 / n_in);
      ASSERT_LE(std::fabs(y[t * n_out + o] - y_ref[t * n_out + o]),
                5 * MatMulTolerance(type) * scale)
          << "row " << o << " token " << t;
    }
  }
}

TEST_P(ConformanceTest, MatMulFloatAndBlock32Types) {
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    for (int64_t n_in : {32, 96, 256, 768, 4096 + 32}) {
      for (int64_t n_out : {1, 7, 37, 67}) {
        for (int64_t n_tokens : {1, 3, 7, 17}) {
          CheckMatMul(*backend_, *reference_, type, n_in, n_out, n_tokens);
        }
      }
    }
  }
}

TEST_P(ConformanceTest, MatMulFloatOddWidths) {
  // f32 weights of any width (the tail loops).
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int64_t n_in : {1, 5, 17, 63, 100}) {
      CheckMatMul(*backend_, *reference_, type, n_in, 9, 5);
    }
  }
}

TEST_P(ConformanceTest, MatMulKQuants) {
  for (DType type : {DType::kQ4_K, DType::kQ6_K}) {
    for (int64_t n_in : {256, 768, 2048}) {
      for (int64_t n_out : {1, 7, 37}) {
        for (int64_t n_tokens : {1, 3, 7, 17}) {
          CheckMatMul(*backend_, *reference_, type, n_in, n_out, n_tokens);
        }
      }
    }
  }
}

TEST_P(ConformanceTest, RmsNorm) {
  for (int64_t n : {7, 64, 2048}) {
    for (int64_t n_tokens : {1, 3}) {
      const std::vector<float> x = RandomVector(n * n_tokens, 3, 2.0f);
      const std::vector<float> weight = RandomVector(n, 4);
      std::vector<float> got(x.size()), want(x.size());
      reference_->RmsNorm(x.data(), weight.data(), n, n_tokens, 1e-5f, want.data());
      backend_->RmsNorm(x.data(), weight.data(), n, n_tokens, 1e-5f, got.data());
      EXPECT_LE(RelErr(got, want), kOpTolerance) << n;
      std::vector<float> in_place = x;  // out may alias x
      backend_->RmsNorm(in_place.data(), weight.data(), n, n_tokens, 1e-5f, in_place.data());
      EXPECT_LE(RelErr(in_place, want), kOpTolerance) << n;
    }
  }
}

RopeParams Llama3Rope() {
  RopeParams p;
  p.head_dim = p.rope_dim = 64;
  p.freq_base = 500000.0f;
  p.llama3_factor = 32.0f;
  p.llama3_low_freq_factor = 1.0f;
  p.llama3_high_freq_factor = 4.0f;
  p.llama3_original_max_position = 8192;
  return p;
}

constexpr float kFreqFactors[8] = {1.0f, 1.0f, 1.5f, 2.0f, 4.0f, 8.0f, 8.0f, 8.0f};

TEST_P(ConformanceTest, Rope) {
  std::vector<RopeParams> cases;
  for (RopeMode mode : {RopeMode::kAdjacentPairs, RopeMode::kHalves}) {
    RopeParams p;
    p.head_dim = p.rope_dim = 64;
    p.mode = mode;
    cases.push_back(p);
    p.rope_dim = 32;  // partial rotary dims
    cases.push_back(p);
    p = Llama3Rope();
    p.mode = mode;
    cases.push_back(p);
    p = RopeParams();
    p.head_dim = p.rope_dim = 16;
    p.linear_factor = 4.0f;
    p.mode = mode;
    cases.push_back(p);
    p.linear_factor = 1.0f;
    p.freq_factors = kFreqFactors;  // GGUF rope_freqs
    cases.push_back(p);
  }
  const int n_heads = 3;
  const std::vector<int32_t> positions = {0, 1, 17, 1000, 8191, 30000, 131000};
  const int64_t n_tokens = static_cast<int64_t>(positions.size());
  for (const RopeParams& p : cases) {
    SCOPED_TRACE("rope_dim=" + std::to_string(p.rope_dim) +
                 " mode=" + std::to_string(static_cast<int>(p.mode)) +
                 " llama3=" + std::to_string(p.llama3_factor));
    const std::vector<float> x = RandomVector(n_tokens * n_heads * p.head_dim, 11);
    std::vector<float> got = x, want = x;
    reference_->Rope(want.data(), n_tokens, n_heads, positions.data(), p);
    backend_->Rope(got.data(), n_tokens, n_heads, positions.data(), p);
    EXPECT_LE(RelErr(got, want), kOpTolerance);
    // Position 0 is the identity; dims past rope_dim never move.
    for (int i = 0; i < n_heads * p.head_dim; ++i) ASSERT_EQ(got[i], x[i]);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int h = 0; h < n_heads; ++h) {
        for (int d = p.rope_dim; d < p.head_dim; ++d) {
          const int64_t idx = (t * n_heads + h) * p.head_dim + d;
          ASSERT_EQ(got[idx], x[idx]);
        }
      }
    }
  }
}

TEST_P(ConformanceTest, Attention) {
  struct Case {
    int n_heads, n_kv_heads, head_dim;
    int64_t n_tokens;
    int32_t first_pos;
  };
  const Case cases[] = {
      {8, 2, 64, 1, 0}, {8, 2, 64, 3, 5},   {8, 2, 64, 7, 40},  // GQA
      {8, 1, 32, 1, 9}, {8, 1, 32, 17, 3},                      // MQA
      {4, 4, 16, 5, 0}, {4, 4, 16, 1, 300},                     // MHA, long context
      {6, 2, 24, 2, 7}, {2, 1, 12, 3, 2},                       // groups of 3, odd head sizes
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("heads=" + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) +
                 " tokens=" + std::to_string(c.n_tokens) + " first=" + std::to_string(c.first_pos));
    const int64_t n_ctx = c.first_pos + c.n_tokens;
    const std::vector<float> q = RandomVector(c.n_tokens * c.n_heads * c.head_dim, 21);
    const std::vector<float> k = RandomVector(n_ctx * c.n_kv_heads * c.head_dim, 22);
    const std::vector<float> v = RandomVector(n_ctx * c.n_kv_heads * c.head_dim, 23);
    std::vector<int32_t> positions(c.n_tokens);
    for (int64_t t = 0; t < c.n_tokens; ++t) positions[t] = c.first_pos + static_cast<int32_t>(t);
    AttentionParams p{c.n_heads, c.n_kv_heads, c.head_dim,
                      1.0f / std::sqrt(static_cast<float>(c.head_dim))};
    std::vector<float> got(q.size()), want(q.size());
    reference_->Attention(q.data(), k.data(), v.data(), c.n_tokens, positions.data(), p,
                          want.data());
    backend_->Attention(q.data(), k.data(), v.data(), c.n_tokens, positions.data(), p, got.data());
    EXPECT_LE(RelErr(got, want), kOpTolerance);
  }
}

TEST_P(ConformanceTest, AttentionLargeScoresStayFinite) {
  // Scores of several thousand: a softmax without max subtraction overflows.
  const int head_dim = 8;
  const std::vector<float> q = RandomVector(2 * head_dim, 31, 40.0f);
  const std::vector<float> k = RandomVector(6 * head_dim, 32, 40.0f);
  const std::vector<float> v = RandomVector(6 * head_dim, 33);
  const int32_t positions[] = {4, 5};
  AttentionParams p{1, 1, head_dim, 1.0f};
  std::vector<float> got(q.size()), want(q.size());
  reference_->Attention(q.data(), k.data(), v.data(), 2, positions, p, want.data());
  backend_->Attention(q.data(), k.data(), v.data(), 2, positions, p, got.data());
  for (float x : got) ASSERT_TRUE(std::isfinite(x));
  EXPECT_LE(RelErr(got, want), kOpTolerance);
}

TEST_P(ConformanceTest, ElementwiseOps) {
  for (int64_t n : {1, 7, 64, 8192 + 3}) {
    const std::vector<float> a = RandomVector(n, 41, 3.0f), b = RandomVector(n, 42);
    std::vector<float> got(n), want(n);
    reference_->SiluMul(a.data(), b.data(), n, want.data());
    backend_->SiluMul(a.data(), b.data(), n, got.data());
    EXPECT_LE(RelErr(got, want), kOpTolerance) << "silu-mul " << n;
    std::vector<float> alias = a;
    backend_->SiluMul(alias.data(), b.data(), n, alias.data());
    EXPECT_LE(RelErr(alias, want), kOpTolerance) << "silu-mul in place " << n;

    got = a;
    want = a;
    for (int64_t i = 0; i < n; i += 3) got[i] = want[i] = 500.0f + static_cast<float>(i);
    reference_->Softmax(want.data(), n);
    backend_->Softmax(got.data(), n);
    EXPECT_LE(RelErr(got, want), kOpTolerance) << "softmax " << n;
    double sum = 0.0;
    for (float x : got) sum += x;
    EXPECT_NEAR(sum, 1.0, 1e-5);

    // Masked logits (-inf) get probability exactly 0.
    got = a;
    for (int64_t i = 0; i < n; i += 2) got[i] = -INFINITY;
    if (n > 1) {
      backend_->Softmax(got.data(), n);
      for (int64_t i = 0; i < n; i += 2) ASSERT_EQ(got[i], 0.0f) << "softmax -inf " << i;
    }

    got = b;
    want = b;
    reference_->Add(a.data(), n, want.data());
    backend_->Add(a.data(), n, got.data());
    EXPECT_EQ(got, want) << "add " << n;
  }
}

TEST_P(ConformanceTest, EmbeddingLookupIsExactDequantization) {
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                     DType::kQ4_K, DType::kQ6_K}) {
    const int64_t n_in = 512, n_vocab = 5;
    const std::vector<uint8_t> table = RandomWeights(type, n_in, n_vocab, 51);
    const WeightView view{type, table.data(), n_in, n_vocab};
    std::vector<float> got(n_in), want(n_in);
    backend_->EmbeddingLookup(view, 3, got.data());
    DequantizeRow(type, table.data() + 3 * RowBytes(type, n_in), want.data(), n_in);
    EXPECT_EQ(got, want) << Traits(type).name;
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, ConformanceTest,
                         testing::Values(Level{Isa::kScalar, 1}, Level{Isa::kAvx2, 1},
                                         Level{Isa::kAvx2, 2}, Level{Isa::kAvx2, 3},
                                         Level{Isa::kAvx512, 1}, Level{Isa::kAvx512, 2},
                                         Level{Isa::kAvx512, 3},
                                         Level{Isa::kAvx512, 2, /*no_vnni=*/true}),
                         LevelName);

// ---- The reference itself, against independent facts ----

TEST(ReferenceTest, MatMulKnownValues) {
  auto ref = NewReferenceBackend();
  // W = [[1, 2, 3], [4, 5, 6]], x = [[1, 0, -1], [2, 2, 2]].
  const float w[] = {1, 2, 3, 4, 5, 6};
  const float x[] = {1, 0, -1, 2, 2, 2};
  float y[4];
  ref->MatMul({DType::kF32, w, 3, 2}, x, 2, y);
  EXPECT_EQ(y[0], -2.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[2], 12.0f);
  EXPECT_EQ(y[3], 30.0f);
}

TEST(ReferenceTest, Llama3InvFreqMatchesHfFormula) {
  const RopeParams p = Llama3Rope();
  const double two_pi = 2.0 * std::numbers::pi;
  int n_high = 0, n_low = 0, n_mid = 0;
  for (int i = 0; i < 32; ++i) {
    const double base = 1.0 / std::pow(500000.0, 2.0 * i / 64.0);
    const double wavelen = two_pi / base;
    double want;
    if (wavelen < 8192.0 / 4.0) {
      want = base;
      ++n_high;
    } else if (wavelen > 8192.0 / 1.0) {
      want = base / 32.0;
      ++n_low;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - smooth) * base / 32.0 + smooth * base;
      ++n_mid;
    }
    EXPECT_DOUBLE_EQ(RopeInvFreq(p, i), want) << i;
  }
  // Llama-3.2's parameters exercise all three bands.
  EXPECT_GT(n_high, 0);
  EXPECT_GT(n_low, 0);
  EXPECT_GT(n_mid, 0);
  RopeParams lin;
  lin.rope_dim = 64;
  lin.linear_factor = 2.0f;
  EXPECT_DOUBLE_EQ(RopeInvFreq(lin, 5), std::pow(10000.0, -10.0 / 64) / 2.0);
  // GGUF rope_freqs divide the frequency (llama.cpp: theta / freq_factor) and replace llama3.
  std::vector<float> factors(32, 3.0f);
  RopeParams ff = Llama3Rope();
  ff.freq_factors = factors.data();
  EXPECT_DOUBLE_EQ(RopeInvFreq(ff, 7), std::pow(500000.0, -14.0 / 64) / 3.0);
}

TEST(ReferenceTest, RopeLayoutsRotateTheDocumentedPairs) {
  auto ref = NewReferenceBackend();
  RopeParams p;
  p.head_dim = p.rope_dim = 4;
  p.freq_base = 100.0f;  // inv_freq = {1, 0.1}
  const int32_t pos[] = {2};
  float x[] = {1, 0, 0, 1};
  ref->Rope(x, 1, 1, pos, p);  // pairs (0,1) by 2 rad, (2,3) by 0.2 rad
  EXPECT_NEAR(x[0], std::cos(2.0), 1e-7);
  EXPECT_NEAR(x[1], std::sin(2.0), 1e-7);
  EXPECT_NEAR(x[2], -std::sin(0.2), 1e-7);
  EXPECT_NEAR(x[3], std::cos(0.2), 1e-7);
  p.mode = RopeMode::kHalves;
  float y[] = {1, 0, 0, 1};
  ref->Rope(y, 1, 1, pos, p);  // pairs (0,2) by 2 rad, (1,3) by 0.2 rad
  EXPECT_NEAR(y[0], std::cos(2.0), 1e-7);
  EXPECT_NEAR(y[2], std::sin(2.0), 1e-7);
  EXPECT_NEAR(y[1], -std::sin(0.2), 1e-7);
  EXPECT_NEAR(y[3], std::cos(0.2), 1e-7);
}

TEST(ReferenceTest, RopeScoresDependOnlyOnRelativePosition) {
  auto ref = NewReferenceBackend();
  for (RopeMode mode : {RopeMode::kAdjacentPairs, RopeMode::kHalves}) {
    RopeParams p = Llama3Rope();
    p.mode = mode;
    const std::vector<float> q = RandomVector(64, 61), k = RandomVector(64, 62);
    auto score = [&](int32_t m, int32_t n) {
      std::vector<float> qr = q, kr = k;
      ref->Rope(qr.data(), 1, 1, &m, p);
      ref->Rope(kr.data(), 1, 1, &n, p);
      double s = 0;
      for (int i = 0; i < 64; ++i) s += static_cast<double>(qr[i]) * kr[i];
      return s;
    };
    EXPECT_NEAR(score(10, 3), score(107, 100), 1e-4);
    EXPECT_NEAR(score(5, 5), score(0, 0), 1e-4);
  }
}

TEST(ReferenceTest, AttentionKnownValues) {
  auto ref = NewReferenceBackend();
  // One head, two keys: scores 0 and ln(3) -> weights 1/4, 3/4.
  const float q[] = {1.0f, 0.0f};
  const float k[] = {0.0f, 5.0f, static_cast<float>(std::log(3.0)), 0.0f};
  const float v[] = {4.0f, 8.0f, 0.0f, -4.0f};
  const int32_t pos[] = {1};
  float out[2];
  ref->Attention(q, k, v, 1, pos, {1, 1, 2, 1.0f}, out);
  EXPECT_NEAR(out[0], 1.0f, 1e-6);
  EXPECT_NEAR(out[1], -1.0f, 1e-6);
  // Causality: at position 0 only the first key/value is visible.
  const int32_t pos0[] = {0};
  ref->Attention(q, k, v, 1, pos0, {1, 1, 2, 1.0f}, out);
  EXPECT_EQ(out[0], 4.0f);
  EXPECT_EQ(out[1], 8.0f);
}

TEST(ReferenceTest, GqaHeadsReadTheirGroupsKvHead) {
  auto ref = NewReferenceBackend();
  // 4 query heads, 2 kv heads, head_dim 1, one key: head h must return v of kv head h / 2.
  const float q[] = {1, 1, 1, 1};
  const float k[] = {1, 1};
  const float v[] = {10, 20};
  const int32_t pos[] = {0};
  float out[4];
  ref->Attention(q, k, v, 1, pos, {4, 2, 1, 1.0f}, out);
  EXPECT_EQ(out[0], 10.0f);
  EXPECT_EQ(out[1], 10.0f);
  EXPECT_EQ(out[2], 20.0f);
  EXPECT_EQ(out[3], 20.0f);
}

TEST(ReferenceTest, SmallOpsKnownValues) {
  auto ref = NewReferenceBackend();
  float x[] = {0.0f, std::log(3.0f)};
  ref->Softmax(x, 2);
  EXPECT_NEAR(x[0], 0.25f, 1e-7);
  EXPECT_NEAR(x[1], 0.75f, 1e-7);
  const float g[] = {0.0f, 1.0f}, u[] = {5.0f, 2.0f};
  float o[2];
  ref->SiluMul(g, u, 2, o);
  EXPECT_EQ(o[0], 0.0f);
  EXPECT_NEAR(o[1], 2.0f / (1.0f + std::exp(-1.0f)), 1e-7);
  const float r[] = {3.0f, 4.0f}, wt[] = {1.0f, 2.0f};
  float n[2];
  ref->RmsNorm(r, wt, 2, 1, 0.0f, n);  // rms = sqrt(12.5)
  EXPECT_NEAR(n[0], 3.0f / std::sqrt(12.5f), 1e-6);
  EXPECT_NEAR(n[1], 8.0f / std::sqrt(12.5f), 1e-6);
}

}  // namespace
}  // namespace weft::kernels
