// SPDX-License-Identifier: Apache-2.0
#include "engine/model/arch/generate.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/stop_matcher.h"
#include "engine/tokenizer/decoding.h"

namespace weft::model {

absl::StatusOr<GenerateResult> Generate(LlamaForward& forward,
                                        const tokenizer::Tokenizer& tokenizer,
                                        const GenerateRequest& request,
                                        const std::function<void(std::string_view)>& on_text) {
  const int32_t n_vocab = forward.config().vocab_size;
  if (tokenizer.vocab_size() > n_vocab) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer has ", tokenizer.vocab_size(),
                                                   " tokens but the model only ", n_vocab));
  }
  absl::Status valid = request.sampling.Validate(n_vocab);
  if (!valid.ok()) return valid;

  GenerateResult result;
  result.prompt_tokens =
      tokenizer.Encode(request.prompt, {.add_bos = request.add_bos && tokenizer.add_bos_default(),
                                        .parse_special = request.parse_special});
  if (result.prompt_tokens.empty()) {
    // A model needs at least one token to condition on: start from BOS, or fail clearly.
    if (tokenizer.bos_id() < 0) return absl::InvalidArgumentError("empty prompt and no BOS token");
    result.prompt_tokens.push_back(tokenizer.bos_id());
  }
  if (static_cast<int>(result.prompt_tokens.size()) >= forward.n_ctx()) {
    return absl::OutOfRangeError(absl::StrCat("prompt of ", result.prompt_tokens.size(),
                                              " tokens does not fit the context of ",
                                              forward.n_ctx()));
  }

  forward.Truncate(0);
  auto t0 = std::chrono::steady_clock::now();
  auto logits_or = forward.Forward(result.prompt_tokens);
  if (!logits_or.ok()) return logits_or.status();
  auto t1 = std::chrono::steady_clock::now();
  result.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  sampling::Sampler sampler(request.sampling, n_vocab);
  sampling::GenerationLimits limits(request.sampling, tokenizer::EndOfGenerationIds(tokenizer));
  sampling::StopMatcher stops(request.sampling.stop);
  tokenizer::StreamingDecoder decoder(tokenizer, result.prompt_tokens.back());
  std::vector<int32_t> history = result.prompt_tokens;
  std::vector<float> logits(logits_or->begin(), logits_or->end());
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    result.text += text;
    if (on_text) on_text(text);
  };

  while (true) {
    const int32_t n_generated = static_cast<int32_t>(result.tokens.size());
    limits.MaskLogits(logits, n_generated);
    int32_t token = sampler.Sample(logits, history, result.prompt_tokens.size());
    if (token == sampling::kNoToken) {
      return absl::InternalError("every token was excluded by logit bias or penalties");
    }
    std::optional<sampling::FinishReason> reason = limits.Check(token, n_generated + 1);
    if (!limits.IsEndOfGeneration(token)) {
      result.tokens.push_back(token);
      history.push_back(token);
      sampling::StopMatcher::Result r = stops.Push(decoder.Push(token));
      emit(r.emit);
      if (r.stopped) reason = sampling::FinishReason::kStopString;
    }
    if (!reason && forward.n_past() + 1 >= forward.n_ctx()) {
      reason = sampling::FinishReason::kLength;  // the context is full
    }
    if (reason) {
      result.finish = *reason;
      break;
    }
    auto next = forward.Forward(std::span<const int32_t>(&token, 1));
    if (!next.ok()) return next.status();
    logits.assign(next->begin(), next->end());
  }
  if (!stops.stopped()) {
    emit(stops.Push(decoder.Flush()).emit);
    emit(stops.Flush());
  }
  result.decode_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return result;
}

}  // namespace weft::model
