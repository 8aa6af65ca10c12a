// SPDX-License-Identifier: Apache-2.0
// Test-only helpers for LoRA: random adapters written as GGUF LoRA files or PEFT directories, a
// tiny base model written both as an HF checkpoint and as a GGUF, and merging an adapter into a
// copy of its base (W + scale * B A, in f32) so tests can compare against plain forward passes.
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/kernels/dtype.h"
#include "engine/lora/lora.h"
#include "engine/model/gguf_writer.h"
#include "engine/model/model.h"
#include "nlohmann/json.hpp"

namespace weft::lora::testing {

// A random adapter in the HF layout (rotate-half q/k rows, as PEFT trains it).
struct RandomLora {
  float alpha = 16.0f;
  bool use_rslora = false;
  struct Module {
    int layer = 0;
    LoraTarget target = LoraTarget::kQ;
    int rank = 0;
    int64_t n_in = 0, n_out = 0;
    std::vector<float> a;  // [rank, n_in]
    std::vector<float> b;  // [n_out, rank]
  };
  std::vector<Module> modules;
};

// Every layer of `base` gets every target in `targets`, with A, B ~ N(0, std_dev^2). `rank_of`
// may give a different rank per target (default: `rank`).
RandomLora MakeRandomLora(const model::Model& base, int rank, float alpha,
                          const std::vector<LoraTarget>& targets, uint64_t seed,
                          float std_dev = 0.1f, const std::function<int(LoraTarget)>& rank_of = {});
std::vector<LoraTarget> AllTargets();

// HF rotate-half rows [n_heads * head_dim, cols] -> GGUF adjacent-pair rows (llama.cpp converter).
std::vector<float> PermuteForGguf(const std::vector<float>& w, int n_heads, int head_dim,
                                  int64_t cols);

// As llama.cpp's convert_lora_to_gguf.py: general.type "adapter", adapter.type "lora",
// adapter.lora.alpha, "blk.N.<stem>.weight.lora_a" ne [n_in, r] / ".lora_b" ne [r, n_out], with q/k
// lora_b rows permuted for arch "llama" (heads and head_dim from `config`). `edit` runs last.
absl::Status WriteGgufLora(const RandomLora& lora, const model::ModelConfig& config,
                           const std::string& path, kernels::DType type = kernels::DType::kF32,
                           const std::function<void(model::GgufWriter&)>& edit = {});

// A PEFT directory: adapter_config.json (r, lora_alpha, target_modules, rank_pattern for modules of
// another rank, use_rslora) + adapter_model.safetensors ("base_model.model.model.layers.N.
// self_attn.q_proj.lora_A.weight" ...). dtype "F32", "F16" or "BF16". `edit` may change the config.
absl::Status WritePeftLora(const RandomLora& lora, const std::string& dir,
                           const std::string& dtype = "F32",
                           const std::function<void(nlohmann::json&)>& edit = {});

// Writes `base` with the adapter merged (W + scale * B A as f32; other tensors unchanged): a GGUF
// file for a GGUF base, an HF directory (config and tokenizer files copied) for an HF base.
absl::Status MergeLoraIntoModel(const model::Model& base, const LoraAdapter& adapter,
                                const std::string& out_path);

// A tiny random Llama (d 64, 4 heads, 2 KV heads, head_dim 16, d_ff 96, 2 layers, vocab 40, no
// tokenizer) written as an HF checkpoint directory (dir/hf) and as a GGUF (dir/model.gguf, q/k
// permuted as llama.cpp's converter does). Both give the same logits.
struct BasePair {
  std::string hf_dir;
  std::string gguf_path;
};
absl::StatusOr<BasePair> WriteTinyBasePair(const std::string& dir, uint64_t seed = 7);

}  // namespace weft::lora::testing
