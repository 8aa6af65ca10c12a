// SPDX-License-Identifier: Apache-2.0
// KvStorage: the f32 K and V pools that PagedKvCache's block ids index. Per layer a pool is
// [n_blocks * block_size, kv_dim] (kv_dim = n_kv_heads * head_dim): position j of a sequence is row
// table[j / block_size] * block_size + j % block_size, as Backend::PagedAttention reads it.
// Owned by the engine; not thread-safe (the engine thread writes, its kernels read).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "engine/kv/kv_cache.h"

namespace weft::kv {

struct KvStorageOptions {
  int32_t n_layers = 0;
  int32_t n_blocks = 0;
  int32_t block_size = 16;  // tokens per block
  int32_t kv_dim = 0;       // n_kv_heads * head_dim floats per token per layer, for K and for V
};

// Row of position `pos` in a pool, through a block table (WEFT_DCHECKs pos is covered).
inline int64_t PoolRow(std::span<const BlockId> table, int32_t pos, int32_t block_size) {
  return static_cast<int64_t>(table[pos / block_size]) * block_size + pos % block_size;
}

class KvStorage {
 public:
  // ResourceExhausted when the pools cannot be allocated; InvalidArgument for non-positive sizes.
  static absl::StatusOr<std::unique_ptr<KvStorage>> Create(const KvStorageOptions& options);
  // Bytes Create would allocate (K and V, all layers); for sizing n_blocks from --kv-mem.
  static size_t BytesFor(const KvStorageOptions& options);

  const KvStorageOptions& options() const { return options_; }
  float* k(int32_t layer) {
    return k_.get() + layer * layer_floats_;
  }  // [n_blocks*block_size, kv_dim]
  float* v(int32_t layer) { return v_.get() + layer * layer_floats_; }
  const float* k(int32_t layer) const { return k_.get() + layer * layer_floats_; }
  const float* v(int32_t layer) const { return v_.get() + layer * layer_floats_; }

 private:
  KvStorage(const KvStorageOptions& options, std::unique_ptr<float[]> k,
            std::unique_ptr<float[]> v);

  KvStorageOptions options_;
  int64_t layer_floats_;        // n_blocks * block_size * kv_dim
  std::unique_ptr<float[]> k_;  // [n_layers, n_blocks * block_size, kv_dim]
  std::unique_ptr<float[]> v_;
};

}  // namespace weft::kv
