// SPDX-License-Identifier: Apache-2.0
#include "engine/model/tiny_models.h"

#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "engine/kernels/kernels.h"
#include "engine/model/safetensors_writer.h"

namespace weft::model::testing {

using kernels::DType;

std::vector<TensorSpec> TinyGgufTensors() {
  const int64_t d = kTinyD, q = kTinyD, kv = kTinyD / kTinyHeads * kTinyKv, ff = kTinyFf;
  std::vector<TensorSpec> t = {{"token_embd.weight", DType::kQ8_0, {d, kTinyVocab}},
                               {"output_norm.weight", DType::kF32, {d}},
                               {"output.weight", DType::kQ8_0, {d, kTinyVocab}}};
  for (int l = 0; l < kTinyLayers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    t.push_back({p + "attn_norm.weight", DType::kF32, {d}});
    t.push_back({p + "attn_q.weight", DType::kQ8_0, {d, q}});
    t.push_back({p + "attn_k.weight", DType::kQ8_0, {d, kv}});
    t.push_back({p + "attn_v.weight", DType::kQ8_0, {d, kv}});
    t.push_back({p + "attn_output.weight", DType::kQ8_0, {q, d}});
    t.push_back({p + "ffn_norm.weight", DType::kF32, {d}});
    t.push_back({p + "ffn_gate.weight", DType::kQ8_0, {d, ff}});
    t.push_back({p + "ffn_up.weight", DType::kQ8_0, {d, ff}});
    t.push_back({p + "ffn_down.weight", DType::kQ8_0, {ff, d}});
  }
  return t;
}

std::vector<uint8_t> TinyGguf(const std::vector<TensorSpec>& tensors,
                              const std::function<void(GgufWriter&)>& edit) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetString("general.name", "tiny");
  w.SetAlignment(32);
  w.SetU32("llama.context_length", 64);
  w.SetU32("llama.embedding_length", kTinyD);
  w.SetU32("llama.block_count", kTinyLayers);
  w.SetU32("llama.feed_forward_length", kTinyFf);
  w.SetU32("llama.attention.head_count", kTinyHeads);
  w.SetU32("llama.attention.head_count_kv", kTinyKv);
  w.SetF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.SetF32("llama.rope.freq_base", 10000.0f);
  w.SetString("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens;
  for (int k = 0; k < kTinyVocab; ++k) tokens.push_back(absl::StrCat("t", k));
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  std::mt19937 rng(7);
  for (const TensorSpec& t : tensors) {
    int64_t rows = 1;
    for (size_t k = 1; k < t.ne.size(); ++k) rows *= t.ne[k];
    std::vector<float> row(t.ne[0]);
    std::vector<uint8_t> data;
    const int64_t row_bytes = kernels::RowBytes(t.type, t.ne[0]);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    for (int64_t r = 0; r < rows; ++r) {
      for (float& x : row) x = dist(rng);
      const size_t at = data.size();
      data.resize(at + row_bytes);
      kernels::QuantizeRow(t.type, row.data(), data.data() + at, t.ne[0]);
    }
    WEFT_CHECK(w.AddTensor(t.name, t.type, t.ne, data).ok());
  }
  if (edit) edit(w);
  absl::StatusOr<std::vector<uint8_t>> bytes = w.WriteToBytes();
  WEFT_CHECK(bytes.ok());
  return *bytes;
}

std::vector<uint8_t> TinyLlama2c(bool unshared) {
  const int32_t dim = 16, hidden = 32, layers = 2, heads = 4, kv = 2, vocab = 10, seq = 8;
  const int32_t header[7] = {dim, hidden, layers, heads, kv, unshared ? -vocab : vocab, seq};
  const int64_t head = dim / heads, kv_dim = kv * head;
  const int64_t n = int64_t{vocab} * dim + layers * dim * 2 + layers * dim * (dim + 2 * kv_dim) +
                    layers * dim * dim + layers * dim * hidden * 3 + dim + seq * head +
                    (unshared ? int64_t{vocab} * dim : 0);
  std::vector<uint8_t> out(sizeof(header) + 4 * n);
  std::memcpy(out.data(), header, sizeof(header));
  for (int64_t k = 0; k < n; ++k) {
    const float x = 0.001f * static_cast<float>(k % 1000);
    std::memcpy(out.data() + sizeof(header) + 4 * k, &x, 4);
  }
  return out;
}

std::vector<uint8_t> TinySafetensors() {
  auto bytes_of = [](const std::vector<float>& v, const std::string& dtype) {
    std::vector<uint8_t> b;
    for (float x : v) {
      if (dtype == "F32") {
        const auto* p = reinterpret_cast<const uint8_t*>(&x);
        b.insert(b.end(), p, p + 4);
      } else {
        const uint16_t h = dtype == "F16" ? kernels::Fp32ToFp16(x) : kernels::Fp32ToBf16(x);
        b.push_back(h & 0xff);
        b.push_back(h >> 8);
      }
    }
    return b;
  };
  const std::vector<float> v = {1, -2, 3.5f, 0.25f, 8, -0.5f};
  return SafetensorsBytes({{"a.weight", "F32", {2, 3}, bytes_of(v, "F32")},
                           {"b.weight", "F16", {6}, bytes_of(v, "F16")},
                           {"c.weight", "BF16", {3, 2}, bytes_of(v, "BF16")}},
                          {{"format", "pt"}});
}

}  // namespace weft::model::testing
