// SPDX-License-Identifier: Apache-2.0
// The reference PagedAttention (Backend's default): scores in double, a stable softmax, then the
// weighted sum of values, reading each key/value row through the block table.
#include <algorithm>
#include <cmath>
#include <vector>

#include "base/check.h"
#include "engine/kernels/kernels.h"

namespace weft::kernels {

void Backend::PagedAttention(const float* q, const float* k_pool, const float* v_pool,
                             const int32_t* block_table, int block_size, int64_t n_tokens,
                             const int32_t* positions, const AttentionParams& p, float* out) {
  WEFT_CHECK(p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 && block_size > 0);
  const int group = p.n_heads / p.n_kv_heads;
  const int64_t kv_stride = static_cast<int64_t>(p.n_kv_heads) * p.head_dim;
  std::vector<double> scores;
  std::vector<double> acc(p.head_dim);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t n_keys = positions[t] + 1;
    scores.resize(n_keys);
    for (int h = 0; h < p.n_heads; ++h) {
      const float* qh = q + (t * p.n_heads + h) * p.head_dim;
      const int64_t kv_off = static_cast<int64_t>(h / group) * p.head_dim;
      double max = -INFINITY;
      for (int64_t j = 0; j < n_keys; ++j) {
        const int64_t row =
            static_cast<int64_t>(block_table[j / block_size]) * block_size + j % block_size;
        const float* k = k_pool + row * kv_stride + kv_off;
        double s = 0;
        for (int d = 0; d < p.head_dim; ++d) s += static_cast<double>(qh[d]) * k[d];
        scores[j] = s * p.scale;
        max = std::max(max, scores[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < n_keys; ++j) {
        scores[j] = std::exp(scores[j] - max);
        sum += scores[j];
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < n_keys; ++j) {
        const int64_t row =
            static_cast<int64_t>(block_table[j / block_size]) * block_size + j % block_size;
        const float* v = v_pool + row * kv_stride + kv_off;
        const double w = scores[j] / sum;
        for (int d = 0; d < p.head_dim; ++d) acc[d] += w * v[d];
      }
      float* o = out + (t * p.n_heads + h) * p.head_dim;
      for (int d = 0; d < p.head_dim; ++d) o[d] = static_cast<float>(acc[d]);
    }
  }
}

}  // namespace weft::kernels
