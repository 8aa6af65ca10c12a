// SPDX-License-Identifier: Apache-2.0
// HF checkpoint directories: config.json + safetensors (single or sharded). q/k weights are kept
// as stored; HF models use rotate-half RoPE, so the config says RopeLayout::kHalves.
#include <filesystem>
#include <limits>
#include <set>

#include "base/status.h"
#include "engine/model/cat.h"
#include "engine/model/loaders.h"
#include "engine/model/safetensors.h"
#include "nlohmann/json.hpp"

namespace weft::model {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

struct HfConfigReader {
  const std::string& path;
  const Json& j;

  absl::Status Bad(std::string_view what) const {
    return absl::InvalidArgumentError(Cat(path, ": ", what));
  }
  // An integer field; def < 0 means required. null counts as absent.
  absl::StatusOr<int> Int(const char* key, int64_t def) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (def < 0) return Bad(Cat("missing \"", key, "\""));
      return static_cast<int>(def);
    }
    if (!it->is_number_integer() || it->get<int64_t>() < 0 ||
        it->get<int64_t>() > std::numeric_limits<int>::max()) {
      return Bad(Cat("\"", key, "\" is ", it->dump(), ", expected a non-negative int"));
    }
    return static_cast<int>(it->get<int64_t>());
  }
  absl::StatusOr<float> Float(const Json& obj, const char* key, float def, bool required) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
      if (required) return Bad(Cat("missing \"", key, "\""));
      return def;
    }
    if (!it->is_number()) return Bad(Cat("\"", key, "\" is not a number"));
    return it->get<float>();
  }
};

struct Shard {
  std::unique_ptr<MmapFile> map;
  SafetensorsHeader header;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadHfCheckpoint(const std::string& dir,
                                                        const LoadOptions& options) {
  const fs::path d(dir);
  const std::string config_path = (d / "config.json").string();
  absl::StatusOr<std::string> text = ReadFileToString(config_path);
  if (!text.ok()) {
    return absl::NotFoundError(
        Cat("HF checkpoint ", dir, ": cannot read config.json (", text.status().message(), ")"));
  }
  Json j = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(Cat(config_path, ": not a JSON object"));
  }
  HfConfigReader r{config_path, j};
  auto m = std::make_unique<Model>();
  m->format = ModelFormat::kHfSafetensors;
  m->path = dir;
  ModelConfig& c = m->config;

  std::string arch_name;
  if (auto a = j.find("architectures");
      a != j.end() && a->is_array() && !a->empty() && (*a)[0].is_string()) {
    arch_name = (*a)[0].get<std::string>();
  }
  if (arch_name == "LlamaForCausalLM" || arch_name == "MistralForCausalLM") {
    c.arch = "llama";  // Mistral runs as Llama (llama.cpp does the same)
  } else if (arch_name == "Qwen2ForCausalLM") {
    c.arch = "qwen2";
    c.qkv_bias = true;
  } else {
    return r.Bad(Cat("unsupported architectures[0] \"", arch_name,
                     "\" (supported: LlamaForCausalLM, MistralForCausalLM, "
                     "Qwen2ForCausalLM)"));
  }
  c.name = fs::path(dir).filename().string();
  if (c.name.empty()) c.name = fs::path(dir).parent_path().filename().string();
  c.rope_layout = RopeLayout::kHalves;
  WEFT_ASSIGN_OR_RETURN(c.d_model, r.Int("hidden_size", -1));
  WEFT_ASSIGN_OR_RETURN(c.d_ff, r.Int("intermediate_size", -1));
  WEFT_ASSIGN_OR_RETURN(c.n_layers, r.Int("num_hidden_layers", -1));
  WEFT_ASSIGN_OR_RETURN(c.n_heads, r.Int("num_attention_heads", -1));
  WEFT_ASSIGN_OR_RETURN(c.n_kv_heads, r.Int("num_key_value_heads", c.n_heads));
  WEFT_ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size", -1));
  WEFT_ASSIGN_OR_RETURN(c.max_ctx, r.Int("max_position_embeddings", 2048));
  if (c.n_heads == 0) return r.Bad("num_attention_heads is 0");
  WEFT_ASSIGN_OR_RETURN(c.head_dim, r.Int("head_dim", c.d_model / c.n_heads));
  c.rope_dim = c.head_dim;
  WEFT_ASSIGN_OR_RETURN(c.norm_eps, r.Float(j, "rms_norm_eps", 1e-6f, false));
  WEFT_ASSIGN_OR_RETURN(c.rope_freq_base, r.Float(j, "rope_theta", 10000.0f, false));
  if (auto t = j.find("tie_word_embeddings"); t != j.end() && !t->is_null()) {
    if (!t->is_boolean()) return r.Bad("\"tie_word_embeddings\" is not a bool");
    c.tied_embeddings = t->get<bool>();
  }
  if (auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null()) {
    if (!rs->is_object()) return r.Bad("\"rope_scaling\" is not an object");
    std::string type;
    for (const char* key : {"rope_type", "type"}) {
      if (auto t = rs->find(key); t != rs->end() && t->is_string()) {
        type = t->get<std::string>();
        break;
      }
    }
    RopeScaling& s = c.rope_scaling;
    if (type == "llama3") {
      s.kind = RopeScaling::Kind::kLlama3;
      WEFT_ASSIGN_OR_RETURN(s.factor, r.Float(*rs, "factor", 1.0f, true));
      WEFT_ASSIGN_OR_RETURN(s.low_freq_factor, r.Float(*rs, "low_freq_factor", 1.0f, false));
      WEFT_ASSIGN_OR_RETURN(s.high_freq_factor, r.Float(*rs, "high_freq_factor", 4.0f, false));
      auto o = rs->find("original_max_position_embeddings");
      if (o != rs->end()) {
        if (!o->is_number_integer() || o->get<int64_t>() <= 0 ||
            o->get<int64_t>() > std::numeric_limits<int>::max()) {
          return r.Bad("rope_scaling.original_max_position_embeddings is not a positive int");
        }
        s.original_max_position = static_cast<int>(o->get<int64_t>());
      }
    } else if (type == "linear") {
      s.kind = RopeScaling::Kind::kLinear;
      WEFT_ASSIGN_OR_RETURN(s.factor, r.Float(*rs, "factor", 1.0f, true));
    } else if (type != "default" && !type.empty()) {
      return r.Bad(Cat("unsupported rope_scaling type \"", type, "\""));
    }
  }

  // Which safetensors files, and which tensor lives where (index.json for sharded checkpoints).
  std::map<std::string, std::string> weight_map;  // tensor -> file name
  std::vector<std::string> files;
  const fs::path index_path = d / "model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(index_path, ec)) {
    WEFT_ASSIGN_OR_RETURN(std::string idx_text, ReadFileToString(index_path.string()));
    Json idx = Json::parse(idx_text, nullptr, false);
    if (idx.is_discarded() || !idx.is_object() || !idx.contains("weight_map") ||
        !idx["weight_map"].is_object()) {
      return absl::InvalidArgumentError(
          Cat(index_path.string(), ": not a JSON object with a \"weight_map\" object"));
    }
    std::set<std::string> seen;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      if (!it->is_string() || it->get<std::string>().find('/') != std::string::npos) {
        return absl::InvalidArgumentError(
            Cat(index_path.string(), ": weight_map entry '", it.key(), "' is not a file name"));
      }
      weight_map[it.key()] = it->get<std::string>();
      if (seen.insert(it->get<std::string>()).second) files.push_back(it->get<std::string>());
    }
  } else if (fs::exists(d / "model.safetensors", ec)) {
    files.push_back("model.safetensors");
  } else {
    for (const auto& e : fs::directory_iterator(d, ec)) {
      if (e.path().extension() == ".safetensors") files.push_back(e.path().filename().string());
    }
    if (files.size() != 1) {
      return absl::NotFoundError(
          Cat("HF checkpoint ", dir,
              ": expected model.safetensors, model.safetensors.index.json or "
              "exactly one *.safetensors file; found ",
              files.size()));
    }
  }
  std::map<std::string, const SafetensorsTensor*, std::less<>> by_name;
  std::vector<Shard> shards(files.size());
  for (size_t k = 0; k < files.size(); ++k) {
    const std::string fp = (d / files[k]).string();
    WEFT_ASSIGN_OR_RETURN(shards[k].map, MmapFile::Open(fp));
    WEFT_ASSIGN_OR_RETURN(shards[k].header, ParseSafetensors(shards[k].map->bytes(), fp));
    for (const SafetensorsTensor& t : shards[k].header.tensors) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(t.name);
        if (it == weight_map.end() || it->second != files[k]) continue;  // not this shard's
      }
      if (!by_name.emplace(t.name, &t).second) {
        return absl::InvalidArgumentError(
            Cat("HF checkpoint ", dir, ": tensor '", t.name, "' appears twice"));
      }
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (by_name.find(name) == by_name.end()) {
      return absl::InvalidArgumentError(Cat("HF checkpoint ", dir, ": index puts tensor '", name,
                                            "' in ", file, " but that file lacks it"));
    }
  }
  auto view = [&](const std::string& name) -> absl::StatusOr<Tensor> {
    Tensor t;
    t.name = name;
    auto it = by_name.find(name);
    if (it == by_name.end()) return t;
    const SafetensorsTensor& s = *it->second;
    if (s.shape.size() > 4 || s.shape.empty()) {
      return absl::InvalidArgumentError(
          Cat("HF checkpoint ", dir, ": tensor '", name, "' has ", s.shape.size(), " dimensions"));
    }
    for (size_t k = 0; k < s.shape.size(); ++k) t.ne[k] = s.shape[s.shape.size() - 1 - k];
    t.type = s.type;
    t.data = s.data;
    // safetensors does not promise element alignment; copy the rare misaligned tensor.
    const size_t elem = s.type == kernels::DType::kF32 ? 4 : 2;
    if (reinterpret_cast<uintptr_t>(s.data) % elem != 0) {
      std::vector<uint8_t>& buf = m->owned.emplace_back(s.data, s.data + (s.end - s.begin));
      t.data = buf.data();
    }
    return t;
  };
  ModelWeights& w = m->weights;
  WEFT_ASSIGN_OR_RETURN(w.tok_embd, view("model.embed_tokens.weight"));
  WEFT_ASSIGN_OR_RETURN(w.output_norm, view("model.norm.weight"));
  WEFT_ASSIGN_OR_RETURN(w.output, view("lm_head.weight"));
  if (c.tied_embeddings || !w.output.present()) {
    if (!c.tied_embeddings) {
      return absl::InvalidArgumentError(Cat(
          "HF checkpoint ", dir, ": missing tensor lm_head.weight (tie_word_embeddings is false)"));
    }
    w.output = w.tok_embd;
  }
  if (c.n_layers > (1 << 12)) return r.Bad("num_hidden_layers is implausible");
  w.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = Cat("model.layers.", l, ".");
    WEFT_ASSIGN_OR_RETURN(L.attn_norm, view(p + "input_layernorm.weight"));
    WEFT_ASSIGN_OR_RETURN(L.wq, view(p + "self_attn.q_proj.weight"));
    WEFT_ASSIGN_OR_RETURN(L.wk, view(p + "self_attn.k_proj.weight"));
    WEFT_ASSIGN_OR_RETURN(L.wv, view(p + "self_attn.v_proj.weight"));
    WEFT_ASSIGN_OR_RETURN(L.wo, view(p + "self_attn.o_proj.weight"));
    WEFT_ASSIGN_OR_RETURN(L.bq, view(p + "self_attn.q_proj.bias"));
    WEFT_ASSIGN_OR_RETURN(L.bk, view(p + "self_attn.k_proj.bias"));
    WEFT_ASSIGN_OR_RETURN(L.bv, view(p + "self_attn.v_proj.bias"));
    WEFT_ASSIGN_OR_RETURN(L.ffn_norm, view(p + "post_attention_layernorm.weight"));
    WEFT_ASSIGN_OR_RETURN(L.w_gate, view(p + "mlp.gate_proj.weight"));
    WEFT_ASSIGN_OR_RETURN(L.w_up, view(p + "mlp.up_proj.weight"));
    WEFT_ASSIGN_OR_RETURN(L.w_down, view(p + "mlp.down_proj.weight"));
    if (L.bq.present() || L.bk.present() || L.bv.present()) c.qkv_bias = true;
    for (Tensor* t : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv}) {
      WEFT_RETURN_IF_ERROR(ConvertToF32(*m, *t));
    }
  }
  WEFT_RETURN_IF_ERROR(ConvertToF32(*m, w.output_norm));
  for (Shard& s : shards) {
    for (const SafetensorsTensor& t : s.header.tensors) m->weight_bytes += t.end - t.begin;
    m->maps.push_back(std::move(s.map));
  }
  if (!options.tokenizer_path.empty()) {
    m->tokenizer.hf_json_path = options.tokenizer_path;
  } else if (fs::is_regular_file(d / "tokenizer.json", ec)) {
    m->tokenizer.hf_json_path = (d / "tokenizer.json").string();
  }
  m->tokenizer.hf_config_dir = dir;
  WEFT_RETURN_IF_ERROR(ValidateModel(*m));
  return m;
}

}  // namespace weft::model
