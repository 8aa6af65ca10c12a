// SPDX-License-Identifier: Apache-2.0
// PagedAttention on every ISA level against the contiguous reference Attention: the same keys and
// values scattered over a shuffled block table give the same output (GQA, MQA, odd block sizes,
// positions not starting at 0).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "engine/kernels/kernels.h"
#include "gtest/gtest.h"

namespace weft::kernels {
namespace {

struct Shape {
  int n_heads, n_kv_heads, head_dim, block_size;
  int64_t n_tokens;
  int32_t first_pos;
};

class PagedAttentionTest : public ::testing::TestWithParam<Isa> {};

TEST_P(PagedAttentionTest, MatchesContiguousReference) {
  const Isa isa = GetParam();
  if (!IsaSupported(isa)) GTEST_SKIP() << IsaName(isa) << " not on this CPU";
  auto ref = Backend::Create({Isa::kScalar, 1});
  auto be = Backend::Create({isa, 2});
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (const Shape& s : std::vector<Shape>{{8, 2, 16, 16, 1, 40},
                                           {8, 8, 8, 4, 7, 0},
                                           {4, 1, 32, 5, 3, 17},
                                           {12, 12, 64, 16, 17, 100},
                                           {6, 3, 24, 1, 2, 9},
                                           {4, 2, 12, 4, 6, 3},
                                           {8, 1, 64, 16, 33, 5}}) {
    const int64_t kv_dim = static_cast<int64_t>(s.n_kv_heads) * s.head_dim;
    const int64_t q_dim = static_cast<int64_t>(s.n_heads) * s.head_dim;
    const int64_t n_ctx = s.first_pos + s.n_tokens;
    const int n_blocks = static_cast<int>((n_ctx + s.block_size - 1) / s.block_size);
    const int pool_blocks = n_blocks + 3;  // spare blocks hold garbage
    std::vector<float> k(n_ctx * kv_dim), v(n_ctx * kv_dim), q(s.n_tokens * q_dim);
    for (float& x : k) x = dist(rng);
    for (float& x : v) x = dist(rng);
    for (float& x : q) x = dist(rng);
    std::vector<int32_t> table(pool_blocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    table.resize(n_blocks);
    std::vector<float> k_pool(static_cast<int64_t>(pool_blocks) * s.block_size * kv_dim, NAN);
    std::vector<float> v_pool = k_pool;
    for (int64_t j = 0; j < n_ctx; ++j) {
      const int64_t slot = static_cast<int64_t>(table[j / s.block_size]) * s.block_size +
                           j % s.block_size;
      std::copy_n(k.begin() + j * kv_dim, kv_dim, k_pool.begin() + slot * kv_dim);
      std::copy_n(v.begin() + j * kv_dim, kv_dim, v_pool.begin() + slot * kv_dim);
    }
    std::vector<int32_t> positions(s.n_tokens);
    std::iota(positions.begin(), positions.end(), s.first_pos);
    AttentionParams p{s.n_heads, s.n_kv_heads, s.head_dim,
                      1.0f / std::sqrt(static_cast<float>(s.head_dim))};
    std::vector<float> want(s.n_tokens * q_dim), got(s.n_tokens * q_dim);
    ref->Attention(q.data(), k.data(), v.data(), s.n_tokens, positions.data(), p, want.data());
    be->PagedAttention(q.data(), k_pool.data(), v_pool.data(), table.data(), s.block_size,
                       s.n_tokens, positions.data(), p, got.data());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-4f) << "element " << i << " heads " << s.n_heads << "/"
                                          << s.n_kv_heads << " block " << s.block_size;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, PagedAttentionTest,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512),
                         [](const auto& info) { return std::string(IsaName(info.param)); });

}  // namespace
}  // namespace weft::kernels
