// SPDX-License-Identifier: Apache-2.0
// The engine's small op set on CPU: matmul for each weight type, RMSNorm, RoPE, attention,
// SiLU-mul, softmax, embedding lookup. A Backend binds one instruction-set level (scalar reference,
// AVX2, AVX-512, chosen at run time) and a thread pool. A Backend is used by one thread at a time
// (the engine's step thread); its ops block until done. Float tensors are row-major f32.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "engine/kernels/dtype.h"

namespace weft {
class ThreadPool;
}

namespace weft::kernels {

enum class Isa { kScalar, kAvx2, kAvx512 };
std::string_view IsaName(Isa isa);
Isa BestIsa();               // the best level this CPU supports
bool IsaSupported(Isa isa);  // compiled in and supported by this CPU

// A weight matrix: n_out rows of n_in elements of `type`; row r starts at data + r * RowBytes.
struct WeightView {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t n_in = 0;   // ne[0]
  int64_t n_out = 0;  // ne[1]
};

enum class RopeMode { kAdjacentPairs, kHalves };

struct RopeParams {
  int head_dim = 0;
  int rope_dim = 0;  // leading dims of each head that rotate (== head_dim for Llama)
  float freq_base = 10000.0f;
  RopeMode mode = RopeMode::kAdjacentPairs;
  // Llama-3 scaling (factor > 1 enables; linear scaling uses `linear_factor`).
  float llama3_factor = 0.0f;
  float llama3_low_freq_factor = 1.0f;
  float llama3_high_freq_factor = 4.0f;
  int llama3_original_max_position = 8192;
  float linear_factor = 1.0f;
  // Optional per-pair frequency divisors [rope_dim / 2] (GGUF `rope_freqs.weight`, which llama.cpp
  // writes for Llama-3 scaling instead of the parameters): theta_i = pos * inv_freq_i / factors[i].
  // When set, the llama3_* fields are ignored.
  const float* freq_factors = nullptr;
};

struct AttentionParams {
  int n_heads = 0;
  int n_kv_heads = 0;  // GQA/MQA: head h reads kv head h / (n_heads / n_kv_heads)
  int head_dim = 0;
  float scale = 0;  // usually 1/sqrt(head_dim)
};

struct BackendOptions {
  Isa isa = BestIsa();
  int n_threads = 1;
};

class Backend {
 public:
  static std::unique_ptr<Backend> Create(const BackendOptions& options);
  virtual ~Backend() = default;
  virtual Isa isa() const = 0;
  virtual int n_threads() const = 0;

  // y[t, o] = sum_i W[o, i] * x[t, i]. x: [n_tokens, n_in], y: [n_tokens, n_out].
  virtual void MatMul(const WeightView& w, const float* x, int64_t n_tokens, float* y) = 0;
  // out[t] = x[t] / rms(x[t]) * weight; x, out: [n_tokens, n]; out may alias x.
  virtual void RmsNorm(const float* x, const float* weight, int64_t n, int64_t n_tokens, float eps,
                       float* out) = 0;
  // Rotates x in place: x [n_tokens, n_heads, head_dim]; positions[n_tokens].
  virtual void Rope(float* x, int64_t n_tokens, int n_heads, const int32_t* positions,
                    const RopeParams& p) = 0;
  // Causal attention of n_tokens queries at positions[t] over cached keys/values 0..positions[t].
  // q: [n_tokens, n_heads, head_dim]; k_cache, v_cache: [n_ctx, n_kv_heads, head_dim];
  // out: [n_tokens, n_heads, head_dim].
  virtual void Attention(const float* q, const float* k_cache, const float* v_cache,
                         int64_t n_tokens, const int32_t* positions, const AttentionParams& p,
                         float* out) = 0;
  // Attention as above, but keys/values live in a paged pool: position j of the sequence is row
  // block_table[j / block_size] * block_size + j % block_size of k_pool / v_pool
  // ([n_pool_rows, n_kv_heads, head_dim]). The default is the scalar reference; backends override.
  virtual void PagedAttention(const float* q, const float* k_pool, const float* v_pool,
                              const int32_t* block_table, int block_size, int64_t n_tokens,
                              const int32_t* positions, const AttentionParams& p, float* out);
  // out[i] = silu(gate[i]) * up[i], n elements; out may alias gate.
  virtual void SiluMul(const float* gate, const float* up, int64_t n, float* out) = 0;
  // In-place softmax over n elements.
  virtual void Softmax(float* x, int64_t n) = 0;
  // out[i] = row `token` of the table, dequantized to f32 (n_in elements).
  virtual void EmbeddingLookup(const WeightView& table, int32_t token, float* out) = 0;
  // y[i] += x[i].
  virtual void Add(const float* x, int64_t n, float* y) = 0;
};

// Dequantizes n elements (a multiple of the block size) of `type` into f32; exact to the format.
void DequantizeRow(DType type, const void* src, float* dst, int64_t n);
// Quantizes n f32 elements into `type` (round-to-nearest as llama.cpp's reference quantizers).
void QuantizeRow(DType type, const float* src, void* dst, int64_t n);

float Fp16ToFp32(uint16_t h);
uint16_t Fp32ToFp16(float f);
float Bf16ToFp32(uint16_t h);
uint16_t Fp32ToBf16(float f);

}  // namespace weft::kernels
