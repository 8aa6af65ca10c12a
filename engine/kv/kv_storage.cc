// SPDX-License-Identifier: Apache-2.0
#include "engine/kv/kv_storage.h"

#include <new>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace weft::kv {
namespace {

int64_t LayerFloats(const KvStorageOptions& o) {
  return static_cast<int64_t>(o.n_blocks) * o.block_size * o.kv_dim;
}

}  // namespace

size_t KvStorage::BytesFor(const KvStorageOptions& options) {
  return 2 * static_cast<size_t>(options.n_layers) * LayerFloats(options) * sizeof(float);
}

absl::StatusOr<std::unique_ptr<KvStorage>> KvStorage::Create(const KvStorageOptions& options) {
  if (options.n_layers <= 0 || options.n_blocks <= 0 || options.block_size <= 0 ||
      options.kv_dim <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV storage sizes must be positive: n_layers=", options.n_layers, " n_blocks=",
        options.n_blocks, " block_size=", options.block_size, " kv_dim=", options.kv_dim));
  }
  const size_t n = static_cast<size_t>(options.n_layers) * LayerFloats(options);
  // Value-initialised: never-written slots read as 0, not as garbage (they are masked anyway).
  std::unique_ptr<float[]> k(new (std::nothrow) float[n]());
  std::unique_ptr<float[]> v(new (std::nothrow) float[n]());
  if (k == nullptr || v == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate the KV cache: ", BytesFor(options), " bytes"));
  }
  return std::unique_ptr<KvStorage>(new KvStorage(options, std::move(k), std::move(v)));
}

KvStorage::KvStorage(const KvStorageOptions& options, std::unique_ptr<float[]> k,
                     std::unique_ptr<float[]> v)
    : options_(options), layer_floats_(LayerFloats(options)), k_(std::move(k)), v_(std::move(v)) {}

}  // namespace weft::kv
