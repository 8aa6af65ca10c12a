// SPDX-License-Identifier: Apache-2.0
// SamplingParams: one request's decoding settings (OpenAI/llama.cpp field meanings), a plain value
// copied into the Sampler, StopMatcher and GenerationLimits of that request. Validate() checks
// values that come from clients; it has no other side effects.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace weft::sampling {

// Defaults are neutral (OpenAI semantics): plain sampling from softmax(logits) at T = 1, nothing
// filtered, nothing penalized. LlamaCppDefaults() gives llama.cpp's CLI defaults.
struct SamplingParams {
  float temperature = 1.0f;  // < 1e-6 (e.g. 0) = greedy argmax, ties to the lowest id
  int32_t top_k = 0;         // keep the k most likely tokens; <= 0 = off
  float top_p = 1.0f;        // nucleus: minimal set with mass >= top_p; >= 1 = off
  float min_p = 0.0f;        // drop tokens with p < min_p * p_max; <= 0 = off

  // llama.cpp / CTRL repetition penalty over the last `penalty_last_n` tokens of the history
  // (prompt included): positive logits are divided by it, negative ones multiplied. 1 = off.
  float repetition_penalty = 1.0f;
  int32_t penalty_last_n = 64;  // 0 = off, -1 = the whole history
  // OpenAI penalties over generated tokens only: logit -= count * frequency + (count > 0) *
  // presence.
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;

  // Added to the raw logits first; -infinity bans a token. Ids must be < n_vocab.
  std::vector<std::pair<int32_t, float>> logit_bias;

  uint64_t seed = 0;  // same seed + same logits => same tokens, on every machine

  int32_t max_tokens = -1;  // generated-token limit (finish "length"); <= 0 = no limit here
  int32_t min_tokens = 0;   // end-of-generation tokens are masked until this many were generated
  bool ignore_eos = false;  // mask end-of-generation tokens for the whole request
  std::vector<std::string> stop;  // stop strings, matched on the decoded text; never emitted

  int32_t top_logprobs = 0;  // alternatives reported per token when logprobs are asked for

  // InvalidArgument for values a client could send that make no sense (NaN, top_p outside [0, 1],
  // negative penalties where not meaningful, bias ids outside [0, n_vocab), empty stop strings).
  absl::Status Validate(int32_t n_vocab) const;

  // llama.cpp's CLI defaults: T 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalties.
  static SamplingParams LlamaCppDefaults();
  // Greedy decoding (temperature 0).
  static SamplingParams Greedy();
};

}  // namespace weft::sampling
