// SPDX-License-Identifier: Apache-2.0
// The Llama-family forward pass over a batch of sequence chunks sharing one paged KV pool (Llama
// 2/3, Mistral, Qwen2: RMSNorm, RoPE in both layouts, GQA/MQA, SwiGLU, tied or separate output,
// q/k/v biases). All chunks' tokens go through each weight matrix together (one read of the
// weights per step); attention reads each sequence's keys/values through its block table. Used by
// one thread at a time (it owns the kernel Backend and its thread pool); the Model must outlive it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kernels/kernels.h"
#include "engine/model/model.h"

namespace weft::model {

struct BatchForwardOptions {
  int n_blocks = 0;            // KV pool size in blocks
  int block_size = 16;         // tokens per block
  int max_batch_tokens = 512;  // most tokens per Forward call
  int n_threads = 1;
  kernels::Isa isa = kernels::BestIsa();
};

// One sequence's part of a step: `tokens` at positions [start_pos, start_pos + size). Their K/V
// are written to the slots the block table gives for those positions (the table must cover
// them); attention reads positions [0, pos] of the same table.
struct SeqChunk {
  std::span<const int32_t> tokens;
  int32_t start_pos = 0;
  std::span<const int32_t> block_table;
  bool want_logits = true;  // logits of the chunk's last token
  // Hook for per-row LoRA adapters (set by the engine): index into the adapter list, -1 = base.
  int32_t adapter = -1;
};

// Adds a LoRA delta to a projection's output rows (implemented by engine/lora, wired by the
// engine). `target` is one of wq, wk, wv, wo, w_gate, w_up, w_down.
class ProjectionHook {
 public:
  enum class Target { kQ, kK, kV, kO, kGate, kUp, kDown };
  virtual ~ProjectionHook() = default;
  // x: [n_rows, n_in] inputs of the projection, y: [n_rows, n_out] outputs; row r belongs to the
  // chunk whose adapter is adapter_of_row[r].
  virtual void Apply(kernels::Backend& backend, int layer, Target target, const float* x,
                     int64_t n_rows, std::span<const int32_t> adapter_of_row, float* y) = 0;
};

class BatchForward {
 public:
  static absl::StatusOr<std::unique_ptr<BatchForward>> Create(const Model& model,
                                                              const BatchForwardOptions& options);

  // Runs one step. Returns the logits of every chunk with want_logits, in chunk order
  // ([n_wanted, vocab_size], valid until the next call). InvalidArgument for chunks that exceed
  // max_batch_tokens together, ids out of range, or block tables that do not cover the positions.
  absl::StatusOr<std::span<const float>> Forward(std::span<const SeqChunk> chunks,
                                                 ProjectionHook* hook = nullptr);

  const ModelConfig& config() const { return model_.config; }
  const Model& model() const { return model_; }
  kernels::Backend& backend() { return *backend_; }
  int n_blocks() const { return n_blocks_; }
  int block_size() const { return block_size_; }
  int max_batch_tokens() const { return max_batch_tokens_; }
  uint64_t kv_bytes() const { return 2 * pool_floats_ * sizeof(float); }

 private:
  explicit BatchForward(const Model& model) : model_(model) {}
  const float* F32Vector(const Tensor& t);  // f32 view of a small vector tensor, converting
  void Project(const Tensor& w, int layer, ProjectionHook::Target target, const float* x, int64_t n,
               float* y);

  const Model& model_;
  int n_blocks_ = 0;
  int block_size_ = 0;
  int max_batch_tokens_ = 0;
  std::unique_ptr<kernels::Backend> backend_;
  kernels::RopeParams rope_;
  std::vector<float> rope_freqs_;

  struct LayerVectors {
    const float* attn_norm;
    const float* ffn_norm;
    const float* bq;
    const float* bk;
    const float* bv;
  };
  std::vector<LayerVectors> layer_vectors_;
  const float* output_norm_ = nullptr;
  std::vector<std::vector<float>> converted_;

  // KV pools: [n_layers, n_blocks * block_size, n_kv_heads * head_dim] each.
  // calloc'ed: the zero pages are mapped lazily, so memory is only committed for the positions
  // sequences actually reach (a large context costs nothing until it is used).
  struct FreeDeleter {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], FreeDeleter> k_pool_, v_pool_;
  size_t pool_floats_ = 0;
  // Scratch for up to max_batch_tokens tokens.
  // att_ shares xb_'s memory: xb_ is free between the q/k/v projections and the next norm.
  std::vector<float> x_, xb_, xb2_, q_, k_, v_, hb_, hb2_, logits_;
  std::vector<int32_t> positions_, adapter_of_row_;
  ProjectionHook* hook_ = nullptr;
  std::span<const int32_t> hook_rows_;
};

kernels::WeightView ViewOf(const Tensor& t);

}  // namespace weft::model
