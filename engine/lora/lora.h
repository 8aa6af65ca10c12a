// SPDX-License-Identifier: Apache-2.0
// LoRA adapters: loading (llama.cpp GGUF LoRA files and PEFT directories), validated against a base
// model and stored as f32 A/B in the base model's row layout; and applying them per row in a mixed
// batch (rows of different requests use different adapters or none). A LoraAdapter is immutable
// after loading (any thread may read it); LoraBatch and LoraScratch belong to the step thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kernels/kernels.h"
#include "engine/model/model.h"

namespace weft::lora {

// The projections of a Llama layer an adapter may target.
enum class LoraTarget { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLoraTargets = 7;
// "q_proj"... (the HF module name) and "attn_q"... (the GGUF tensor stem).
std::string_view HfModuleName(LoraTarget t);
std::string_view GgufStem(LoraTarget t);
// The base weight a target adds to.
const model::Tensor& BaseWeight(const model::LayerWeights& l, LoraTarget t);

// One target's low-rank update: y += scale * B (A x). Row-major f32, in the base's layout (for q/k
// on an adjacent-pair RoPE base, B's rows are already permuted like the base's).
struct LoraWeights {
  int rank = 0;          // 0 = this adapter does not touch the target
  int64_t n_in = 0;      // the base weight's n_in (ne[0])
  int64_t n_out = 0;     // the base weight's n_out (rows)
  float scale = 0;       // alpha / rank (alpha / sqrt(rank) with rsLoRA)
  std::vector<float> a;  // [rank, n_in]
  std::vector<float> b;  // [n_out, rank]
  bool present() const { return rank > 0; }
  kernels::WeightView a_view() const { return {kernels::DType::kF32, a.data(), n_in, rank}; }
  kernels::WeightView b_view() const { return {kernels::DType::kF32, b.data(), rank, n_out}; }
};

enum class LoraFormat { kGguf, kPeft };

struct LoraAdapter {
  std::string path;
  LoraFormat format = LoraFormat::kGguf;
  float alpha = 0;     // as declared (0 in a GGUF file means scale 1, as llama.cpp)
  int max_rank = 0;    // the largest rank of any target
  int n_targets = 0;   // (layer, target) pairs present
  uint64_t bytes = 0;  // f32 bytes of all A and B
  std::vector<std::array<LoraWeights, kNumLoraTargets>> layers;  // [n_layers of the base]

  // The weights of one target, or null when the adapter does not touch it.
  const LoraWeights* Find(int layer, LoraTarget t) const {
    const LoraWeights& w = layers[layer][static_cast<int>(t)];
    return w.present() ? &w : nullptr;
  }
};

// Loads a GGUF LoRA file (general.type "adapter", adapter.type "lora", adapter.lora.alpha,
// tensors "<base tensor>.lora_a" ne [n_in, r] and ".lora_b" ne [r, n_out]; F32/F16/BF16/Q8_0) or
// a PEFT directory (adapter_config.json + adapter_model.safetensors, lora_A [r, in], lora_B
// [out, r]; F32/F16/BF16). q/k lora_B rows are permuted between the HF (rotate-half) and GGUF
// (adjacent-pair) layouts when the adapter's layout differs from the base's. Every mismatch with
// the base (unknown tensor, shape, rank, architecture) is InvalidArgument naming file and tensor.
absl::StatusOr<std::unique_ptr<LoraAdapter>> LoadLoraAdapter(const std::string& path,
                                                             const model::Model& base);

// Step-thread scratch, grown on demand and reused between calls.
struct LoraScratch {
  std::vector<float> x;    // gathered input rows
  std::vector<float> mid;  // [rows, rank]
  std::vector<float> out;  // [rows, n_out]
};

// Row strides (in floats) of the activations around a projection; 0 = dense (n_in / n_out).
// Non-dense strides serve fused projections (e.g. q|k|v written side by side in one buffer).
struct LoraStrides {
  int64_t x = 0;
  int64_t y = 0;
};

// For each i: y[rows[i], :] += w.scale * B (A x[rows[i], :]). x: [*, w.n_in] and y: [*, w.n_out]
// row-major (row strides from `strides`). A and B are streamed once for all the rows (two MatMuls
// on the gathered rows).
void ApplyLoraDelta(kernels::Backend& be, const LoraWeights& w, const float* x,
                    std::span<const int32_t> rows, float* y, LoraScratch& scratch,
                    LoraStrides strides = {});

// The rows of one forward step grouped by adapter. Build it once per step (Reset), then call
// AddLoraDelta after each base projection. Holds the adapter pointers only: the caller keeps the
// adapters alive (e.g. by the shared_ptrs of its running requests) for the step.
class LoraBatch {
 public:
  LoraBatch() = default;
  LoraBatch(const LoraBatch&) = delete;  // groups_ point into rows_
  LoraBatch& operator=(const LoraBatch&) = delete;
  LoraBatch(LoraBatch&&) = default;
  LoraBatch& operator=(LoraBatch&&) = default;
  // adapter_of_row[r] is the adapter of row r, or null for the base model.
  void Reset(std::span<const LoraAdapter* const> adapter_of_row);
  // True when no row uses an adapter (AddLoraDelta is then a no-op).
  bool empty() const { return groups_.empty(); }
  int64_t n_rows() const { return n_rows_; }

  struct Group {
    const LoraAdapter* adapter = nullptr;
    std::span<const int32_t> rows;  // ascending; into rows_
  };
  std::span<const Group> groups() const { return groups_; }

 private:
  std::vector<Group> groups_;
  std::vector<int32_t> rows_;
  int64_t n_rows_ = 0;
};

// After y = W x for the base weight of (layer, target): adds each row's adapter delta.
// x: [batch.n_rows(), n_in], y: [batch.n_rows(), n_out], row-major (dense unless `strides`).
void AddLoraDelta(kernels::Backend& be, const LoraBatch& batch, int layer, LoraTarget target,
                  const float* x, float* y, LoraScratch& scratch, LoraStrides strides = {});

}  // namespace weft::lora
