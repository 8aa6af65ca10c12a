// SPDX-License-Identifier: Apache-2.0
// The Llama-family forward pass on CPU (Llama 2/3, Mistral, Qwen2): RMSNorm, RoPE (both layouts),
// GQA/MQA attention over a per-sequence KV cache, SwiGLU, tied or separate output, optional q/k/v
// biases. One LlamaForward serves one sequence and is used by one thread at a time (it owns the
// kernel Backend and its thread pool). The Model must outlive it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kernels/kernels.h"
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
  // Checks that the architecture is supported and prepares scratch and KV memory.
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
  const ModelConfig& config() const { return model_.config; }
  kernels::Backend& backend() { return *backend_; }
  uint64_t kv_bytes() const { return (k_cache_.size() + v_cache_.size()) * sizeof(float); }

 private:
  LlamaForward(const Model& model, const ForwardOptions& options);
  // Returns f32 data for a small vector tensor (norm weights, biases), converting when needed.
  const float* F32Vector(const Tensor& t);
  // Runs n <= n_batch tokens; writes every token's logits to all_logits ([n, vocab]) when not null,
  // else the last token's to logits_.
  void Step(const int32_t* tokens, int n, float* all_logits);

  const Model& model_;
  int n_ctx_ = 0;
  int n_batch_ = 0;
  int n_past_ = 0;
  std::unique_ptr<kernels::Backend> backend_;
  kernels::RopeParams rope_;
  std::vector<float> rope_freqs_;  // [rope_dim / 2] when the model has rope_freqs

  struct LayerVectors {
    const float* attn_norm;
    const float* ffn_norm;
    const float* bq;
    const float* bk;
    const float* bv;
  };
  std::vector<LayerVectors> layer_vectors_;
  const float* output_norm_ = nullptr;
  std::vector<std::vector<float>> converted_;  // f32 copies of non-f32 vectors (tiny)

  // KV cache: [n_layers, n_ctx, n_kv_heads * head_dim] each.
  std::vector<float> k_cache_, v_cache_;
  // Scratch for up to n_batch tokens.
  std::vector<float> x_;       // [n_batch, d_model] residual stream
  std::vector<float> xb_;      // [n_batch, d_model] normed input
  std::vector<float> xb2_;     // [n_batch, d_model] sublayer output
  std::vector<float> q_;       // [n_batch, n_heads * head_dim]
  std::vector<float> att_;     // [n_batch, n_heads * head_dim]
  std::vector<float> hb_;      // [n_batch, d_ff]
  std::vector<float> hb2_;     // [n_batch, d_ff]
  std::vector<float> logits_;  // [n_batch or 1, vocab]
  std::vector<int32_t> positions_;
};

kernels::WeightView ViewOf(const Tensor& t);

}  // namespace weft::model
