// SPDX-License-Identifier: Apache-2.0
// LoadModel: format detection and the validation shared by every format.
#include "engine/model/model.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "absl/strings/str_join.h"
#include "base/status.h"
#include "engine/kernels/kernels.h"
#include "engine/model/cat.h"
#include "engine/model/loaders.h"

namespace weft::model {
namespace {

std::string Shape(const std::array<int64_t, 4>& ne) {
  int n = 4;
  while (n > 1 && ne[n - 1] == 1) --n;
  return Cat("[", absl::StrJoin(ne.begin(), ne.begin() + n, ", "), "]");
}

}  // namespace

absl::Status ConvertToF32(Model& model, Tensor& t) {
  if (t.data == nullptr || t.type == kernels::DType::kF32) {
    if (t.data != nullptr && reinterpret_cast<uintptr_t>(t.data) % alignof(float) != 0) {
      const int64_t n = t.ne[0] * t.rows();
      std::vector<uint8_t>& buf = model.owned.emplace_back(n * sizeof(float));
      std::memcpy(buf.data(), t.data, buf.size());
      t.data = buf.data();
    }
    return absl::OkStatus();
  }
  if (t.type != kernels::DType::kF16 && t.type != kernels::DType::kBF16) {
    return absl::InvalidArgumentError(Cat(model.path, ": tensor '", t.name, "' has type ",
                                          kernels::Traits(t.type).name,
                                          "; norms and biases must be f32, f16 or bf16"));
  }
  const int64_t n = t.ne[0] * t.rows();
  std::vector<uint8_t>& buf = model.owned.emplace_back(n * sizeof(float));
  float* out = reinterpret_cast<float*>(buf.data());
  const uint8_t* in = static_cast<const uint8_t*>(t.data);
  for (int64_t k = 0; k < n; ++k) {
    uint16_t h;
    std::memcpy(&h, in + 2 * k, 2);
    out[k] = t.type == kernels::DType::kF16 ? kernels::Fp16ToFp32(h) : kernels::Bf16ToFp32(h);
  }
  t.data = buf.data();
  t.type = kernels::DType::kF32;
  return absl::OkStatus();
}

absl::Status ValidateModel(const Model& m) {
  const ModelConfig& c = m.config;
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(Cat(m.path, ": ", what));
  };
  constexpr int kMaxDim = 1 << 20;
  auto in_range = [&](std::string_view field, int64_t v, int64_t lo, int64_t hi) -> absl::Status {
    if (v < lo || v > hi) {
      return bad(Cat("config ", field, " = ", v, " is outside [", lo, ", ", hi, "]"));
    }
    return absl::OkStatus();
  };
  WEFT_RETURN_IF_ERROR(in_range("n_layers", c.n_layers, 1, 1 << 12));
  WEFT_RETURN_IF_ERROR(in_range("d_model", c.d_model, 1, kMaxDim));
  WEFT_RETURN_IF_ERROR(in_range("n_heads", c.n_heads, 1, 1 << 12));
  WEFT_RETURN_IF_ERROR(in_range("n_kv_heads", c.n_kv_heads, 1, c.n_heads));
  WEFT_RETURN_IF_ERROR(in_range("head_dim", c.head_dim, 2, 1 << 14));
  WEFT_RETURN_IF_ERROR(in_range("rope_dim", c.rope_dim, 2, c.head_dim));
  WEFT_RETURN_IF_ERROR(in_range("d_ff", c.d_ff, 1, kMaxDim));
  WEFT_RETURN_IF_ERROR(in_range("vocab_size", c.vocab_size, 1, 1 << 24));
  WEFT_RETURN_IF_ERROR(in_range("max_ctx", c.max_ctx, 1, 1 << 30));
  if (c.n_heads % c.n_kv_heads != 0) {
    return bad(Cat("n_heads ", c.n_heads, " is not a multiple of n_kv_heads ", c.n_kv_heads));
  }
  if (c.rope_dim % 2 != 0) return bad(Cat("rope_dim ", c.rope_dim, " is odd"));
  if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps) || c.norm_eps > 1) {
    return bad(Cat("norm_eps ", c.norm_eps, " is not in (0, 1]"));
  }
  if (!(c.rope_freq_base > 0) || !std::isfinite(c.rope_freq_base)) {
    return bad(Cat("rope_freq_base ", c.rope_freq_base, " is not positive"));
  }
  if (c.rope_scaling.kind != RopeScaling::Kind::kNone &&
      (!(c.rope_scaling.factor > 0) || !std::isfinite(c.rope_scaling.factor))) {
    return bad(Cat("rope scaling factor ", c.rope_scaling.factor, " is not positive"));
  }
  if (m.weights.layers.size() != static_cast<size_t>(c.n_layers)) {
    return bad(
        Cat("has ", m.weights.layers.size(), " layers of weights, config says ", c.n_layers));
  }

  const int64_t d = c.d_model, q_dim = int64_t{c.n_heads} * c.head_dim,
                kv_dim = int64_t{c.n_kv_heads} * c.head_dim, ff = c.d_ff, vocab = c.vocab_size;
  // `what` names the role for tensors that are absent (no name of their own).
  auto check = [&](const Tensor& t, std::string_view what, std::array<int64_t, 4> want,
                   bool f32_only) -> absl::Status {
    if (!t.present()) return bad(Cat("missing tensor ", t.name.empty() ? what : t.name));
    if (t.ne != want) {
      return bad(Cat("tensor '", t.name, "' has shape ", Shape(t.ne), ", expected ", Shape(want),
                     " for ", what));
    }
    if (f32_only && t.type != kernels::DType::kF32) {
      return bad(
          Cat("tensor '", t.name, "' has type ", kernels::Traits(t.type).name, ", expected f32"));
    }
    // Kernels read f32 as float and f16/bf16 and block scales as 16-bit words.
    const uintptr_t align = t.type == kernels::DType::kF32 ? 4 : 2;
    if (reinterpret_cast<uintptr_t>(t.data) % align != 0) {
      return bad(Cat("tensor '", t.name, "' data is not aligned to ", align,
                     " bytes (GGUF general.alignment too small?)"));
    }
    if (t.ne[0] % kernels::Traits(t.type).block_size != 0) {
      return bad(Cat("tensor '", t.name, "' row length ", t.ne[0],
                     " is not a multiple of the block size"));
    }
    return absl::OkStatus();
  };
  const ModelWeights& w = m.weights;
  WEFT_RETURN_IF_ERROR(check(w.tok_embd, "token embeddings", {d, vocab, 1, 1}, false));
  WEFT_RETURN_IF_ERROR(check(w.output_norm, "output norm", {d, 1, 1, 1}, true));
  WEFT_RETURN_IF_ERROR(check(w.output, "output", {d, vocab, 1, 1}, false));
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[l];
    const std::string at = Cat(" (layer ", l, ")");
    WEFT_RETURN_IF_ERROR(check(L.attn_norm, "attn_norm" + at, {d, 1, 1, 1}, true));
    WEFT_RETURN_IF_ERROR(check(L.wq, "wq" + at, {d, q_dim, 1, 1}, false));
    WEFT_RETURN_IF_ERROR(check(L.wk, "wk" + at, {d, kv_dim, 1, 1}, false));
    WEFT_RETURN_IF_ERROR(check(L.wv, "wv" + at, {d, kv_dim, 1, 1}, false));
    WEFT_RETURN_IF_ERROR(check(L.wo, "wo" + at, {q_dim, d, 1, 1}, false));
    if (c.qkv_bias) {
      WEFT_RETURN_IF_ERROR(check(L.bq, "bq" + at, {q_dim, 1, 1, 1}, true));
      WEFT_RETURN_IF_ERROR(check(L.bk, "bk" + at, {kv_dim, 1, 1, 1}, true));
      WEFT_RETURN_IF_ERROR(check(L.bv, "bv" + at, {kv_dim, 1, 1, 1}, true));
    } else if (L.bq.present() || L.bk.present() || L.bv.present()) {
      return bad(Cat("layer ", l, " has q/k/v biases but the config has none"));
    }
    WEFT_RETURN_IF_ERROR(check(L.ffn_norm, "ffn_norm" + at, {d, 1, 1, 1}, true));
    WEFT_RETURN_IF_ERROR(check(L.w_gate, "w_gate" + at, {d, ff, 1, 1}, false));
    WEFT_RETURN_IF_ERROR(check(L.w_up, "w_up" + at, {d, ff, 1, 1}, false));
    WEFT_RETURN_IF_ERROR(check(L.w_down, "w_down" + at, {ff, d, 1, 1}, false));
  }
  if (w.rope_freqs.present()) {
    WEFT_RETURN_IF_ERROR(check(w.rope_freqs, "rope_freqs", {c.rope_dim / 2, 1, 1, 1}, true));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& path,
                                                 const LoadOptions& options) {
  std::error_code ec;
  const std::filesystem::path p(path);
  if (std::filesystem::is_directory(p, ec)) return LoadHfCheckpoint(path, options);
  if (p.filename() == "config.json" || p.extension() == ".safetensors") {
    return LoadHfCheckpoint(p.has_parent_path() ? p.parent_path().string() : ".", options);
  }
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<MmapFile> map, MmapFile::Open(path));
  if (map->size() >= 4 && std::memcmp(map->data(), "GGUF", 4) == 0) {
    map.reset();
    WEFT_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
    return ModelFromGguf(std::move(gguf));
  }
  return LoadLlama2c(path, options);
}

}  // namespace weft::model
