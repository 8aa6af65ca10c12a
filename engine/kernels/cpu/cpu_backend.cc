// SPDX-License-Identifier: Apache-2.0
#include "engine/kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "base/thread_pool.h"
#include "engine/kernels/reference/reference_backend.h"

namespace weft::kernels {
namespace {

// Output rows per unit of work: a block of weight rows stays in cache while every token tile of
// the prompt passes over it (the reuse that makes prefill fast).
constexpr int64_t kRowBlock = 16;
constexpr int64_t kMinParallelMacs = 64 * 1024;
constexpr int kMaxAttendHeads = 4;  // query heads per IsaKernels::attend call

class CpuBackend final : public Backend {
 public:
  CpuBackend(Isa isa, const IsaKernels* k, int n_threads)
      : isa_(isa), k_(k), pool_(n_threads), scores_(n_threads) {}

  Isa isa() const override { return isa_; }
  int n_threads() const override { return pool_.n_threads(); }

  void MatMul(const WeightView& w, const float* x, int64_t n_tokens, float* y) override {
    const RowDotFn fn = k_->For(w.type);
    WEFT_CHECK(fn != nullptr);
    WEFT_CHECK(w.n_in % Traits(w.type).block_size == 0);
    const int64_t n_in = w.n_in, n_out = w.n_out;
    PreparedX px;
    px.n_in = n_in;
    Prepare(w.type, x, n_tokens, &px);

    const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
    const int64_t row_bytes = RowBytes(w.type, n_in);
    // Dynamic chunks of rows (an atomic counter) so a thread slowed by a neighbour process does
    // not hold up the step; at least 4 chunks per thread.
    const int nth = pool_.n_threads();
    int64_t chunk =
        std::max<int64_t>(kRowBlock, (n_out / (4 * nth) + kRowBlock - 1) / kRowBlock * kRowBlock);
    if (n_tokens >= 8) chunk = kRowBlock;
    const int64_t n_chunks = (n_out + chunk - 1) / chunk;
    std::atomic<int64_t> next{0};
    auto work = [&](int, int) {
      for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n_chunks;
           c = next.fetch_add(1, std::memory_order_relaxed)) {
        const int64_t r_end = std::min(n_out, (c + 1) * chunk);
        for (int64_t rb = c * chunk; rb < r_end; rb += kRowBlock) {
          const int64_t re = std::min(r_end, rb + kRowBlock);
          for (int64_t t0 = 0; t0 < n_tokens; t0 += kMaxTokenTile) {
            const int nt = static_cast<int>(std::min<int64_t>(kMaxTokenTile, n_tokens - t0));
            for (int64_t r = rb; r < re; ++r) {
              fn(wdata + r * row_bytes, px, t0, nt, y + t0 * n_out + r, n_out);
            }
          }
        }
      }
    };
    // Below ~64K multiply-adds a wake-up of the pool costs more than the work.
    if (n_chunks == 1 || n_in * n_out * n_tokens < kMinParallelMacs) {
      work(0, 1);
    } else {
      pool_.Run(work);
    }
  }

  void RmsNorm(const float* x, const float* weight, int64_t n, int64_t n_tokens, float eps,
               float* out) override {
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * n;
      const float ss = k_->dot(xt, xt, n);
      const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
      float* ot = out + t * n;
      for (int64_t i = 0; i < n; ++i) ot[i] = xt[i] * scale * weight[i];
    }
  }

  void Rope(float* x, int64_t n_tokens, int n_heads, const int32_t* positions,
            const RopeParams& p) override {
    WEFT_CHECK(p.rope_dim % 2 == 0 && p.rope_dim <= p.head_dim);
    const int half = p.rope_dim / 2;
    // The frequencies depend only on the parameters: recompute them when those change.
    factors_.assign(p.freq_factors, p.freq_factors != nullptr ? p.freq_factors + half : nullptr);
    if (inv_freq_params_.rope_dim != p.rope_dim || inv_freq_params_.freq_base != p.freq_base ||
        inv_freq_params_.llama3_factor != p.llama3_factor ||
        inv_freq_params_.llama3_low_freq_factor != p.llama3_low_freq_factor ||
        inv_freq_params_.llama3_high_freq_factor != p.llama3_high_freq_factor ||
        inv_freq_params_.llama3_original_max_position != p.llama3_original_max_position ||
        inv_freq_params_.linear_factor != p.linear_factor || inv_freq_factors_ != factors_) {
      inv_freq_.resize(half);
      for (int i = 0; i < half; ++i) inv_freq_[i] = RopeInvFreq(p, i);
      inv_freq_params_ = p;
      inv_freq_factors_ = factors_;
    }
    cos_.resize(half);
    sin_.resize(half);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int i = 0; i < half; ++i) {
        const double theta = positions[t] * inv_freq_[i];
        cos_[i] = static_cast<float>(std::cos(theta));
        sin_[i] = static_cast<float>(std::sin(theta));
      }
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * p.head_dim;
        if (p.mode == RopeMode::kAdjacentPairs) {
          for (int i = 0; i < half; ++i) {
            const float x0 = v[2 * i], x1 = v[2 * i + 1];
            v[2 * i] = x0 * cos_[i] - x1 * sin_[i];
            v[2 * i + 1] = x0 * sin_[i] + x1 * cos_[i];
          }
        } else {
          for (int i = 0; i < half; ++i) {
            const float x0 = v[i], x1 = v[i + half];
            v[i] = x0 * cos_[i] - x1 * sin_[i];
            v[i + half] = x0 * sin_[i] + x1 * cos_[i];
          }
        }
      }
    }
  }

  void Attention(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens,
                 const int32_t* positions, const AttentionParams& p, float* out) override {
    WEFT_CHECK(p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0);
    const int group = p.n_heads / p.n_kv_heads;
    const int64_t kv_stride = static_cast<int64_t>(p.n_kv_heads) * p.head_dim;
    int64_t max_keys = 0;
    for (int64_t t = 0; t < n_tokens; ++t) max_keys = std::max<int64_t>(max_keys, positions[t] + 1);
    for (auto& s : scores_) {
      if (static_cast<int64_t>(s.size()) < kMaxAttendHeads * max_keys) {
        s.resize(kMaxAttendHeads * max_keys);
      }
    }
    // Work items: (token, kv head, up to 4 query heads of its group), so each thread reads a
    // K/V row once for several heads, and MQA still splits over threads.
    const int subgroups = (group + kMaxAttendHeads - 1) / kMaxAttendHeads;
    const int64_t n_items = n_tokens * p.n_kv_heads * subgroups;
    std::atomic<int64_t> next{0};
    auto work = [&](int ith, int) {
      float* score = scores_[ith].data();
      for (int64_t item = next.fetch_add(1); item < n_items; item = next.fetch_add(1)) {
        const int64_t t = item / (p.n_kv_heads * subgroups);
        const int kvh = static_cast<int>(item / subgroups % p.n_kv_heads);
        const int sub = static_cast<int>(item % subgroups);
        const int h0 = kvh * group + sub * kMaxAttendHeads;
        const int g = std::min(kMaxAttendHeads, group - sub * kMaxAttendHeads);
        const int64_t kv_off = static_cast<int64_t>(kvh) * p.head_dim;
        const int64_t row = t * p.n_heads + h0;
        k_->attend(q + row * p.head_dim, g, k_cache + kv_off, v_cache + kv_off, kv_stride,
                   positions[t] + 1, p.head_dim, p.scale, score, out + row * p.head_dim);
      }
    };
    if (n_tokens * p.n_heads * max_keys * p.head_dim < 32768) {
      work(0, 1);
    } else {
      pool_.Run(work);
    }
  }

  void PagedAttention(const float* q, const float* k_pool, const float* v_pool,
                      const int32_t* block_table, int block_size, int64_t n_tokens,
                      const int32_t* positions, const AttentionParams& p, float* out) override {
    WEFT_CHECK(p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 && block_size > 0);
    const int group = p.n_heads / p.n_kv_heads;
    const int64_t kv_stride = static_cast<int64_t>(p.n_kv_heads) * p.head_dim;
    int64_t max_keys = 0;
    for (int64_t t = 0; t < n_tokens; ++t) max_keys = std::max<int64_t>(max_keys, positions[t] + 1);
    for (auto& s : scores_) {
      if (static_cast<int64_t>(s.size()) < kMaxAttendHeads * max_keys) {
        s.resize(kMaxAttendHeads * max_keys);
      }
    }
    // Work items: (kv head, a tile of up to 4 query rows of its group), rows ordered token-major
    // ((t, h) for the group's heads h), so a tile holds several heads (GQA) or several nearby
    // tokens of the sequence (prefill), and each K/V row is read once per tile.
    const int64_t rows_per_kv = n_tokens * group;
    const int64_t tiles_per_kv = (rows_per_kv + kMaxAttendHeads - 1) / kMaxAttendHeads;
    const int64_t n_items = p.n_kv_heads * tiles_per_kv;
    std::atomic<int64_t> next{0};
    auto work = [&](int ith, int) {
      float* score = scores_[ith].data();
      const float* qs[kMaxAttendHeads];
      float* outs[kMaxAttendHeads];
      int64_t n_keys[kMaxAttendHeads];
      for (int64_t item = next.fetch_add(1); item < n_items; item = next.fetch_add(1)) {
        const int kvh = static_cast<int>(item / tiles_per_kv);
        const int64_t r0 = item % tiles_per_kv * kMaxAttendHeads;
        const int g = static_cast<int>(std::min<int64_t>(kMaxAttendHeads, rows_per_kv - r0));
        int64_t tile_keys = 0;
        for (int i = 0; i < g; ++i) {
          const int64_t t = (r0 + i) / group;
          const int64_t row = t * p.n_heads + kvh * group + (r0 + i) % group;
          qs[i] = q + row * p.head_dim;
          outs[i] = out + row * p.head_dim;
          n_keys[i] = positions[t] + 1;
          tile_keys = std::max(tile_keys, n_keys[i]);
        }
        const int64_t kv_off = static_cast<int64_t>(kvh) * p.head_dim;
        k_->attend_paged(qs, n_keys, g, k_pool + kv_off, v_pool + kv_off, block_table, block_size,
                         kv_stride, p.head_dim, p.scale, score, tile_keys, outs);
      }
    };
    if (n_tokens * p.n_heads * max_keys * p.head_dim < 32768) {
      work(0, 1);
    } else {
      pool_.Run(work);
    }
  }

  void SiluMul(const float* gate, const float* up, int64_t n, float* out) override {
    k_->silu_mul(gate, up, n, out);
  }

  void Softmax(float* x, int64_t n) override {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) max = std::max(max, x[i]);
    const float inv = static_cast<float>(1.0 / k_->exp_sub_sum(x, n, max));
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
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

 private:
  // Quantizes x once per MatMul into the activation format of the weight type's kernel.
  void Prepare(DType type, const float* x, int64_t n_tokens, PreparedX* px) {
    const int64_t n_in = px->n_in;
    switch (type) {
      case DType::kF32:
      case DType::kF16:
      case DType::kBF16:
        px->f32 = x;
        return;
      case DType::kQ8_0:
      case DType::kQ4_0: {
        const int64_t nb = n_in / kQK;
        q8_.resize(n_tokens * n_in);
        d_.resize(n_tokens * nb);
        s_.resize(n_tokens * nb);
        const bool interleave = type == DType::kQ4_0 && k_->q4_0_pair_interleave;
        const bool offset = type == DType::kQ8_0 && k_->q8_0_offset_codes;
        auto quantize = [&](int64_t begin, int64_t end) {
          for (int64_t t = begin; t < end; ++t) {
            k_->quantize_q8(x + t * n_in, n_in, interleave, offset, q8_.data() + t * n_in,
                            d_.data() + t * nb, s_.data() + t * nb);
          }
        };
        if (n_tokens >= 4) {
          pool_.ParallelFor(n_tokens, quantize);
        } else {
          quantize(0, n_tokens);
        }
        px->q8 = q8_.data();
        px->d = d_.data();
        px->s = s_.data();
        return;
      }
      case DType::kQ4_K:
      case DType::kQ6_K: {
        const int64_t nb = n_in / kQKK;
        q8k_.resize(n_tokens * nb);
        auto quantize = [&](int64_t begin, int64_t end) {
          for (int64_t t = begin; t < end; ++t) {
            QuantizeRowQ8K(x + t * n_in, q8k_.data() + t * nb, n_in);
          }
        };
        if (n_tokens >= 4) {
          pool_.ParallelFor(n_tokens, quantize);
        } else {
          quantize(0, n_tokens);
        }
        px->q8k = q8k_.data();
        return;
      }
      default:
        WEFT_CHECK(false && "unsupported weight type");
    }
  }

  const Isa isa_;
  const IsaKernels* const k_;
  ThreadPool pool_;
  // Scratch reused across calls (no allocation in steady state).
  std::vector<int8_t> q8_;
  std::vector<float> d_, s_;
  std::vector<BlockQ8_K> q8k_;
  std::vector<std::vector<float>> scores_;         // [n_threads][max keys]
  RopeParams inv_freq_params_;                     // parameters inv_freq_ was computed for
  std::vector<float> factors_, inv_freq_factors_;  // p.freq_factors now / for inv_freq_
  std::vector<double> inv_freq_;
  std::vector<float> cos_, sin_;
};

}  // namespace

std::unique_ptr<Backend> NewCpuBackend(Isa isa, const IsaKernels* kernels, int n_threads) {
  return std::make_unique<CpuBackend>(isa, kernels, n_threads);
}

}  // namespace weft::kernels
