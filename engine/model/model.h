// SPDX-License-Identifier: Apache-2.0
// A loaded model: hyper-parameters, weight views and where its tokenizer comes from. Weights
// point into memory maps the Model owns (no copies at load), so a Model must outlive every
// forward pass that uses it. Immutable after loading; any thread may read it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/mmap_file.h"
#include "engine/kernels/dtype.h"
#include "engine/model/gguf.h"  // complete type: Model owns a unique_ptr<GgufFile>

namespace weft::model {

// A view of one weight tensor. ne[0] is the innermost dimension: a matrix used as y = W x has
// ne[0] = n_in (row length) and ne[1] = n_out (rows). Quantized rows are blocked along ne[0].
struct Tensor {
  std::string name;
  kernels::DType type = kernels::DType::kF32;
  std::array<int64_t, 4> ne = {1, 1, 1, 1};
  const void* data = nullptr;  // null = absent (optional tensors such as biases)
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  int64_t cols() const { return ne[0]; }
  bool present() const { return data != nullptr; }
};

// How RoPE pairs the dimensions of a head.
enum class RopeLayout {
  kAdjacentPairs,  // (x0,x1),(x2,x3)...: GGUF llama, llama2.c (llama.cpp "norm")
  kHalves,         // (x_i, x_{i+d/2}): HF checkpoints "rotate_half" (llama.cpp "neox"), Qwen2 GGUF
};

struct RopeScaling {
  enum class Kind { kNone, kLinear, kLlama3 };
  Kind kind = Kind::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;      // llama3
  float high_freq_factor = 4.0f;     // llama3
  int original_max_position = 8192;  // llama3
};

struct ModelConfig {
  std::string arch = "llama";  // "llama", "qwen2", ...
  std::string name;            // general.name or file stem
  int n_layers = 0;
  int d_model = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;  // usually d_model / n_heads
  int d_ff = 0;
  int vocab_size = 0;
  int max_ctx = 0;
  float norm_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  int rope_dim = 0;  // dimensions rotated per head (== head_dim for Llama)
  RopeLayout rope_layout = RopeLayout::kAdjacentPairs;
  RopeScaling rope_scaling;
  bool tied_embeddings = false;  // output == tok_embd
  bool qkv_bias = false;         // Qwen2
};

struct LayerWeights {
  Tensor attn_norm;       // [d_model] f32
  Tensor wq, wk, wv, wo;  // wq [d_model -> n_heads*head_dim], wk/wv [d_model -> n_kv*head_dim]
  Tensor bq, bk, bv;      // optional biases (Qwen2), f32
  Tensor ffn_norm;        // [d_model] f32
  Tensor w_gate, w_up;    // [d_model -> d_ff]
  Tensor w_down;          // [d_ff -> d_model]
};

struct ModelWeights {
  Tensor tok_embd;     // [vocab rows of d_model]
  Tensor output_norm;  // [d_model]
  Tensor output;       // [d_model -> vocab]; same data as tok_embd when tied
  std::vector<LayerWeights> layers;
  Tensor rope_freqs;  // optional [rope_dim / 2] frequency divisors (GGUF Llama-3 scaling)
};

enum class ModelFormat { kGguf, kLlama2c, kHfSafetensors };

// Where the tokenizer lives: the GGUF metadata, a llama2.c tokenizer.bin, or an HF tokenizer.json.
struct TokenizerSource {
  const GgufFile* gguf = nullptr;  // owned by the Model
  std::string llama2c_path;
  std::string hf_json_path;
  std::string hf_config_dir;  // HF directory (tokenizer_config.json, generation_config.json)
};

class Model {
 public:
  ModelFormat format = ModelFormat::kGguf;
  std::string path;
  ModelConfig config;
  ModelWeights weights;
  TokenizerSource tokenizer;
  uint64_t weight_bytes = 0;  // bytes of all tensor data

  // Storage the views point into (maps, converted buffers). Kept alive with the model.
  std::vector<std::unique_ptr<MmapFile>> maps;
  std::unique_ptr<GgufFile> gguf;
  std::vector<std::vector<uint8_t>> owned;  // only for data that cannot be used in place
};

struct LoadOptions {
  std::string tokenizer_path;  // llama2.c tokenizer.bin or HF tokenizer.json overriding the default
};

// Loads a GGUF file, a llama2.c .bin checkpoint, or an HF checkpoint directory (config.json +
// *.safetensors [+ model.safetensors.index.json] + tokenizer.json). The format is detected from the
// path and the file's magic. Every malformed input is a Status naming the file and the problem.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& path,
                                                 const LoadOptions& options = {});

}  // namespace weft::model
