// SPDX-License-Identifier: Apache-2.0
#include "engine/model/arch/batch_forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace weft::model {

kernels::WeightView ViewOf(const Tensor& t) {
  return kernels::WeightView{t.type, t.data, t.ne[0], t.rows()};
}

absl::StatusOr<std::unique_ptr<BatchForward>> BatchForward::Create(
    const Model& model, const BatchForwardOptions& options) {
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
  if (options.n_blocks <= 0 || options.block_size <= 0 || options.max_batch_tokens <= 0 ||
      options.n_threads <= 0) {
    return absl::InvalidArgumentError(
        "n_blocks, block_size, max_batch_tokens and n_threads must be positive");
  }
  if (!kernels::IsaSupported(options.isa)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "instruction set ", std::string(kernels::IsaName(options.isa)), " is not supported here"));
  }
  auto f = std::unique_ptr<BatchForward>(new BatchForward(model));
  f->n_blocks_ = options.n_blocks;
  f->block_size_ = options.block_size;
  f->max_batch_tokens_ = options.max_batch_tokens;
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
  const int64_t nb = f->max_batch_tokens_;
  const int64_t pool_rows = static_cast<int64_t>(options.n_blocks) * options.block_size;
  f->pool_floats_ = static_cast<size_t>(c.n_layers) * pool_rows * kv_dim;
  f->k_pool_.reset(static_cast<float*>(std::calloc(f->pool_floats_, sizeof(float))));
  f->v_pool_.reset(static_cast<float*>(std::calloc(f->pool_floats_, sizeof(float))));
  if (f->k_pool_ == nullptr || f->v_pool_ == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate ", 2 * f->pool_floats_ * sizeof(float) >> 20, " MiB of KV cache"));
  }
  f->x_.resize(nb * c.d_model);
  f->xb_.resize(nb * std::max<int64_t>(c.d_model, q_dim));
  f->xb2_.resize(nb * c.d_model);
  f->q_.resize(nb * q_dim);
  f->k_.resize(nb * kv_dim);
  f->v_.resize(nb * kv_dim);
  f->hb_.resize(nb * c.d_ff);
  f->hb2_.resize(nb * c.d_ff);
  f->positions_.resize(nb);
  f->adapter_of_row_.resize(nb);
  return f;
}

const float* BatchForward::F32Vector(const Tensor& t) {
  if (!t.present()) return nullptr;
  if (t.type == kernels::DType::kF32) return static_cast<const float*>(t.data);
  const int64_t n = t.ne[0] * t.rows();
  std::vector<float>& out = converted_.emplace_back(n);
  kernels::DequantizeRow(t.type, t.data, out.data(), n);
  return out.data();
}

void BatchForward::Project(const Tensor& w, int layer, ProjectionHook::Target target,
                           const float* x, int64_t n, float* y) {
  backend_->MatMul(ViewOf(w), x, n, y);
  if (hook_ != nullptr) hook_->Apply(*backend_, layer, target, x, n, hook_rows_, y);
}

absl::StatusOr<std::span<const float>> BatchForward::Forward(std::span<const SeqChunk> chunks,
                                                             ProjectionHook* hook) {
  const ModelConfig& c = model_.config;
  int64_t n = 0;
  int64_t n_wanted = 0;
  bool any_adapter = false;
  for (const SeqChunk& ch : chunks) {
    if (ch.tokens.empty()) return absl::InvalidArgumentError("empty chunk");
    const int64_t end = static_cast<int64_t>(ch.start_pos) + ch.tokens.size();
    if (ch.start_pos < 0 ||
        (end + block_size_ - 1) / block_size_ > static_cast<int64_t>(ch.block_table.size())) {
      return absl::InvalidArgumentError(absl::StrCat("block table of ", ch.block_table.size(),
                                                     " blocks does not cover position ", end - 1));
    }
    for (int32_t b : ch.block_table) {
      if (b < 0 || b >= n_blocks_) {
        return absl::InvalidArgumentError(absl::StrCat("block id ", b, " out of range"));
      }
    }
    for (int32_t t : ch.tokens) {
      if (t < 0 || t >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", t, " out of range [0, ", c.vocab_size, ")"));
      }
    }
    n += static_cast<int64_t>(ch.tokens.size());
    n_wanted += ch.want_logits ? 1 : 0;
    any_adapter |= ch.adapter >= 0;
  }
  if (n == 0) return absl::InvalidArgumentError("no tokens to run");
  if (n > max_batch_tokens_) {
    return absl::InvalidArgumentError(
        absl::StrCat(n, " tokens exceed the step's maximum of ", max_batch_tokens_));
  }

  kernels::Backend& be = *backend_;
  const ModelWeights& w = model_.weights;
  const int64_t d = c.d_model;
  const int64_t hd = c.head_dim;
  const int64_t q_dim = static_cast<int64_t>(c.n_heads) * hd;
  const int64_t kv_dim = static_cast<int64_t>(c.n_kv_heads) * hd;
  const int64_t layer_rows = static_cast<int64_t>(n_blocks_) * block_size_;

  int64_t row = 0;
  for (const SeqChunk& ch : chunks) {
    for (size_t i = 0; i < ch.tokens.size(); ++i, ++row) {
      positions_[row] = ch.start_pos + static_cast<int32_t>(i);
      adapter_of_row_[row] = ch.adapter;
      be.EmbeddingLookup(ViewOf(w.tok_embd), ch.tokens[i], x_.data() + row * d);
    }
  }
  hook_ = any_adapter ? hook : nullptr;
  hook_rows_ = std::span<const int32_t>(adapter_of_row_.data(), n);

  kernels::AttentionParams ap;
  ap.n_heads = c.n_heads;
  ap.n_kv_heads = c.n_kv_heads;
  ap.head_dim = c.head_dim;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  using T = ProjectionHook::Target;

  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const LayerVectors& lv = layer_vectors_[l];
    float* k_pool = k_pool_.get() + l * layer_rows * kv_dim;
    float* v_pool = v_pool_.get() + l * layer_rows * kv_dim;

    be.RmsNorm(x_.data(), lv.attn_norm, d, n, c.norm_eps, xb_.data());
    Project(lw.wq, l, T::kQ, xb_.data(), n, q_.data());
    Project(lw.wk, l, T::kK, xb_.data(), n, k_.data());
    Project(lw.wv, l, T::kV, xb_.data(), n, v_.data());
    for (int64_t t = 0; t < n; ++t) {
      if (lv.bq != nullptr) be.Add(lv.bq, q_dim, q_.data() + t * q_dim);
      if (lv.bk != nullptr) be.Add(lv.bk, kv_dim, k_.data() + t * kv_dim);
      if (lv.bv != nullptr) be.Add(lv.bv, kv_dim, v_.data() + t * kv_dim);
    }
    be.Rope(q_.data(), n, c.n_heads, positions_.data(), rope_);
    be.Rope(k_.data(), n, c.n_kv_heads, positions_.data(), rope_);
    // New keys/values go to the pool slots of their positions; then each chunk attends over its
    // own sequence through its block table.
    row = 0;
    for (const SeqChunk& ch : chunks) {
      for (size_t i = 0; i < ch.tokens.size(); ++i, ++row) {
        const int32_t pos = positions_[row];
        const int64_t slot = static_cast<int64_t>(ch.block_table[pos / block_size_]) * block_size_ +
                             pos % block_size_;
        std::memcpy(k_pool + slot * kv_dim, k_.data() + row * kv_dim, kv_dim * sizeof(float));
        std::memcpy(v_pool + slot * kv_dim, v_.data() + row * kv_dim, kv_dim * sizeof(float));
      }
    }
    row = 0;
    for (const SeqChunk& ch : chunks) {
      be.PagedAttention(q_.data() + row * q_dim, k_pool, v_pool, ch.block_table.data(), block_size_,
                        static_cast<int64_t>(ch.tokens.size()), positions_.data() + row, ap,
                        xb_.data() + row * q_dim);
      row += static_cast<int64_t>(ch.tokens.size());
    }
    Project(lw.wo, l, T::kO, xb_.data(), n, xb2_.data());
    be.Add(xb2_.data(), n * d, x_.data());

    be.RmsNorm(x_.data(), lv.ffn_norm, d, n, c.norm_eps, xb_.data());
    Project(lw.w_gate, l, T::kGate, xb_.data(), n, hb_.data());
    Project(lw.w_up, l, T::kUp, xb_.data(), n, hb2_.data());
    be.SiluMul(hb_.data(), hb2_.data(), n * c.d_ff, hb_.data());
    Project(lw.w_down, l, T::kDown, hb_.data(), n, xb2_.data());
    be.Add(xb2_.data(), n * d, x_.data());
  }
  hook_ = nullptr;

  // Logits only for the chunks that want them (the last token of each): the output matrix is
  // the largest, so prompt chunks mid-prefill skip it.
  const int64_t vocab = c.vocab_size;
  int64_t out_row = 0;
  row = 0;
  for (const SeqChunk& ch : chunks) {
    row += static_cast<int64_t>(ch.tokens.size());
    if (!ch.want_logits) continue;
    be.RmsNorm(x_.data() + (row - 1) * d, output_norm_, d, 1, c.norm_eps, xb_.data() + out_row * d);
    ++out_row;
  }
  logits_.resize(n_wanted * vocab);
  if (n_wanted > 0) be.MatMul(ViewOf(w.output), xb_.data(), n_wanted, logits_.data());
  return std::span<const float>(logits_.data(), n_wanted * vocab);
}

}  // namespace weft::model
