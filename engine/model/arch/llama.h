// SPDX-License-Identifier: Apache-2.0
// Single-sequence forward pass: a BatchForward whose whole KV pool is one sequence's context
// (block table 0, 1, 2, ...). Used by `weft generate`, `weft bench` and the golden tests. One
// thread at a time; the Model must outlive it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kernels/kernels.h"
#include "engine/model/arch/batch_forward.h"
#include "engine/model/model.h"

namespace weft::model {

struct ForwardOptions {
  int n_ctx = 0;      // KV cache length in tokens; 0 = the model's max_ctx clamped to [512, 4096]
  int n_batch = 512;  // most tokens per forward step (longer prompts are chunked)
  int n_threads = 1;
  kernels::Isa isa = kernels::BestIsa();
};

class LlamaForward {
 public:
  static absl::StatusOr<std::unique_ptr<LlamaForward>> Create(const Model& model,
                                                              const ForwardOptions& options);

  // Runs `tokens` at positions [n_past(), n_past() + size) and appends them to the KV cache.
  // Returns the logits of the last token ([vocab_size], valid until the next call), or of every
  // token ([n_tokens, vocab_size]) when all_logits. InvalidArgument when the tokens would overflow
  // the context or an id is out of range.
  absl::StatusOr<std::span<const float>> Forward(std::span<const int32_t> tokens,
                                                 bool all_logits = false);

  int n_past() const { return n_past_; }
  int n_ctx() const { return n_ctx_; }
  // Forgets cached positions >= n (keeps the first n), e.g. to reuse a common prefix.
  void Truncate(int n) { n_past_ = n < n_past_ ? n : n_past_; }
  const ModelConfig& config() const { return batch_->config(); }
  kernels::Backend& backend() { return batch_->backend(); }
  uint64_t kv_bytes() const { return batch_->kv_bytes(); }

 private:
  std::unique_ptr<BatchForward> batch_;
  std::vector<int32_t> block_table_;
  std::vector<SeqChunk> chunks_;
  std::vector<float> all_logits_;
  int n_ctx_ = 0;
  int n_batch_ = 0;
  int n_past_ = 0;
};

}  // namespace weft::model
