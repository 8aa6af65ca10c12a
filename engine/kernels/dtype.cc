// SPDX-License-Identifier: Apache-2.0
#include "engine/kernels/dtype.h"

#include "base/check.h"
#include "engine/kernels/block_formats.h"

namespace weft::kernels {
namespace {

constexpr DTypeTraits kF32Traits{"f32", 1, 4};
constexpr DTypeTraits kF16Traits{"f16", 1, 2};
constexpr DTypeTraits kBF16Traits{"bf16", 1, 2};
constexpr DTypeTraits kQ4_0Traits{"q4_0", kQK, sizeof(BlockQ4_0)};
constexpr DTypeTraits kQ8_0Traits{"q8_0", kQK, sizeof(BlockQ8_0)};
constexpr DTypeTraits kQ4_KTraits{"q4_K", kQKK, sizeof(BlockQ4_K)};
constexpr DTypeTraits kQ6_KTraits{"q6_K", kQKK, sizeof(BlockQ6_K)};
constexpr DTypeTraits kQ8_KTraits{"q8_K", kQKK, sizeof(BlockQ8_K)};

const DTypeTraits* Find(uint32_t ggml_type) {
  switch (static_cast<DType>(ggml_type)) {
    case DType::kF32:
      return &kF32Traits;
    case DType::kF16:
      return &kF16Traits;
    case DType::kBF16:
      return &kBF16Traits;
    case DType::kQ4_0:
      return &kQ4_0Traits;
    case DType::kQ8_0:
      return &kQ8_0Traits;
    case DType::kQ4_K:
      return &kQ4_KTraits;
    case DType::kQ6_K:
      return &kQ6_KTraits;
    case DType::kQ8_K:
      return &kQ8_KTraits;
  }
  return nullptr;
}

}  // namespace

std::optional<DTypeTraits> TraitsOf(uint32_t ggml_type) {
  const DTypeTraits* t = Find(ggml_type);
  if (t == nullptr) return std::nullopt;
  return *t;
}

const DTypeTraits& Traits(DType t) {
  const DTypeTraits* tr = Find(static_cast<uint32_t>(t));
  WEFT_CHECK(tr != nullptr);
  return *tr;
}

}  // namespace weft::kernels
