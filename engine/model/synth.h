// SPDX-License-Identifier: Apache-2.0
// Writes random-weight Llama GGUF models at real shapes (speed measurement without downloading
// weights), loadable by Weft and llama.cpp. Streams tensor by tensor, so memory stays small even
// for multi-GB files. Stateless functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::model {

// A named model shape.
struct SynthShape {
  std::string name;
  int d_model = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int d_ff = 0;
  int max_ctx = 0;
  float rope_freq_base = 10000.0f;
  float norm_eps = 1e-5f;
  bool tied_embeddings = false;
  // Llama-3 rope scaling (written as a rope_freqs.weight tensor, as llama.cpp's converter does).
  bool llama3_rope = false;
  float rope_factor = 1.0f, rope_low_freq_factor = 1.0f, rope_high_freq_factor = 4.0f;
  int rope_original_ctx = 8192;
};

// "llama-1b" (Llama-3.2-1B), "llama-110m" (llama2.c stories110M), "llama-8b" (Llama-3.1-8B),
// "tiny" (a few-KB shape for tests). NotFound names the known shapes.
absl::StatusOr<SynthShape> FindSynthShape(const std::string& name);
std::vector<std::string> SynthShapeNames();

struct SynthOptions {
  std::string shape = "llama-1b";
  // Weight type of the matrices: "q8_0", "q4_0", "f16" or "f32". Norms stay f32. As llama.cpp's
  // quantize does for Q4_0, the output matrix (the token embeddings when tied) is q6_K.
  std::string type = "q8_0";
  std::string vocab_path;  // a vocab GGUF: its tokenizer.* metadata is copied, vocab size from it
  uint64_t seed = 1;
  std::string output_path;
};

// Matrices are N(0, 0.02^2) before quantization, norms are 1. Deterministic for a seed.
absl::Status SynthesizeModel(const SynthOptions& options);

}  // namespace weft::model
