// SPDX-License-Identifier: Apache-2.0
// Small, valid model files built in memory for tests, the truncation sweeps and fuzzer seeds:
// a Llama GGUF, a llama2.c checkpoint and a safetensors file. Test-only; pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/kernels/dtype.h"
#include "engine/model/gguf_writer.h"

namespace weft::model::testing {

// d_model 32, 2 layers, 4 heads, 2 KV heads, d_ff 64, vocab 8.
inline constexpr int kTinyD = 32, kTinyLayers = 2, kTinyHeads = 4, kTinyKv = 2, kTinyFf = 64,
                     kTinyVocab = 8;

struct TensorSpec {
  std::string name;
  kernels::DType type;
  std::vector<int64_t> ne;
};

// The tensors of the tiny Llama GGUF (matrices q8_0, norms f32).
std::vector<TensorSpec> TinyGgufTensors();
// A complete tiny Llama GGUF with `tensors` (random data); `edit` may change the metadata last.
std::vector<uint8_t> TinyGguf(const std::vector<TensorSpec>& tensors,
                              const std::function<void(GgufWriter&)>& edit = {});
inline std::vector<uint8_t> TinyGguf() { return TinyGguf(TinyGgufTensors()); }

// A tiny llama2.c v0 checkpoint (dim 16, hidden 32, 2 layers, 4 heads, 2 KV heads, vocab 10,
// seq_len 8); `unshared` adds wcls (negative vocab_size in the header).
std::vector<uint8_t> TinyLlama2c(bool unshared = false);

// A small safetensors file with F32, F16 and BF16 tensors.
std::vector<uint8_t> TinySafetensors();

}  // namespace weft::model::testing
