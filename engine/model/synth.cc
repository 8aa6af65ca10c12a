// SPDX-License-Identifier: Apache-2.0
#include "engine/model/synth.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <thread>

#include "absl/strings/str_join.h"
#include "base/status.h"
#include "engine/kernels/kernels.h"
#include "engine/model/cat.h"
#include "engine/model/gguf.h"
#include "engine/model/gguf_writer.h"

namespace weft::model {
namespace {

using kernels::DType;

const std::vector<SynthShape>& Shapes() {
  static const auto* shapes = new std::vector<SynthShape>{
      // Llama-3.2-1B
      {.name = "llama-1b",
       .d_model = 2048,
       .n_layers = 16,
       .n_heads = 32,
       .n_kv_heads = 8,
       .head_dim = 64,
       .d_ff = 8192,
       .max_ctx = 131072,
       .rope_freq_base = 500000.0f,
       .norm_eps = 1e-5f,
       .tied_embeddings = true,
       .llama3_rope = true,
       .rope_factor = 32.0f,
       .rope_low_freq_factor = 1.0f,
       .rope_high_freq_factor = 4.0f,
       .rope_original_ctx = 8192},
      // llama2.c stories110M
      {.name = "llama-110m",
       .d_model = 768,
       .n_layers = 12,
       .n_heads = 12,
       .n_kv_heads = 12,
       .head_dim = 64,
       .d_ff = 2048,
       .max_ctx = 1024,
       .rope_freq_base = 10000.0f,
       .norm_eps = 1e-5f,
       .tied_embeddings = true},
      // Llama-3.1-8B
      {.name = "llama-8b",
       .d_model = 4096,
       .n_layers = 32,
       .n_heads = 32,
       .n_kv_heads = 8,
       .head_dim = 128,
       .d_ff = 14336,
       .max_ctx = 131072,
       .rope_freq_base = 500000.0f,
       .norm_eps = 1e-5f,
       .tied_embeddings = false,
       .llama3_rope = true,
       .rope_factor = 8.0f,
       .rope_low_freq_factor = 1.0f,
       .rope_high_freq_factor = 4.0f,
       .rope_original_ctx = 8192},
      // For tests: small, GQA, Llama-3 rope, untied.
      {.name = "tiny",
       .d_model = 64,
       .n_layers = 2,
       .n_heads = 4,
       .n_kv_heads = 2,
       .head_dim = 16,
       .d_ff = 96,
       .max_ctx = 256,
       .rope_freq_base = 500000.0f,
       .norm_eps = 1e-5f,
       .tied_embeddings = false,
       .llama3_rope = true,
       .rope_factor = 8.0f,
       .rope_low_freq_factor = 1.0f,
       .rope_high_freq_factor = 4.0f,
       .rope_original_ctx = 64},
  };
  return *shapes;
}

// xoshiro256** seeded through splitmix64: fast, and one stream per (seed, tensor, row) so the
// output does not depend on how rows are split between threads.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& x : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      x = z ^ (z >> 31);
    }
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in (0, 1].
  double Uniform() { return (static_cast<double>(Next() >> 11) + 1.0) * 0x1.0p-53; }
  // Two independent N(0, 1) samples (Box-Muller).
  void Normal2(float& a, float& b) {
    const double r = std::sqrt(-2.0 * std::log(Uniform()));
    const double th = 2.0 * std::numbers::pi * Uniform();
    a = static_cast<float>(r * std::cos(th));
    b = static_cast<float>(r * std::sin(th));
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

// Random N(0, std^2) rows, converted to `type`, filled in parallel over rows.
GgufWriter::FillRows RandomRows(DType type, int64_t n_cols, float std_dev, uint64_t seed) {
  return [=](int64_t first_row, int64_t n_rows, std::span<uint8_t> out) {
    const int64_t row_bytes = kernels::RowBytes(type, n_cols);
    auto work = [&](int64_t begin, int64_t end) {
      std::vector<float> row(n_cols + 1);
      for (int64_t r = begin; r < end; ++r) {
        Rng rng(seed ^ (static_cast<uint64_t>(first_row + r) * 0x9e3779b97f4a7c15ull));
        for (int64_t k = 0; k < n_cols; k += 2) {
          rng.Normal2(row[k], row[k + 1]);
          row[k] *= std_dev;
          row[k + 1] *= std_dev;
        }
        kernels::QuantizeRow(type, row.data(), out.data() + r * row_bytes, n_cols);
      }
    };
    const int n_threads =
        static_cast<int>(std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, n_rows));
    std::vector<std::thread> threads;
    const int64_t per = (n_rows + n_threads - 1) / n_threads;
    for (int t = 1; t < n_threads; ++t) {
      const int64_t b = t * per, e = std::min(n_rows, b + per);
      if (b < e) threads.emplace_back(work, b, e);
    }
    work(0, std::min(n_rows, per));
    for (std::thread& th : threads) th.join();
    return absl::OkStatus();
  };
}

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return std::vector<uint8_t>(p, p + v.size() * sizeof(float));
}

// llama.cpp's converter for Llama 3.1+: per-pair divisors of the rotary frequencies.
std::vector<float> Llama3RopeFactors(const SynthShape& s) {
  std::vector<float> f;
  const double low_wavelen = s.rope_original_ctx / s.rope_low_freq_factor;
  const double high_wavelen = s.rope_original_ctx / s.rope_high_freq_factor;
  for (int i = 0; i < s.head_dim; i += 2) {
    const double freq = 1.0 / std::pow(s.rope_freq_base, static_cast<double>(i) / s.head_dim);
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < high_wavelen) {
      f.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      f.push_back(s.rope_factor);
    } else {
      const double smooth = (s.rope_original_ctx / wavelen - s.rope_low_freq_factor) /
                            (s.rope_high_freq_factor - s.rope_low_freq_factor);
      f.push_back(static_cast<float>(1.0 / ((1 - smooth) / s.rope_factor + smooth)));
    }
  }
  return f;
}

}  // namespace

std::vector<std::string> SynthShapeNames() {
  std::vector<std::string> names;
  for (const SynthShape& s : Shapes()) names.push_back(s.name);
  return names;
}

absl::StatusOr<SynthShape> FindSynthShape(const std::string& name) {
  for (const SynthShape& s : Shapes()) {
    if (s.name == name) return s;
  }
  return absl::NotFoundError(
      Cat("unknown model shape '", name, "'; known: ", absl::StrJoin(SynthShapeNames(), ", ")));
}

absl::Status SynthesizeModel(const SynthOptions& o) {
  WEFT_ASSIGN_OR_RETURN(SynthShape s, FindSynthShape(o.shape));
  DType wtype;
  uint32_t file_type;  // llama_ftype
  if (o.type == "q8_0") {
    wtype = DType::kQ8_0;
    file_type = 7;
  } else if (o.type == "q4_0") {
    wtype = DType::kQ4_0;
    file_type = 2;
  } else if (o.type == "f16") {
    wtype = DType::kF16;
    file_type = 1;
  } else if (o.type == "f32") {
    wtype = DType::kF32;
    file_type = 0;
  } else {
    return absl::InvalidArgumentError(
        Cat("unknown weight type '", o.type, "' (q8_0, q4_0, f16, f32)"));
  }
  if (o.output_path.empty()) return absl::InvalidArgumentError("synth: no output path");
  if (o.vocab_path.empty()) return absl::InvalidArgumentError("synth: no vocab GGUF given");
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> vocab, GgufFile::Open(o.vocab_path));
  WEFT_ASSIGN_OR_RETURN(std::vector<std::string_view> tokens,
                        vocab->GetStringArray("tokenizer.ggml.tokens"));
  const int64_t n_vocab = static_cast<int64_t>(tokens.size());
  if (n_vocab == 0) {
    return absl::InvalidArgumentError(Cat(o.vocab_path, ": empty vocabulary"));
  }
  // Output matrix type: llama.cpp's quantize uses q6_K for it at Q4_0, q8_0 where rows do not
  // split into 256-blocks.
  DType out_type = wtype;
  if (wtype == DType::kQ4_0) out_type = s.d_model % 256 == 0 ? DType::kQ6_K : DType::kQ8_0;
  const DType embd_type = s.tied_embeddings ? out_type : wtype;

  GgufWriter w(3);
  w.SetString("general.architecture", "llama");
  w.SetString("general.name", Cat("weft-synth-", s.name, "-", o.type));
  w.SetU32("general.file_type", file_type);
  w.SetU32("general.quantization_version", 2);
  w.SetAlignment(32);
  w.SetU32("llama.vocab_size", static_cast<uint32_t>(n_vocab));
  w.SetU32("llama.context_length", s.max_ctx);
  w.SetU32("llama.embedding_length", s.d_model);
  w.SetU32("llama.block_count", s.n_layers);
  w.SetU32("llama.feed_forward_length", s.d_ff);
  w.SetU32("llama.rope.dimension_count", s.head_dim);
  w.SetU32("llama.attention.head_count", s.n_heads);
  w.SetU32("llama.attention.head_count_kv", s.n_kv_heads);
  w.SetU32("llama.attention.key_length", s.head_dim);
  w.SetU32("llama.attention.value_length", s.head_dim);
  w.SetF32("llama.rope.freq_base", s.rope_freq_base);
  w.SetF32("llama.attention.layer_norm_rms_epsilon", s.norm_eps);
  for (const auto& [key, value] : vocab->metadata()) {
    if (key.starts_with("tokenizer.")) w.SetValue(key, value);
  }

  constexpr float kStd = 0.02f;
  const uint64_t seed = o.seed * 0x2545f4914f6cdd1dull;
  auto matrix = [&](const std::string& name, DType type, int64_t n_in, int64_t n_out) {
    return w.AddTensor(name, type, {n_in, n_out}, RandomRows(type, n_in, kStd, seed ^ Fnv1a(name)));
  };
  const std::vector<float> ones(s.d_model, 1.0f);
  const std::vector<uint8_t> ones_bytes = F32Bytes(ones);
  const int64_t d = s.d_model, q_dim = int64_t{s.n_heads} * s.head_dim,
                kv_dim = int64_t{s.n_kv_heads} * s.head_dim;
  WEFT_RETURN_IF_ERROR(matrix("token_embd.weight", embd_type, d, n_vocab));
  if (s.llama3_rope) {
    const std::vector<float> f = Llama3RopeFactors(s);
    WEFT_RETURN_IF_ERROR(w.AddTensor("rope_freqs.weight", DType::kF32,
                                     {static_cast<int64_t>(f.size())}, F32Bytes(f)));
  }
  WEFT_RETURN_IF_ERROR(w.AddTensor("output_norm.weight", DType::kF32, {d}, ones_bytes));
  if (!s.tied_embeddings) WEFT_RETURN_IF_ERROR(matrix("output.weight", out_type, d, n_vocab));
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string p = Cat("blk.", l, ".");
    WEFT_RETURN_IF_ERROR(w.AddTensor(p + "attn_norm.weight", DType::kF32, {d}, ones_bytes));
    WEFT_RETURN_IF_ERROR(matrix(p + "attn_q.weight", wtype, d, q_dim));
    WEFT_RETURN_IF_ERROR(matrix(p + "attn_k.weight", wtype, d, kv_dim));
    WEFT_RETURN_IF_ERROR(matrix(p + "attn_v.weight", wtype, d, kv_dim));
    WEFT_RETURN_IF_ERROR(matrix(p + "attn_output.weight", wtype, q_dim, d));
    WEFT_RETURN_IF_ERROR(w.AddTensor(p + "ffn_norm.weight", DType::kF32, {d}, ones_bytes));
    WEFT_RETURN_IF_ERROR(matrix(p + "ffn_gate.weight", wtype, d, s.d_ff));
    WEFT_RETURN_IF_ERROR(matrix(p + "ffn_down.weight", wtype, s.d_ff, d));
    WEFT_RETURN_IF_ERROR(matrix(p + "ffn_up.weight", wtype, d, s.d_ff));
  }
  return w.WriteFile(o.output_path);
}

}  // namespace weft::model
