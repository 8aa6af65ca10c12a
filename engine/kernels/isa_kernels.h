// SPDX-License-Identifier: Apache-2.0
// Internal: the per-instruction-set pieces of the CPU backend (dot products of one weight row
// against prepared activations, f32 dot/axpy), one table per ISA level compiled with its own
// flags. Tables are immutable; the functions are pure and may run on any thread.
#pragma once

#include <cstdint>

#include "engine/kernels/block_formats.h"
#include "engine/kernels/dtype.h"

namespace weft::kernels {

// Activations prepared once per MatMul for the weight type's dot kernel.
struct PreparedX {
  int64_t n_in = 0;
  const float* f32 = nullptr;      // [n_tokens, n_in] for F32/F16/BF16 weights
  const int8_t* q8 = nullptr;      // [n_tokens, n_in] Q8 codes for Q8_0/Q4_0 (order: see below)
  const float* d = nullptr;        // [n_tokens, n_in / 32] scale of each 32-block of codes
  const float* s = nullptr;        // [n_tokens, n_in / 32] d * sum(codes) of each block
  const BlockQ8_K* q8k = nullptr;  // [n_tokens, n_in / 256] for Q4_K/Q6_K weights
};

// Largest token tile a RowDotFn handles in one call (weights are unpacked once per tile).
inline constexpr int kMaxTokenTile = 4;

// y[t * y_stride] = dot(weight row, activations of token t0 + t) for t in [0, nt), 1 <= nt <= 4.
using RowDotFn = void (*)(const void* w_row, const PreparedX& x, int64_t t0, int nt, float* y,
                          int64_t y_stride);

struct IsaKernels {
  RowDotFn dot_f32, dot_f16, dot_bf16, dot_q8_0, dot_q4_0, dot_q4_k, dot_q6_k;
  // Q4_0 activation codes are stored with each pair of blocks (2k, 2k+1) interleaved by 16-byte
  // halves: [b0 0..15, b1 0..15, b0 16..31, b1 16..31] (matches the 512-bit nibble unpack).
  bool q4_0_pair_interleave = false;
  // Q8_0 activation codes are stored offset by +128 as unsigned bytes (so vpdpbusd takes them as
  // its unsigned operand and the signed weights directly, with no sign trick per token).
  bool q8_0_offset_codes = false;
  // Quantizes one token's n (multiple of 32) activations to Q8 blocks of 32: codes q[n] (in the
  // Q4_0 pair-interleaved order when `pair_interleave`; as code + 128 in unsigned bytes when
  // `offset_codes`), scales d[n / 32] = max|x| / 127 and s[n / 32] = d * sum(codes).
  void (*quantize_q8)(const float* x, int64_t n, bool pair_interleave, bool offset_codes, int8_t* q,
                      float* d, float* s);
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, int64_t n, float* y);  // y += a * x
  // out[i] = silu(gate[i]) * up[i]; out may alias gate.
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  // Causal-attention core for g (1..4) query heads sharing one kv head: q holds the g heads'
  // rows (head_dim each, contiguous), key/value j is at k / v + j * kv_stride; scores is scratch
  // [g, n_keys]; out gets the g heads' rows. Each K/V row is read once for all g heads.
  void (*attend)(const float* q, int g, const float* k, const float* v, int64_t kv_stride,
                 int64_t n_keys, int head_dim, float scale, float* scores, float* out);
  // Paged causal-attention core for g (1..4) query rows q[h] (heads of one kv group and/or
  // tokens of one sequence), row h attending to keys 0..n_keys[h]-1; key j is row
  // block_table[j / block_size] * block_size + j % block_size of k / v (offset to the kv head),
  // rows kv_stride floats apart. scores: scratch [g, score_stride >= max n_keys]; out[h]: row h's
  // output (head_dim floats). Each K/V row is read once for all g rows.
  void (*attend_paged)(const float* const* q, const int64_t* n_keys, int g, const float* k,
                       const float* v, const int32_t* block_table, int block_size,
                       int64_t kv_stride, int head_dim, float scale, float* scores,
                       int64_t score_stride, float* const* out);
  // x[i] = exp(x[i] - max) in place; returns the sum (in double).
  double (*exp_sub_sum)(float* x, int64_t n, float max);

  RowDotFn For(DType t) const {
    switch (t) {
      case DType::kF32:
        return dot_f32;
      case DType::kF16:
        return dot_f16;
      case DType::kBF16:
        return dot_bf16;
      case DType::kQ8_0:
        return dot_q8_0;
      case DType::kQ4_0:
        return dot_q4_0;
      case DType::kQ4_K:
        return dot_q4_k;
      case DType::kQ6_K:
        return dot_q6_k;
      default:
        return nullptr;
    }
  }
};

// Null when the level is not compiled in (non-x86 builds).
const IsaKernels* Avx2Kernels();
const IsaKernels* Avx512Kernels();      // AVX-512 F/BW/VL
const IsaKernels* Avx512VnniKernels();  // plus VNNI (vpdpbusd)

}  // namespace weft::kernels
