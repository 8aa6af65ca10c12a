// SPDX-License-Identifier: Apache-2.0
#include "engine/model/arch/llama.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace weft::model {

kernels::WeightView ViewOf(const Tensor& t) {
  return kernels::WeightView{t.type, t.data, t.ne[0], t.rows()};
}

LlamaForward::LlamaForward(const Model& model, const ForwardOptions& options) : model_(model) {
  (void)options;
}

absl::StatusOr<std::unique_ptr<LlamaForward>> LlamaForward::Create(const Model& model,
                                                                   const ForwardOptions& options) {
  const ModelConfig& c = model.config;
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "mistral") {
    return absl::UnimplementedError(
        absl::StrCat(model.path, ": architecture '", c.arch, "' is not supported (llama, qwen2)"));
  }
  if (c.n_layers <= 0 || c.d_model <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 ||
      c.d_ff <= 0 || c.vocab_size <= 0 || c.n_heads % c.n_kv_heads != 0 ||
      static_cast<int>(model.weights.layers.size()) != c.n_layers) {
    return absl::InvalidArgumentError(absl::StrCat(model.path, ": inconsistent hyper-parameters"));
  }
  if (options.n_batch <= 0 || options.n_threads <= 0) {
    return absl::InvalidArgumentError("n_batch and n_threads must be positive");
  }
  if (!kernels::IsaSupported(options.isa)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "instruction set ", std::string(kernels::IsaName(options.isa)), " is not supported here"));
  }
  auto f = std::unique_ptr<LlamaForward>(new LlamaForward(model, options));
  int n_ctx = options.n_ctx;
  // Default as llama.cpp: the trained context, at least 512 (tiny models declare less than their
  // tests run) and at most 4096 (a 128K-context model would otherwise reserve gigabytes of KV).
  if (n_ctx <= 0) n_ctx = std::clamp(c.max_ctx, 512, 4096);
  f->n_ctx_ = n_ctx;
  f->n_batch_ = std::min(options.n_batch, n_ctx);
  f->backend_ = kernels::Backend::Create({options.isa, options.n_threads});

  kernels::RopeParams& r = f->rope_;
  r.head_dim = c.head_dim;
  r.rope_dim = c.rope_dim > 0 ? c.rope_dim : c.head_dim;
  r.freq_base = c.rope_freq_base;
  r.mode = c.rope_layout == RopeLayout::kHalves ? kernels::RopeMode::kHalves
                                                : kernels::RopeMode::kAdjacentPairs;
  switch (c.rope_scaling.kind) {
    case RopeScaling::Kind::kNone:
      break;
    case RopeScaling::Kind::kLinear:
      r.linear_factor = c.rope_scaling.factor;
      break;
    case RopeScaling::Kind::kLlama3:
      r.llama3_factor = c.rope_scaling.factor;
      r.llama3_low_freq_factor = c.rope_scaling.low_freq_factor;
      r.llama3_high_freq_factor = c.rope_scaling.high_freq_factor;
      r.llama3_original_max_position = c.rope_scaling.original_max_position;
      break;
  }
  const Tensor& rf = model.weights.rope_freqs;
  if (rf.present()) {
    if (rf.ne[0] != r.rope_dim / 2) {
      return absl::InvalidArgumentError(absl::StrCat(model.path, ": rope_freqs has ", rf.ne[0],
                                                     " entries, expected ", r.rope_dim / 2));
    }
    f->rope_freqs_.resize(rf.ne[0]);
    kernels::DequantizeRow(rf.type, rf.data, f->rope_freqs_.data(), rf.ne[0]);
    r.freq_factors = f->rope_freqs_.data();
  }

  for (const LayerWeights& l : model.weights.layers) {
    LayerVectors v;
    v.attn_norm = f->F32Vector(l.attn_norm);
    v.ffn_norm = f->F32Vector(l.ffn_norm);
    v.bq = f->F32Vector(l.bq);
    v.bk = f->F32Vector(l.bk);
    v.bv = f->F32Vector(l.bv);
    if (v.attn_norm == nullptr || v.ffn_norm == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(model.path, ": missing norm weights"));
    }
    f->layer_vectors_.push_back(v);
  }
  f->output_norm_ = f->F32Vector(model.weights.output_norm);
  if (f->output_norm_ == nullptr || !model.weights.output.present() ||
      !model.weights.tok_embd.present()) {
    return absl::InvalidArgumentError(absl::StrCat(model.path, ": missing output weights"));
  }

  const int64_t kv_dim = static_cast<int64_t>(c.n_kv_heads) * c.head_dim;
  const int64_t q_dim = static_cast<int64_t>(c.n_heads) * c.head_dim;
  const int64_t nb = f->n_batch_;
  f->k_cache_.assign(static_cast<size_t>(c.n_layers) * n_ctx * kv_dim, 0.0f);
  f->v_cache_.assign(static_cast<size_t>(c.n_layers) * n_ctx * kv_dim, 0.0f);
  f->x_.resize(nb * c.d_model);
  f->xb_.resize(nb * std::max<int64_t>(c.d_model, q_dim));
  f->xb2_.resize(nb * c.d_model);
  f->q_.resize(nb * q_dim);
  f->att_.resize(nb * q_dim);
  f->hb_.resize(nb * c.d_ff);
  f->hb2_.resize(nb * c.d_ff);
  f->positions_.resize(nb);
  return f;
}

const float* LlamaForward::F32Vector(const Tensor& t) {
  if (!t.present()) return nullptr;
  if (t.type == kernels::DType::kF32) return static_cast<const float*>(t.data);
  const int64_t n = t.ne[0] * t.rows();
  std::vector<float>& out = converted_.emplace_back(n);
  kernels::DequantizeRow(t.type, t.data, out.data(), n);
  return out.data();
}

absl::StatusOr<std::span<const float>> LlamaForward::Forward(std::span<const int32_t> tokens,
                                                             bool all_logits) {
  const ModelConfig& c = model_.config;
  if (tokens.empty()) return absl::InvalidArgumentError("no tokens to run");
  if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx_) {
    return absl::InvalidArgumentError(absl::StrCat("context overflow: ", n_past_, " + ",
                                                   tokens.size(), " tokens > n_ctx ", n_ctx_));
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", t, " out of range [0, ", c.vocab_size, ")"));
    }
  }
  const int64_t vocab = c.vocab_size;
  const size_t n_total = tokens.size();
  logits_.resize(all_logits ? n_total * vocab : vocab);
  for (size_t done = 0; done < n_total;) {
    const int n = static_cast<int>(std::min<size_t>(n_batch_, n_total - done));
    Step(tokens.data() + done, n, all_logits ? logits_.data() + done * vocab : nullptr);
    done += n;
  }
  if (all_logits) return std::span<const float>(logits_.data(), n_total * vocab);
  return std::span<const float>(logits_.data(), vocab);
}

void LlamaForward::Step(const int32_t* tokens, int n, float* all_logits) {
  const ModelConfig& c = model_.config;
  const ModelWeights& w = model_.weights;
  kernels::Backend& be = *backend_;
  const int64_t d = c.d_model;
  const int64_t hd = c.head_dim;
  const int64_t q_dim = static_cast<int64_t>(c.n_heads) * hd;
  const int64_t kv_dim = static_cast<int64_t>(c.n_kv_heads) * hd;
  const int64_t layer_kv = static_cast<int64_t>(n_ctx_) * kv_dim;
  const int pos0 = n_past_;

  for (int t = 0; t < n; ++t) {
    positions_[t] = pos0 + t;
    be.EmbeddingLookup(ViewOf(w.tok_embd), tokens[t], x_.data() + t * d);
  }
  kernels::AttentionParams ap;
  ap.n_heads = c.n_heads;
  ap.n_kv_heads = c.n_kv_heads;
  ap.head_dim = c.head_dim;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(hd));

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const LayerVectors& lv = layer_vectors_[l];
    float* k_cache = k_cache_.data() + l * layer_kv;
    float* v_cache = v_cache_.data() + l * layer_kv;
    // New keys and values go straight into the cache rows of their positions (consecutive).
    float* k_new = k_cache + static_cast<int64_t>(pos0) * kv_dim;
    float* v_new = v_cache + static_cast<int64_t>(pos0) * kv_dim;

    be.RmsNorm(x_.data(), lv.attn_norm, d, n, c.norm_eps, xb_.data());
    be.MatMul(ViewOf(lw.wq), xb_.data(), n, q_.data());
    be.MatMul(ViewOf(lw.wk), xb_.data(), n, k_new);
    be.MatMul(ViewOf(lw.wv), xb_.data(), n, v_new);
    if (lv.bq != nullptr) {
      for (int t = 0; t < n; ++t) be.Add(lv.bq, q_dim, q_.data() + t * q_dim);
    }
    if (lv.bk != nullptr) {
      for (int t = 0; t < n; ++t) be.Add(lv.bk, kv_dim, k_new + t * kv_dim);
    }
    if (lv.bv != nullptr) {
      for (int t = 0; t < n; ++t) be.Add(lv.bv, kv_dim, v_new + t * kv_dim);
    }
    be.Rope(q_.data(), n, c.n_heads, positions_.data(), rope_);
    be.Rope(k_new, n, c.n_kv_heads, positions_.data(), rope_);
    be.Attention(q_.data(), k_cache, v_cache, n, positions_.data(), ap, att_.data());
    be.MatMul(ViewOf(lw.wo), att_.data(), n, xb2_.data());
    be.Add(xb2_.data(), n * d, x_.data());

    be.RmsNorm(x_.data(), lv.ffn_norm, d, n, c.norm_eps, xb_.data());
    be.MatMul(ViewOf(lw.w_gate), xb_.data(), n, hb_.data());
    be.MatMul(ViewOf(lw.w_up), xb_.data(), n, hb2_.data());
    be.SiluMul(hb_.data(), hb2_.data(), n * c.d_ff, hb_.data());
    be.MatMul(ViewOf(lw.w_down), hb_.data(), n, xb2_.data());
    be.Add(xb2_.data(), n * d, x_.data());
  }
  n_past_ += n;

  // Logits: of every token when asked, else only of the last one (skips the big output matmul).
  if (all_logits != nullptr) {
    be.RmsNorm(x_.data(), output_norm_, d, n, c.norm_eps, xb_.data());
    be.MatMul(ViewOf(w.output), xb_.data(), n, all_logits);
  } else {
    be.RmsNorm(x_.data() + (n - 1) * d, output_norm_, d, 1, c.norm_eps, xb_.data());
    be.MatMul(ViewOf(w.output), xb_.data(), 1, logits_.data());
  }
}

}  // namespace weft::model
