// SPDX-License-Identifier: Apache-2.0
#include "engine/lora/lora_testing.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "engine/kernels/kernels.h"
#include "engine/model/safetensors_writer.h"

namespace weft::lora::testing {
namespace {

namespace fs = std::filesystem;
using absl::StrCat;
using kernels::DType;

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return std::vector<uint8_t>(p, p + v.size() * sizeof(T));
}

// f32 values as raw bytes of `type` (F32, F16, BF16, Q8_0; rows of `row` elements).
std::vector<uint8_t> Encode(DType type, const std::vector<float>& v, int64_t row) {
  std::vector<uint8_t> out(kernels::RowBytes(type, row) * (v.size() / row));
  for (size_t r = 0; r < v.size() / row; ++r) {
    kernels::QuantizeRow(type, v.data() + r * row, out.data() + r * kernels::RowBytes(type, row),
                         row);
  }
  return out;
}

std::vector<float> MergedRows(const model::Tensor& w, const LoraWeights* lw) {
  const int64_t n_in = w.ne[0], n_out = w.rows();
  std::vector<float> out(n_in * n_out);
  const int64_t row_bytes = kernels::RowBytes(w.type, n_in);
  for (int64_t o = 0; o < n_out; ++o) {
    kernels::DequantizeRow(w.type, static_cast<const uint8_t*>(w.data) + o * row_bytes,
                           out.data() + o * n_in, n_in);
  }
  if (lw == nullptr) return out;
  for (int64_t o = 0; o < n_out; ++o) {
    for (int64_t i = 0; i < n_in; ++i) {
      double d = 0;
      for (int k = 0; k < lw->rank; ++k) {
        d += static_cast<double>(lw->b[o * lw->rank + k]) * lw->a[k * n_in + i];
      }
      out[o * n_in + i] += static_cast<float>(lw->scale * d);
    }
  }
  return out;
}

std::string SafetensorsDType(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    default:
      return "";
  }
}

absl::Status MergeGguf(const model::Model& base, const LoraAdapter& adapter,
                       const std::string& out_path) {
  const model::GgufFile& g = *base.gguf;
  model::GgufWriter w;
  for (const auto& [key, value] : g.metadata()) {
    if (key == "general.alignment") {
      w.SetAlignment(static_cast<uint32_t>(g.alignment()));
      continue;
    }
    w.SetValue(key, value);
  }
  for (const model::GgufTensorInfo& t : g.tensors()) {
    const LoraWeights* lw = nullptr;
    const model::Tensor* bw = nullptr;
    for (int l = 0; l < base.config.n_layers && lw == nullptr; ++l) {
      for (int ti = 0; ti < kNumLoraTargets; ++ti) {
        const model::Tensor& cand = BaseWeight(base.weights.layers[l], static_cast<LoraTarget>(ti));
        if (cand.name == t.name) {
          lw = adapter.Find(l, static_cast<LoraTarget>(ti));
          bw = &cand;
          break;
        }
      }
    }
    std::vector<int64_t> ne(t.ne.begin(), t.ne.begin() + std::max(1, t.n_dims));
    if (lw != nullptr) {
      WEFT_RETURN_IF_ERROR(w.AddTensor(t.name, DType::kF32, ne, Bytes(MergedRows(*bw, lw))));
    } else {
      WEFT_RETURN_IF_ERROR(
          w.AddTensor(t.name, t.type, ne, std::span<const uint8_t>(t.data, t.nbytes)));
    }
  }
  return w.WriteFile(out_path);
}

absl::Status MergeHf(const model::Model& base, const LoraAdapter& adapter,
                     const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(StrCat("cannot create ", out_dir, ": ", ec.message()));
  for (const auto& e : fs::directory_iterator(base.path, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || e.path().extension() == ".safetensors" ||
        name == "model.safetensors.index.json") {
      continue;
    }
    fs::copy_file(e.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(StrCat("cannot copy ", e.path().string()));
  }
  std::vector<model::SafetensorsEntry> entries;
  std::set<std::string> seen;
  auto add = [&](const model::Tensor& t, const LoraWeights* lw) -> absl::Status {
    if (!t.present() || !seen.insert(t.name).second) return absl::OkStatus();
    std::vector<int64_t> shape;
    if (t.ne[1] == 1 && t.ne[2] == 1 && t.ne[3] == 1) {
      shape = {t.ne[0]};
    } else {
      shape = {t.rows(), t.ne[0]};
    }
    if (lw != nullptr) {
      entries.push_back({t.name, "F32", shape, Bytes(MergedRows(t, lw))});
      return absl::OkStatus();
    }
    const std::string dtype = SafetensorsDType(t.type);
    if (dtype.empty()) return absl::InvalidArgumentError(StrCat(t.name, ": unsupported type"));
    const auto* p = static_cast<const uint8_t*>(t.data);
    entries.push_back({t.name, dtype, shape,
                       std::vector<uint8_t>(p, p + kernels::RowBytes(t.type, t.ne[0]) * t.rows())});
    return absl::OkStatus();
  };
  const model::ModelWeights& mw = base.weights;
  WEFT_RETURN_IF_ERROR(add(mw.tok_embd, nullptr));
  WEFT_RETURN_IF_ERROR(add(mw.output_norm, nullptr));
  if (!base.config.tied_embeddings) WEFT_RETURN_IF_ERROR(add(mw.output, nullptr));
  for (int l = 0; l < base.config.n_layers; ++l) {
    const model::LayerWeights& L = mw.layers[l];
    for (const model::Tensor* t : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv}) {
      WEFT_RETURN_IF_ERROR(add(*t, nullptr));
    }
    for (int ti = 0; ti < kNumLoraTargets; ++ti) {
      const LoraTarget target = static_cast<LoraTarget>(ti);
      WEFT_RETURN_IF_ERROR(add(BaseWeight(L, target), adapter.Find(l, target)));
    }
  }
  return model::WriteSafetensors((fs::path(out_dir) / "model.safetensors").string(), entries);
}

}  // namespace

std::vector<LoraTarget> AllTargets() {
  std::vector<LoraTarget> out;
  for (int i = 0; i < kNumLoraTargets; ++i) out.push_back(static_cast<LoraTarget>(i));
  return out;
}

RandomLora MakeRandomLora(const model::Model& base, int rank, float alpha,
                          const std::vector<LoraTarget>& targets, uint64_t seed, float std_dev,
                          const std::function<int(LoraTarget)>& rank_of) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, std_dev);
  RandomLora out;
  out.alpha = alpha;
  for (int l = 0; l < base.config.n_layers; ++l) {
    for (LoraTarget t : targets) {
      const model::Tensor& w = BaseWeight(base.weights.layers[l], t);
      RandomLora::Module m;
      m.layer = l;
      m.target = t;
      m.rank = rank_of ? rank_of(t) : rank;
      m.n_in = w.ne[0];
      m.n_out = w.rows();
      m.a.resize(m.rank * m.n_in);
      m.b.resize(m.n_out * m.rank);
      for (float& v : m.a) v = dist(rng);
      for (float& v : m.b) v = dist(rng);
      out.modules.push_back(std::move(m));
    }
  }
  return out;
}

std::vector<float> PermuteForGguf(const std::vector<float>& w, int n_heads, int head_dim,
                                  int64_t cols) {
  std::vector<float> out(w.size());
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < head_dim / 2; ++i) {
      for (int half = 0; half < 2; ++half) {
        const int64_t src = int64_t{h} * head_dim + half * (head_dim / 2) + i;
        const int64_t dst = int64_t{h} * head_dim + 2 * i + half;
        std::copy_n(w.begin() + src * cols, cols, out.begin() + dst * cols);
      }
    }
  }
  return out;
}

absl::Status WriteGgufLora(const RandomLora& lora, const model::ModelConfig& config,
                           const std::string& path, DType type,
                           const std::function<void(model::GgufWriter&)>& edit) {
  model::GgufWriter w;
  w.SetString("general.architecture", config.arch);
  w.SetString("general.type", "adapter");
  w.SetString("general.name", "test-lora");
  w.SetString("adapter.type", "lora");
  w.SetF32("adapter.lora.alpha", lora.alpha);
  const bool permute = config.arch == "llama";
  for (const RandomLora::Module& m : lora.modules) {
    const std::string name =
        StrCat("blk.", m.layer, ".", std::string(GgufStem(m.target)), ".weight");
    std::vector<float> b = m.b;
    if (permute && m.target == LoraTarget::kQ) {
      b = PermuteForGguf(b, config.n_heads, config.head_dim, m.rank);
    } else if (permute && m.target == LoraTarget::kK) {
      b = PermuteForGguf(b, config.n_kv_heads, config.head_dim, m.rank);
    }
    WEFT_RETURN_IF_ERROR(
        w.AddTensor(name + ".lora_a", type, {m.n_in, m.rank}, Encode(type, m.a, m.n_in)));
    WEFT_RETURN_IF_ERROR(
        w.AddTensor(name + ".lora_b", type, {m.rank, m.n_out}, Encode(type, b, m.rank)));
  }
  if (edit) edit(w);
  return w.WriteFile(path);
}

absl::Status WritePeftLora(const RandomLora& lora, const std::string& dir, const std::string& dtype,
                           const std::function<void(nlohmann::json&)>& edit) {
  DType type = DType::kF32;
  if (dtype == "F16") {
    type = DType::kF16;
  } else if (dtype == "BF16") {
    type = DType::kBF16;
  } else if (dtype != "F32") {
    return absl::InvalidArgumentError(StrCat("unsupported dtype ", dtype));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("cannot create ", dir));
  const int r = lora.modules.empty() ? 8 : lora.modules[0].rank;
  std::set<std::string> targets;
  nlohmann::json rank_pattern = nlohmann::json::object();
  std::vector<model::SafetensorsEntry> entries;
  for (const RandomLora::Module& m : lora.modules) {
    const bool attn = m.target == LoraTarget::kQ || m.target == LoraTarget::kK ||
                      m.target == LoraTarget::kV || m.target == LoraTarget::kO;
    const std::string module = StrCat("model.layers.", m.layer, attn ? ".self_attn." : ".mlp.",
                                      std::string(HfModuleName(m.target)));
    targets.insert(std::string(HfModuleName(m.target)));
    if (m.rank != r) rank_pattern[module] = m.rank;
    entries.push_back({StrCat("base_model.model.", module, ".lora_A.weight"),
                       dtype,
                       {m.rank, m.n_in},
                       Encode(type, m.a, m.n_in)});
    entries.push_back({StrCat("base_model.model.", module, ".lora_B.weight"),
                       dtype,
                       {m.n_out, m.rank},
                       Encode(type, m.b, m.rank)});
  }
  nlohmann::json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", "tiny"},
      {"r", r},
      {"lora_alpha", lora.alpha},
      {"lora_dropout", 0.05},
      {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"use_rslora", lora.use_rslora},
      {"use_dora", false},
      {"rank_pattern", rank_pattern},
      {"alpha_pattern", nlohmann::json::object()},
      {"inference_mode", true}};
  if (edit) edit(config);
  std::ofstream(fs::path(dir) / "adapter_config.json") << config.dump(2);
  return model::WriteSafetensors((fs::path(dir) / "adapter_model.safetensors").string(), entries,
                                 {{"format", "pt"}});
}

absl::Status MergeLoraIntoModel(const model::Model& base, const LoraAdapter& adapter,
                                const std::string& out_path) {
  if (adapter.layers.size() != static_cast<size_t>(base.config.n_layers)) {
    return absl::InvalidArgumentError("the adapter was loaded for another base model");
  }
  switch (base.format) {
    case model::ModelFormat::kGguf:
      return MergeGguf(base, adapter, out_path);
    case model::ModelFormat::kHfSafetensors:
      return MergeHf(base, adapter, out_path);
    default:
      return absl::UnimplementedError("merging into a llama2.c checkpoint");
  }
}

absl::StatusOr<BasePair> WriteTinyBasePair(const std::string& dir, uint64_t seed) {
  constexpr int kD = 64, kHeads = 4, kKv = 2, kHd = 16, kFf = 96, kLayers = 2, kVocab = 40;
  std::mt19937_64 rng(seed);
  auto random = [&](int64_t n, float sd, float mean = 0.0f) {
    std::normal_distribution<float> dist(mean, sd);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
  };
  BasePair out{StrCat(dir, "/hf"), StrCat(dir, "/model.gguf")};
  std::error_code ec;
  fs::create_directories(out.hf_dir, ec);
  if (ec) return absl::InternalError(StrCat("cannot create ", out.hf_dir));
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"hidden_size", kD},
                           {"intermediate_size", kFf},
                           {"num_hidden_layers", kLayers},
                           {"num_attention_heads", kHeads},
                           {"num_key_value_heads", kKv},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 10000.0},
                           {"vocab_size", kVocab},
                           {"max_position_embeddings", 256},
                           {"tie_word_embeddings", false},
                           {"torch_dtype", "float32"}};
  std::ofstream(StrCat(out.hf_dir, "/config.json")) << config.dump(2);

  model::GgufWriter g;
  g.SetString("general.architecture", "llama");
  g.SetString("general.name", "lora-base");
  g.SetU32("llama.block_count", kLayers);
  g.SetU32("llama.context_length", 256);
  g.SetU32("llama.embedding_length", kD);
  g.SetU32("llama.feed_forward_length", kFf);
  g.SetU32("llama.attention.head_count", kHeads);
  g.SetU32("llama.attention.head_count_kv", kKv);
  g.SetF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  g.SetF32("llama.rope.freq_base", 10000.0f);
  g.SetU32("llama.rope.dimension_count", kHd);
  std::vector<model::SafetensorsEntry> st;
  auto both = [&](const std::string& hf, const std::string& gg, std::vector<int64_t> shape,
                  const std::vector<float>& hf_data,
                  const std::vector<float>& gg_data) -> absl::Status {
    st.push_back({hf, "F32", shape, Bytes(hf_data)});
    return g.AddTensor(gg, DType::kF32, std::vector<int64_t>(shape.rbegin(), shape.rend()),
                       Bytes(gg_data));
  };
  auto same = [&](const std::string& hf, const std::string& gg, std::vector<int64_t> shape,
                  float sd, float mean = 0.0f) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const std::vector<float> v = random(n, sd, mean);
    return both(hf, gg, shape, v, v);
  };
  WEFT_RETURN_IF_ERROR(same("model.embed_tokens.weight", "token_embd.weight", {kVocab, kD}, 1.0f));
  for (int l = 0; l < kLayers; ++l) {
    const std::string hf = StrCat("model.layers.", l, ".");
    const std::string gg = StrCat("blk.", l, ".");
    WEFT_RETURN_IF_ERROR(
        same(hf + "input_layernorm.weight", gg + "attn_norm.weight", {kD}, 0.1f, 1.0f));
    const std::vector<float> wq = random(kHeads * kHd * kD, 0.2f);
    const std::vector<float> wk = random(kKv * kHd * kD, 0.2f);
    WEFT_RETURN_IF_ERROR(both(hf + "self_attn.q_proj.weight", gg + "attn_q.weight",
                              {kHeads * kHd, kD}, wq, PermuteForGguf(wq, kHeads, kHd, kD)));
    WEFT_RETURN_IF_ERROR(both(hf + "self_attn.k_proj.weight", gg + "attn_k.weight", {kKv * kHd, kD},
                              wk, PermuteForGguf(wk, kKv, kHd, kD)));
    WEFT_RETURN_IF_ERROR(
        same(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", {kKv * kHd, kD}, 0.2f));
    WEFT_RETURN_IF_ERROR(
        same(hf + "self_attn.o_proj.weight", gg + "attn_output.weight", {kD, kHeads * kHd}, 0.2f));
    WEFT_RETURN_IF_ERROR(
        same(hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", {kD}, 0.1f, 1.0f));
    WEFT_RETURN_IF_ERROR(
        same(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", {kFf, kD}, 0.2f));
    WEFT_RETURN_IF_ERROR(same(hf + "mlp.up_proj.weight", gg + "ffn_up.weight", {kFf, kD}, 0.2f));
    WEFT_RETURN_IF_ERROR(
        same(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", {kD, kFf}, 0.2f));
  }
  WEFT_RETURN_IF_ERROR(same("model.norm.weight", "output_norm.weight", {kD}, 0.1f, 1.0f));
  WEFT_RETURN_IF_ERROR(same("lm_head.weight", "output.weight", {kVocab, kD}, 0.2f));
  WEFT_RETURN_IF_ERROR(model::WriteSafetensors(StrCat(out.hf_dir, "/model.safetensors"), st));
  WEFT_RETURN_IF_ERROR(g.WriteFile(out.gguf_path));
  return out;
}

}  // namespace weft::lora::testing
