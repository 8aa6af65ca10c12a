// SPDX-License-Identifier: Apache-2.0
#include "engine/sampling/sampling_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace weft::sampling {

absl::Status SamplingParams::Validate(int32_t n_vocab) const {
  auto bad = [](auto... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (std::isnan(temperature) || temperature > 1e6f) return bad("temperature: ", temperature);
  if (!(top_p >= 0.0f && top_p <= 1.0f)) return bad("top_p must be in [0, 1], got ", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return bad("min_p must be in [0, 1], got ", min_p);
  if (!(repetition_penalty > 0.0f) || std::isinf(repetition_penalty)) {
    return bad("repetition_penalty must be > 0, got ", repetition_penalty);
  }
  if (penalty_last_n < -1) return bad("penalty_last_n must be >= -1, got ", penalty_last_n);
  if (!std::isfinite(frequency_penalty)) return bad("frequency_penalty: ", frequency_penalty);
  if (!std::isfinite(presence_penalty)) return bad("presence_penalty: ", presence_penalty);
  if (min_tokens < 0) return bad("min_tokens must be >= 0, got ", min_tokens);
  if (max_tokens > 0 && min_tokens > max_tokens) {
    return bad("min_tokens (", min_tokens, ") > max_tokens (", max_tokens, ")");
  }
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0 || id >= n_vocab)
      return bad("logit_bias token id ", id, " not in [0, ", n_vocab, ")");
    if (std::isnan(bias) || bias == INFINITY) return bad("logit_bias for ", id, ": ", bias);
  }
  if (top_logprobs < 0 || top_logprobs > n_vocab) {
    return bad("top_logprobs must be in [0, ", n_vocab, "], got ", top_logprobs);
  }
  for (const std::string& s : stop) {
    if (s.empty()) return bad("empty stop string");
  }
  return absl::OkStatus();
}

SamplingParams SamplingParams::LlamaCppDefaults() {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 40;
  p.top_p = 0.95f;
  p.min_p = 0.05f;
  return p;
}

SamplingParams SamplingParams::Greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

}  // namespace weft::sampling
