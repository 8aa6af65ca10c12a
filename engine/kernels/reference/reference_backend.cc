// SPDX-License-Identifier: Apache-2.0
#include "engine/kernels/reference/reference_backend.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "base/check.h"

namespace weft::kernels {

double RopeInvFreq(const RopeParams& p, int i) {
  const double inv_freq = std::pow(static_cast<double>(p.freq_base), -2.0 * i / p.rope_dim);
  if (p.freq_factors != nullptr) return inv_freq / p.freq_factors[i] / p.linear_factor;
  if (p.llama3_factor > 1.0f) {
    // HF transformers _compute_llama3_parameters (== llama.cpp's rope_freqs factors).
    const double factor = p.llama3_factor;
    const double low = p.llama3_low_freq_factor, high = p.llama3_high_freq_factor;
    const double old_ctx = p.llama3_original_max_position;
    const double low_freq_wavelen = old_ctx / low;
    const double high_freq_wavelen = old_ctx / high;
    const double wavelen = 2.0 * std::numbers::pi / inv_freq;
    if (wavelen < high_freq_wavelen) return inv_freq;
    if (wavelen > low_freq_wavelen) return inv_freq / factor;
    const double smooth = (old_ctx / wavelen - low) / (high - low);
    return (1.0 - smooth) * inv_freq / factor + smooth * inv_freq;
  }
  return inv_freq / p.linear_factor;
}

namespace {

class ReferenceBackend final : public Backend {
 public:
  Isa isa() const override { return Isa::kScalar; }
  int n_threads() const override { return 1; }

  void MatMul(const WeightView& w, const float* x, int64_t n_tokens, float* y) override {
    const int64_t row_bytes = RowBytes(w.type, w.n_in);
    std::vector<float> row(w.n_in);
    for (int64_t o = 0; o < w.n_out; ++o) {
      DequantizeRow(w.type, static_cast<const uint8_t*>(w.data) + o * row_bytes, row.data(),
                    w.n_in);
      for (int64_t t = 0; t < n_tokens; ++t) {
        double sum = 0.0;
        for (int64_t i = 0; i < w.n_in; ++i) sum += static_cast<double>(row[i]) * x[t * w.n_in + i];
        y[t * w.n_out + o] = static_cast<float>(sum);
      }
    }
  }

  void RmsNorm(const float* x, const float* weight, int64_t n, int64_t n_tokens, float eps,
               float* out) override {
    for (int64_t t = 0; t < n_tokens; ++t) {
      double ss = 0.0;
      for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[t * n + i]) * x[t * n + i];
      const double scale = 1.0 / std::sqrt(ss / n + eps);
      for (int64_t i = 0; i < n; ++i) {
        out[t * n + i] = static_cast<float>(x[t * n + i] * scale * weight[i]);
      }
    }
  }

  void Rope(float* x, int64_t n_tokens, int n_heads, const int32_t* positions,
            const RopeParams& p) override {
    WEFT_CHECK(p.rope_dim % 2 == 0 && p.rope_dim <= p.head_dim);
    const int half = p.rope_dim / 2;
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * p.head_dim;
        for (int i = 0; i < half; ++i) {
          const double theta = positions[t] * RopeInvFreq(p, i);
          const double c = std::cos(theta), s = std::sin(theta);
          const int a = p.mode == RopeMode::kAdjacentPairs ? 2 * i : i;
          const int b = p.mode == RopeMode::kAdjacentPairs ? 2 * i + 1 : i + half;
          const double x0 = v[a], x1 = v[b];
          v[a] = static_cast<float>(x0 * c - x1 * s);
          v[b] = static_cast<float>(x0 * s + x1 * c);
        }
      }
    }
  }

  void Attention(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens,
                 const int32_t* positions, const AttentionParams& p, float* out) override {
    WEFT_CHECK(p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0);
    const int group = p.n_heads / p.n_kv_heads;
    const int64_t kv_stride = static_cast<int64_t>(p.n_kv_heads) * p.head_dim;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int64_t n_keys = positions[t] + 1;
      std::vector<double> score(n_keys);
      for (int h = 0; h < p.n_heads; ++h) {
        const float* qh = q + (t * p.n_heads + h) * p.head_dim;
        const int kvh = h / group;
        double max = -INFINITY;
        for (int64_t j = 0; j < n_keys; ++j) {
          const float* k = k_cache + j * kv_stride + kvh * p.head_dim;
          double dot = 0.0;
          for (int d = 0; d < p.head_dim; ++d) dot += static_cast<double>(qh[d]) * k[d];
          score[j] = dot * p.scale;
          max = std::max(max, score[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < n_keys; ++j) {
          score[j] = std::exp(score[j] - max);
          sum += score[j];
        }
        float* o = out + (t * p.n_heads + h) * p.head_dim;
        for (int d = 0; d < p.head_dim; ++d) {
          double acc = 0.0;
          for (int64_t j = 0; j < n_keys; ++j) {
            acc += score[j] * v_cache[j * kv_stride + kvh * p.head_dim + d];
          }
          o[d] = static_cast<float>(acc / sum);
        }
      }
    }
  }

  void SiluMul(const float* gate, const float* up, int64_t n, float* out) override {
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i];
      out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
    }
  }

  void Softmax(float* x, int64_t n) override {
    double max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::max(max, static_cast<double>(x[i]));
    std::vector<double> e(n);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      e[i] = std::exp(x[i] - max);
      sum += e[i];
    }
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(e[i] / sum);
  }

  void EmbeddingLookup(const WeightView& table, int32_t token, float* out) override {
    WEFT_CHECK(token >= 0 && token < table.n_out);
    DequantizeRow(
        table.type,
        static_cast<const uint8_t*>(table.data) + token * RowBytes(table.type, table.n_in), out,
        table.n_in);
  }

  void Add(const float* x, int64_t n, float* y) override {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  }
};

}  // namespace

std::unique_ptr<Backend> NewReferenceBackend() { return std::make_unique<ReferenceBackend>(); }

}  // namespace weft::kernels
