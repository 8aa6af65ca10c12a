// SPDX-License-Identifier: Apache-2.0
// Sampler: turns one step's logits into the next token for one request (logit bias, penalties,
// top-k, top-p, min-p, temperature, seeded draw, in llama.cpp's default order). Owned by that
// request; not thread-safe (one step at a time). Holds no model state: only params and scratch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/sampling/sampling_params.h"

namespace weft::sampling {

inline constexpr int32_t kNoToken = -1;

struct TokenLogprob {
  int32_t id = kNoToken;
  float logprob = 0.0f;  // natural log; -inf for a token the model gives probability 0
};

// Log-probabilities of the *raw* logits handed to Sampler::Sample (the model's distribution,
// before bias, penalties, filters and temperature), as OpenAI reports `logprobs`.
struct TokenLogprobs {
  float chosen = 0.0f;            // log p(sampled token)
  std::vector<TokenLogprob> top;  // the n most likely tokens, most likely first, ties by id
};

// log_softmax(logits)[token] and the `n_top` largest entries of log_softmax(logits).
// logits: [n_vocab]. NaN entries count as -inf.
TokenLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, int32_t n_top);

class Sampler {
 public:
  struct Candidate {
    float logit;
    int32_t id;
  };

  // `params` must have passed Validate(n_vocab).
  Sampler(const SamplingParams& params, int32_t n_vocab);

  // Picks the next token from `logits` [n_vocab], which it uses as scratch (modified).
  // `history` is the request's tokens so far, prompt first: history[0, n_prompt) is the prompt,
  // the rest were generated. The repetition penalty reads the last penalty_last_n of history, the
  // frequency/presence penalties only the generated part.
  // The random draw for generated token g = history.size() - n_prompt is the g-th output of
  // SplitMix64 seeded with params.seed, so a request resumed with the same history continues with
  // the same tokens. Returns kNoToken if every logit is -inf/NaN after bias and penalties.
  // If `logprobs` is non-null, fills it from the logits as passed in (raw model output, plus any
  // GenerationLimits mask) with the sampled token's log-probability and the top
  // params.top_logprobs alternatives.
  int32_t Sample(std::span<float> logits, std::span<const int32_t> history, size_t n_prompt,
                 TokenLogprobs* logprobs = nullptr);

  const SamplingParams& params() const { return params_; }
  int32_t n_vocab() const { return n_vocab_; }

  // The uniform double in [0, 1) used for generated token `index` under `seed`: the index-th
  // output of SplitMix64 (Steele, Lea, Flood 2014), top 53 bits. Same on every platform.
  static double Uniform(uint64_t seed, uint64_t index);

 private:
  void ApplyPenalties(std::span<float> logits, std::span<const int32_t> history, size_t n_prompt);
  int32_t SampleDense(std::span<const float> logits, double u);
  int32_t SampleTopK(std::span<const float> logits, double u);
  Candidate TopPCutoff(std::span<const float> logits, float max_logit, float min_logit,
                       double target);

  SamplingParams params_;
  int32_t n_vocab_;
  bool greedy_;

  // Scratch, reused across calls so a step does not allocate.
  std::vector<int32_t> counts_;        // [n_vocab], all zero between calls; sized on first use
  std::vector<int32_t> touched_;       // ids whose counts_ entry is non-zero
  std::vector<Candidate> candidates_;  // top-k list, or the top-p crossing bucket
  std::vector<float> weights_;         // unnormalized probabilities, per candidate or per id
  std::vector<int32_t> buckets_;       // top-p bucket per id
  std::vector<double> block_sums_;     // BlockSums of weights_
  std::vector<float> raw_;             // copy of the raw logits when logprobs are wanted
};

// The k best entries of `logits` (largest first, ties to the lowest id), skipping -inf/NaN.
// Uses a bounded heap (O(V log k)) when k is small, nth_element otherwise. `out` is overwritten.
void SelectTopK(std::span<const float> logits, int32_t k, std::vector<Sampler::Candidate>* out);

}  // namespace weft::sampling
