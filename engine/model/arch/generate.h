// SPDX-License-Identifier: Apache-2.0
// One sequence's generation loop: encode the prompt, prefill, then sample / decode / stop until a
// finish reason, streaming text as it becomes final. Used by `weft generate` and the tests; the
// engine server (continuous batching) drives the same pieces step by step instead. Blocking; runs
// on the caller's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/arch/llama.h"
#include "engine/sampling/generation_limits.h"
#include "engine/sampling/sampling_params.h"
#include "engine/tokenizer/tokenizer.h"

namespace weft::model {

struct GenerateRequest {
  std::string prompt;
  bool add_bos = true;         // only where the tokenizer adds BOS by default
  bool parse_special = false;  // special-token text in the prompt becomes special ids
  sampling::SamplingParams sampling;
};

struct GenerateResult {
  std::vector<int32_t> prompt_tokens;  // BOS included when added
  std::vector<int32_t> tokens;         // generated, without a final end-of-generation token
  std::string text;                    // what was streamed (stop strings excluded)
  sampling::FinishReason finish = sampling::FinishReason::kLength;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Runs the request from an empty KV cache (`forward` is reset). `on_text` receives the text pieces
// as they become final (may be empty). max_tokens <= 0 runs until EOG, a stop, or the context end.
absl::StatusOr<GenerateResult> Generate(LlamaForward& forward,
                                        const tokenizer::Tokenizer& tokenizer,
                                        const GenerateRequest& request,
                                        const std::function<void(std::string_view)>& on_text);

}  // namespace weft::model
