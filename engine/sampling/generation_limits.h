// SPDX-License-Identifier: Apache-2.0
// GenerationLimits: when a request stops (end-of-generation token, max_tokens) and which tokens are
// masked before sampling (EOG below min_tokens, or always with ignore_eos). A plain value, one per
// request; const methods, safe to share. Stop strings are StopMatcher's job.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "engine/sampling/sampling_params.h"

namespace weft::sampling {

enum class FinishReason {
  kEndOfGeneration,  // the model produced an EOS/EOT token     -> OpenAI "stop"
  kStopString,       // a stop string matched                   -> OpenAI "stop"
  kLength,           // max_tokens (or the context) was reached -> OpenAI "length"
};

// The OpenAI finish_reason string: "stop" or "length".
std::string_view FinishReasonName(FinishReason reason);

class GenerationLimits {
 public:
  // `eog_ids`: the vocabulary's end-of-generation tokens (Tokenizer::IsEndOfGeneration).
  GenerationLimits(const SamplingParams& params, std::vector<int32_t> eog_ids);

  // Before sampling generated token number `n_generated` (0-based): sets the EOG logits to -inf
  // while n_generated < min_tokens, or always under ignore_eos. logits: [n_vocab].
  void MaskLogits(std::span<float> logits, int32_t n_generated) const;

  // After sampling `token`, with `n_generated` tokens generated including it: the reason to
  // finish, or nullopt to continue. An EOG token is not part of the output text.
  std::optional<FinishReason> Check(int32_t token, int32_t n_generated) const;

  bool IsEndOfGeneration(int32_t token) const;

 private:
  int32_t max_tokens_;
  int32_t min_tokens_;
  bool ignore_eos_;
  std::vector<int32_t> eog_ids_;  // sorted, unique
};

}  // namespace weft::sampling
