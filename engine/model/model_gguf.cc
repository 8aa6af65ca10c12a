// SPDX-License-Identifier: Apache-2.0
// GGUF -> Model: hyper-parameters from `<arch>.*` metadata, weights as views into the mapping.
#include <filesystem>
#include <limits>

#include "base/status.h"
#include "engine/model/cat.h"
#include "engine/model/loaders.h"

namespace weft::model {
namespace {

// An integer hyper-parameter that must fit an int. `def` < 0 means required.
absl::StatusOr<int> GetInt(const GgufFile& g, const std::string& key, int64_t def) {
  absl::StatusOr<int64_t> v = g.GetI64(key);
  if (absl::IsNotFound(v.status())) {
    if (def < 0) {
      return absl::InvalidArgumentError(
          Cat("GGUF ", g.path(), ": required metadata key '", key, "' is missing"));
    }
    return static_cast<int>(def);
  }
  if (!v.ok()) return v.status();
  if (*v < 0 || *v > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(
        Cat("GGUF ", g.path(), ": metadata key '", key, "' = ", *v, " is out of range"));
  }
  return static_cast<int>(*v);
}

absl::StatusOr<float> GetFloat(const GgufFile& g, const std::string& key, float def,
                               bool required) {
  absl::StatusOr<float> v = g.GetF32(key);
  if (absl::IsNotFound(v.status())) {
    if (required) {
      return absl::InvalidArgumentError(
          Cat("GGUF ", g.path(), ": required metadata key '", key, "' is missing"));
    }
    return def;
  }
  return v;
}

Tensor View(const GgufFile& g, const std::string& name) {
  Tensor t;
  t.name = name;
  if (const GgufTensorInfo* info = g.FindTensor(name)) {
    t.type = info->type;
    t.ne = info->ne;
    t.data = info->data;
  }
  return t;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> ModelFromGguf(std::unique_ptr<GgufFile> gguf) {
  auto m = std::make_unique<Model>();
  const GgufFile& g = *gguf;
  m->format = ModelFormat::kGguf;
  m->path = g.path();
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(Cat("GGUF ", g.path(), ": ", what));
  };
  absl::StatusOr<std::string_view> arch_or = g.GetString("general.architecture");
  if (!arch_or.ok()) {
    if (absl::IsNotFound(arch_or.status())) return bad("general.architecture is missing");
    return arch_or.status();
  }
  const std::string arch(*arch_or);
  ModelConfig& c = m->config;
  if (arch == "llama") {
    c.arch = "llama";
    c.rope_layout = RopeLayout::kAdjacentPairs;
  } else if (arch == "qwen2") {
    c.arch = "qwen2";
    c.rope_layout = RopeLayout::kHalves;  // llama.cpp runs qwen2 with NEOX rope
    c.qkv_bias = true;
  } else {
    return bad(Cat("unsupported architecture '", arch, "' (supported: llama, qwen2)"));
  }
  if (absl::StatusOr<std::string_view> name = g.GetString("general.name"); name.ok()) {
    c.name = std::string(*name);
  } else {
    c.name = std::filesystem::path(g.path()).stem().string();
  }
  const std::string k = arch + ".";
  WEFT_ASSIGN_OR_RETURN(c.n_layers, GetInt(g, k + "block_count", -1));
  WEFT_ASSIGN_OR_RETURN(c.d_model, GetInt(g, k + "embedding_length", -1));
  WEFT_ASSIGN_OR_RETURN(c.d_ff, GetInt(g, k + "feed_forward_length", -1));
  WEFT_ASSIGN_OR_RETURN(c.n_heads, GetInt(g, k + "attention.head_count", -1));
  WEFT_ASSIGN_OR_RETURN(c.n_kv_heads, GetInt(g, k + "attention.head_count_kv", c.n_heads));
  WEFT_ASSIGN_OR_RETURN(c.max_ctx, GetInt(g, k + "context_length", -1));
  if (c.n_heads <= 0) return bad(Cat(k, "attention.head_count is ", c.n_heads));
  WEFT_ASSIGN_OR_RETURN(c.head_dim, GetInt(g, k + "attention.key_length", c.d_model / c.n_heads));
  WEFT_ASSIGN_OR_RETURN(c.rope_dim, GetInt(g, k + "rope.dimension_count", c.head_dim));
  WEFT_ASSIGN_OR_RETURN(c.norm_eps, GetFloat(g, k + "attention.layer_norm_rms_epsilon", 0, true));
  WEFT_ASSIGN_OR_RETURN(c.rope_freq_base, GetFloat(g, k + "rope.freq_base", 10000.0f, false));
  if (absl::StatusOr<int64_t> vl = g.GetI64(k + "attention.value_length");
      vl.ok() && *vl != c.head_dim) {
    return bad(Cat(k, "attention.value_length ", *vl, " differs from key_length ", c.head_dim,
                   " (unsupported)"));
  }
  // Rope scaling given as parameters (linear); Llama-3 scaling comes as rope_freqs.weight.
  if (absl::StatusOr<std::string_view> type = g.GetString(k + "rope.scaling.type"); type.ok()) {
    if (*type == "linear") {
      c.rope_scaling.kind = RopeScaling::Kind::kLinear;
      WEFT_ASSIGN_OR_RETURN(c.rope_scaling.factor,
                            GetFloat(g, k + "rope.scaling.factor", 1.0f, true));
    } else if (*type != "none") {
      return bad(Cat("unsupported rope scaling type '", *type, "'"));
    }
  } else if (absl::StatusOr<float> f = g.GetF32(k + "rope.scale_linear"); f.ok() && *f != 1.0f) {
    c.rope_scaling.kind = RopeScaling::Kind::kLinear;  // older GGUFs
    c.rope_scaling.factor = *f;
  }

  ModelWeights& w = m->weights;
  w.tok_embd = View(g, "token_embd.weight");
  if (!w.tok_embd.present()) return bad("missing tensor token_embd.weight");
  if (absl::StatusOr<std::vector<std::string_view>> tokens =
          g.GetStringArray("tokenizer.ggml.tokens");
      tokens.ok()) {
    if (tokens->size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
      return bad("tokenizer.ggml.tokens is too long");
    }
    c.vocab_size = static_cast<int>(tokens->size());
  } else {
    if (w.tok_embd.ne[1] > std::numeric_limits<int>::max()) return bad("vocab too large");
    c.vocab_size = static_cast<int>(w.tok_embd.ne[1]);
  }
  w.output_norm = View(g, "output_norm.weight");
  w.output = View(g, "output.weight");
  if (!w.output.present()) {
    c.tied_embeddings = true;
    w.output = w.tok_embd;
  }
  w.rope_freqs = View(g, "rope_freqs.weight");
  if (c.n_layers < 0 || static_cast<size_t>(c.n_layers) > g.tensors().size()) {
    return bad(Cat(k, "block_count ", c.n_layers, " is more than the file's ", g.tensors().size(),
                   " tensors allow"));
  }
  w.layers.resize(c.n_layers);
  bool any_bias = false;
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = Cat("blk.", l, ".");
    L.attn_norm = View(g, p + "attn_norm.weight");
    L.wq = View(g, p + "attn_q.weight");
    L.wk = View(g, p + "attn_k.weight");
    L.wv = View(g, p + "attn_v.weight");
    L.wo = View(g, p + "attn_output.weight");
    L.bq = View(g, p + "attn_q.bias");
    L.bk = View(g, p + "attn_k.bias");
    L.bv = View(g, p + "attn_v.bias");
    L.ffn_norm = View(g, p + "ffn_norm.weight");
    L.w_gate = View(g, p + "ffn_gate.weight");
    L.w_up = View(g, p + "ffn_up.weight");
    L.w_down = View(g, p + "ffn_down.weight");
    any_bias |= L.bq.present() || L.bk.present() || L.bv.present();
  }
  if (any_bias) c.qkv_bias = true;  // llama files may carry optional q/k/v biases
  // Norms and biases as f32 (a few files store them as f16).
  WEFT_RETURN_IF_ERROR(ConvertToF32(*m, w.output_norm));
  for (LayerWeights& L : w.layers) {
    for (Tensor* t : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv}) {
      WEFT_RETURN_IF_ERROR(ConvertToF32(*m, *t));
    }
  }
  for (const GgufTensorInfo& t : g.tensors()) m->weight_bytes += t.nbytes;
  m->tokenizer.gguf = gguf.get();
  m->gguf = std::move(gguf);
  WEFT_RETURN_IF_ERROR(ValidateModel(*m));
  return m;
}

}  // namespace weft::model
