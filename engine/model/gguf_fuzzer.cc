// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: GgufFile::Parse on arbitrary bytes, then (if it parsed) the model views as
// LoadModel builds them, touching every view so out-of-range pointers trip ASan.
#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/model/gguf.h"
#include "engine/model/loaders.h"

namespace {

uint8_t Touch(const weft::model::Tensor& t) {
  if (!t.present()) return 0;
  const int64_t n = weft::kernels::RowBytes(t.type, t.ne[0]) * t.rows();
  const auto* p = static_cast<const uint8_t*>(t.data);
  return n > 0 ? static_cast<uint8_t>(p[0] ^ p[n - 1]) : 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = weft::model::GgufFile::Parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!f.ok()) return 0;
  volatile uint8_t sink = 0;
  for (const weft::model::GgufTensorInfo& t : (*f)->tensors()) {
    if (t.nbytes > 0) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
  }
  for (const auto& [key, value] : (*f)->metadata()) {
    (void)(*f)->GetI64(key);
    (void)(*f)->GetF32Array(key);
    (void)(*f)->GetI32Array(key);
  }
  auto m = weft::model::ModelFromGguf(std::move(*f));
  if (!m.ok()) return 0;
  const weft::model::ModelWeights& w = (*m)->weights;
  sink = sink ^ Touch(w.tok_embd) ^ Touch(w.output) ^ Touch(w.output_norm) ^ Touch(w.rope_freqs);
  for (const weft::model::LayerWeights& l : w.layers) {
    for (const weft::model::Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk,
                                         &l.bv, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      sink = sink ^ Touch(*t);
    }
  }
  return 0;
}
