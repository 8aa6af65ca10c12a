// SPDX-License-Identifier: Apache-2.0
// llama2.c v0 checkpoints (karpathy/llama2.c run.c): a 7 x int32 header, then f32 weights in a
// fixed order, all layers of one kind together. Views point into the mapping.
#include <cstring>
#include <filesystem>

#include "base/status.h"
#include "engine/model/cat.h"
#include "engine/model/loaders.h"

namespace weft::model {
namespace {

constexpr int kHeaderBytes = 7 * 4;

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> ModelFromLlama2c(std::span<const uint8_t> bytes,
                                                        const std::string& path) {
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(Cat("llama2.c checkpoint ", path, ": ", what));
  };
  if (bytes.size() < kHeaderBytes) {
    return absl::DataLossError(Cat("llama2.c checkpoint ", path, ": file has ", bytes.size(),
                                   " bytes, too short for its ", kHeaderBytes, "-byte header"));
  }
  int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof(h));
  if (std::memcmp(bytes.data(), "ak42", 4) == 0 || h[0] == 0x616b3432) {
    return bad(
        "llama2.c export versions 1/2 (magic 'ak42') are not supported; use the legacy "
        "v0 export");
  }
  const int32_t dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv = h[4],
                seq_len = h[6];
  const bool shared = h[5] > 0;
  const int64_t vocab = h[5] < 0 ? -int64_t{h[5]} : h[5];
  if (dim <= 0 || hidden <= 0 || n_layers <= 0 || n_heads <= 0 || n_kv <= 0 || vocab == 0 ||
      seq_len <= 0) {
    return bad(Cat("implausible header (dim ", dim, ", hidden_dim ", hidden, ", n_layers ",
                   n_layers, ", n_heads ", n_heads, ", n_kv_heads ", n_kv, ", vocab_size ", h[5],
                   ", seq_len ", seq_len, "): not a llama2.c v0 checkpoint"));
  }
  if (dim % n_heads != 0 || n_heads % n_kv != 0 || (dim / n_heads) % 2 != 0) {
    return bad(Cat("dim ", dim, ", n_heads ", n_heads, ", n_kv_heads ", n_kv,
                   " do not give whole, even heads"));
  }
  if (n_layers > (1 << 12)) return bad(Cat("n_layers ", n_layers, " is implausible"));
  const int64_t head = dim / n_heads, kv_dim = int64_t{n_kv} * head;

  auto m = std::make_unique<Model>();
  m->format = ModelFormat::kLlama2c;
  m->path = path;
  ModelConfig& c = m->config;
  c.arch = "llama";
  c.name = std::filesystem::path(path).stem().string();
  c.n_layers = n_layers;
  c.d_model = dim;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv;
  c.head_dim = static_cast<int>(head);
  c.rope_dim = static_cast<int>(head);
  c.d_ff = hidden;
  c.vocab_size = static_cast<int>(vocab);
  c.max_ctx = seq_len;
  c.norm_eps = 1e-5f;  // run.c rmsnorm
  c.rope_freq_base = 10000.0f;
  c.rope_layout = RopeLayout::kAdjacentPairs;
  c.tied_embeddings = shared;

  // Walk the file: `take` hands out the next n floats as a view (or fails past the end).
  uint64_t pos = kHeaderBytes;
  absl::Status overflow;
  auto take = [&](int64_t a, int64_t b = 1, int64_t c3 = 1) -> const uint8_t* {
    uint64_t n;
    if (__builtin_mul_overflow(static_cast<uint64_t>(a), static_cast<uint64_t>(b), &n) ||
        __builtin_mul_overflow(n, static_cast<uint64_t>(c3), &n) ||
        __builtin_mul_overflow(n, uint64_t{4}, &n) || n > bytes.size() - pos) {
      pos = UINT64_MAX;
      return nullptr;
    }
    const uint8_t* p = bytes.data() + pos;
    pos += n;
    return p;
  };
  auto matrix = [](std::string name, const uint8_t* p, int64_t in, int64_t out) {
    Tensor t;
    t.name = std::move(name);
    t.ne = {in, out, 1, 1};
    t.data = p;
    return t;
  };
  auto vec = [](std::string name, const uint8_t* p, int64_t n) {
    Tensor t;
    t.name = std::move(name);
    t.ne = {n, 1, 1, 1};
    t.data = p;
    return t;
  };
  // Expected size first, for a clear message on truncated or foreign files.
  const uint64_t L = n_layers;
  using U = unsigned __int128;  // no overflow for any int32 header
  const U floats = U(vocab) * dim + U(L) * dim * 2 + U(L) * dim * (U(dim) + 2 * U(kv_dim)) +
                   U(L) * dim * dim + U(L) * dim * hidden * 3 + U(dim) + U(seq_len) * head +
                   (shared ? U(0) : U(vocab) * dim);
  const U want = floats * 4 + kHeaderBytes;
  if (want != bytes.size()) {
    const uint64_t w64 = want > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(want);
    return absl::DataLossError(
        Cat("llama2.c checkpoint ", path, ": header (dim ", dim, ", hidden_dim ", hidden,
            ", n_layers ", n_layers, ", n_heads ", n_heads, ", n_kv_heads ", n_kv, ", vocab_size ",
            h[5], ", seq_len ", seq_len, ") needs ", w64, " bytes but the file has ", bytes.size(),
            want > bytes.size() ? " (truncated)" : " (trailing data: not a v0 checkpoint?)"));
  }
  ModelWeights& w = m->weights;
  w.layers.resize(n_layers);
  w.tok_embd = matrix("token_embedding_table", take(vocab, dim), dim, vocab);
  const uint8_t* rms_att = take(L, dim);
  const uint8_t* wq = take(L, dim, dim);
  const uint8_t* wk = take(L, dim, kv_dim);
  const uint8_t* wv = take(L, dim, kv_dim);
  const uint8_t* wo = take(L, dim, dim);
  const uint8_t* rms_ffn = take(L, dim);
  const uint8_t* w1 = take(L, dim, hidden);
  const uint8_t* w2 = take(L, hidden, dim);
  const uint8_t* w3 = take(L, dim, hidden);
  w.output_norm = vec("rms_final_weight", take(dim), dim);
  take(seq_len, head / 2);  // freq_cis_real (unused: RoPE is computed)
  take(seq_len, head / 2);  // freq_cis_imag
  w.output = shared ? w.tok_embd : matrix("wcls", take(vocab, dim), dim, vocab);
  if (pos == UINT64_MAX || rms_att == nullptr || w3 == nullptr || !w.output.present()) {
    return absl::DataLossError(Cat("llama2.c checkpoint ", path, ": file truncated"));
  }
  for (int l = 0; l < n_layers; ++l) {
    LayerWeights& Lw = w.layers[l];
    const std::string p = Cat("layers.", l, ".");
    const uint64_t dd = uint64_t(dim) * dim, dk = uint64_t(dim) * kv_dim,
                   dh = uint64_t(dim) * hidden;
    Lw.attn_norm = vec(p + "rms_att_weight", rms_att + 4 * (uint64_t(l) * dim), dim);
    Lw.wq = matrix(p + "wq", wq + 4 * (l * dd), dim, dim);
    Lw.wk = matrix(p + "wk", wk + 4 * (l * dk), dim, kv_dim);
    Lw.wv = matrix(p + "wv", wv + 4 * (l * dk), dim, kv_dim);
    Lw.wo = matrix(p + "wo", wo + 4 * (l * dd), dim, dim);
    Lw.ffn_norm = vec(p + "rms_ffn_weight", rms_ffn + 4 * (uint64_t(l) * dim), dim);
    Lw.w_gate = matrix(p + "w1", w1 + 4 * (l * dh), dim, hidden);
    Lw.w_down = matrix(p + "w2", w2 + 4 * (l * dh), hidden, dim);
    Lw.w_up = matrix(p + "w3", w3 + 4 * (l * dh), dim, hidden);
  }
  m->weight_bytes = bytes.size() - kHeaderBytes;
  WEFT_RETURN_IF_ERROR(ValidateModel(*m));
  return m;
}

absl::StatusOr<std::unique_ptr<Model>> LoadLlama2c(const std::string& path,
                                                   const LoadOptions& options) {
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<MmapFile> map, MmapFile::Open(path));
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, ModelFromLlama2c(map->bytes(), path));
  m->maps.push_back(std::move(map));
  namespace fs = std::filesystem;
  if (!options.tokenizer_path.empty()) {
    m->tokenizer.llama2c_path = options.tokenizer_path;
  } else {
    const fs::path dir = fs::path(path).parent_path();
    std::error_code ec;
    for (const fs::path& cand :
         {dir / "tokenizer.bin", dir / Cat("tok", m->config.vocab_size, ".bin")}) {
      if (fs::is_regular_file(cand, ec)) {
        m->tokenizer.llama2c_path = cand.string();
        break;
      }
    }
  }
  return m;
}

}  // namespace weft::model
