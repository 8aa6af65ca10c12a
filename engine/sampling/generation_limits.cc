// SPDX-License-Identifier: Apache-2.0
#include "engine/sampling/generation_limits.h"

#include <algorithm>
#include <limits>

namespace weft::sampling {

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEndOfGeneration:
    case FinishReason::kStopString:
      return "stop";
    case FinishReason::kLength:
      return "length";
  }
  return "stop";
}

GenerationLimits::GenerationLimits(const SamplingParams& params, std::vector<int32_t> eog_ids)
    : max_tokens_(params.max_tokens),
      min_tokens_(params.min_tokens),
      ignore_eos_(params.ignore_eos),
      eog_ids_(std::move(eog_ids)) {
  std::sort(eog_ids_.begin(), eog_ids_.end());
  eog_ids_.erase(std::unique(eog_ids_.begin(), eog_ids_.end()), eog_ids_.end());
}

bool GenerationLimits::IsEndOfGeneration(int32_t token) const {
  return std::binary_search(eog_ids_.begin(), eog_ids_.end(), token);
}

void GenerationLimits::MaskLogits(std::span<float> logits, int32_t n_generated) const {
  if (!ignore_eos_ && n_generated >= min_tokens_) return;
  for (int32_t id : eog_ids_) {
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) {
      logits[id] = -std::numeric_limits<float>::infinity();
    }
  }
}

std::optional<FinishReason> GenerationLimits::Check(int32_t token, int32_t n_generated) const {
  if (!ignore_eos_ && IsEndOfGeneration(token)) return FinishReason::kEndOfGeneration;
  if (max_tokens_ > 0 && n_generated >= max_tokens_) return FinishReason::kLength;
  return std::nullopt;
}

}  // namespace weft::sampling
