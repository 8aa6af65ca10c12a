// SPDX-License-Identifier: Apache-2.0
// HF checkpoint directories written here (config.json, sharded or single safetensors, index,
// tokenizer.json) and loaded back: config fields, views, norms converted to f32, tied output.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "engine/kernels/kernels.h"
#include "engine/model/model.h"
#include "engine/model/safetensors.h"
#include "engine/model/safetensors_writer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_data.h"

namespace weft::model {
namespace {

constexpr int kD = 32, kHeads = 4, kKv = 2, kHead = 8, kFf = 64, kVocab = 50, kLayers = 2;

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

SafetensorsEntry Random(const std::string& name, const std::string& dtype,
                        std::vector<int64_t> shape, std::mt19937& rng) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  SafetensorsEntry e{name, dtype, shape, {}};
  std::normal_distribution<float> dist(0.0f, 0.1f);
  for (int64_t k = 0; k < n; ++k) {
    const float x = dist(rng);
    if (dtype == "F32") {
      const auto* p = reinterpret_cast<const uint8_t*>(&x);
      e.bytes.insert(e.bytes.end(), p, p + 4);
    } else {
      const uint16_t h = dtype == "F16" ? kernels::Fp32ToFp16(x) : kernels::Fp32ToBf16(x);
      e.bytes.push_back(h & 0xff);
      e.bytes.push_back(h >> 8);
    }
  }
  return e;
}

struct Checkpoint {
  std::vector<SafetensorsEntry> tensors;
};

Checkpoint MakeTensors(const std::string& dtype, bool bias, bool lm_head, int seed) {
  std::mt19937 rng(seed);
  Checkpoint c;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    c.tensors.push_back(Random(name, dtype, std::move(shape), rng));
  };
  add("model.embed_tokens.weight", {kVocab, kD});
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", {kD});
    add(p + "self_attn.q_proj.weight", {kHeads * kHead, kD});
    add(p + "self_attn.k_proj.weight", {kKv * kHead, kD});
    add(p + "self_attn.v_proj.weight", {kKv * kHead, kD});
    if (bias) {
      add(p + "self_attn.q_proj.bias", {kHeads * kHead});
      add(p + "self_attn.k_proj.bias", {kKv * kHead});
      add(p + "self_attn.v_proj.bias", {kKv * kHead});
    }
    add(p + "self_attn.o_proj.weight", {kD, kHeads * kHead});
    add(p + "post_attention_layernorm.weight", {kD});
    add(p + "mlp.gate_proj.weight", {kFf, kD});
    add(p + "mlp.up_proj.weight", {kFf, kD});
    add(p + "mlp.down_proj.weight", {kD, kFf});
  }
  add("model.norm.weight", {kD});
  if (lm_head) add("lm_head.weight", {kVocab, kD});
  return c;
}

nlohmann::json BaseConfig(const std::string& arch) {
  return {{"architectures", {arch}},
          {"hidden_size", kD},
          {"intermediate_size", kFf},
          {"num_hidden_layers", kLayers},
          {"num_attention_heads", kHeads},
          {"num_key_value_heads", kKv},
          {"head_dim", kHead},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 500000.0},
          {"vocab_size", kVocab},
          {"max_position_embeddings", 4096},
          {"torch_dtype", "bfloat16"}};
}

// Writes the tensors as `n_shards` files (+ index when n_shards > 1).
void WriteCheckpoint(const std::string& dir, const nlohmann::json& config, const Checkpoint& c,
                     int n_shards) {
  WriteText(dir + "/config.json", config.dump(2));
  WriteText(dir + "/tokenizer.json", "{}");
  if (n_shards == 1) {
    ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", c.tensors).ok());
    return;
  }
  nlohmann::json index = {{"metadata", {{"total_size", 0}}},
                          {"weight_map", nlohmann::json::object()}};
  std::vector<std::vector<SafetensorsEntry>> shards(n_shards);
  for (size_t k = 0; k < c.tensors.size(); ++k) {
    const int s = static_cast<int>(k * n_shards / c.tensors.size());
    const std::string file =
        absl::StrCat("model-0000", s + 1, "-of-0000", n_shards, ".safetensors");
    shards[s].push_back(c.tensors[k]);
    index["weight_map"][c.tensors[k].name] = file;
  }
  for (int s = 0; s < n_shards; ++s) {
    const std::string file =
        absl::StrCat(dir, "/model-0000", s + 1, "-of-0000", n_shards, ".safetensors");
    ASSERT_TRUE(WriteSafetensors(file, shards[s], {{"format", "pt"}}).ok());
  }
  WriteText(dir + "/model.safetensors.index.json", index.dump());
}

const SafetensorsEntry& Entry(const Checkpoint& c, const std::string& name) {
  for (const SafetensorsEntry& e : c.tensors) {
    if (e.name == name) return e;
  }
  ADD_FAILURE() << "no " << name;
  return c.tensors[0];
}

float AsFloat(const SafetensorsEntry& e, int64_t k) {
  uint16_t h;
  std::memcpy(&h, e.bytes.data() + 2 * k, 2);
  if (e.dtype == "F32") {
    float f;
    std::memcpy(&f, e.bytes.data() + 4 * k, 4);
    return f;
  }
  return e.dtype == "F16" ? kernels::Fp16ToFp32(h) : kernels::Bf16ToFp32(h);
}

class HfTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = weft::testing::MakeTempDir("hf_test"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(HfTest, ShardedLlamaBf16WithLlama3RopeScaling) {
  nlohmann::json config = BaseConfig("LlamaForCausalLM");
  config["rope_scaling"] = {{"rope_type", "llama3"},
                            {"factor", 32.0},
                            {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 8192}};
  config["tie_word_embeddings"] = false;
  const Checkpoint c = MakeTensors("BF16", /*bias=*/false, /*lm_head=*/true, 1);
  WriteCheckpoint(dir_, config, c, 3);

  absl::StatusOr<std::unique_ptr<Model>> m = LoadModel(dir_);
  ASSERT_TRUE(m.ok()) << m.status();
  const Model& model = **m;
  const ModelConfig& cfg = model.config;
  EXPECT_EQ(model.format, ModelFormat::kHfSafetensors);
  EXPECT_EQ(cfg.arch, "llama");
  EXPECT_EQ(cfg.d_model, kD);
  EXPECT_EQ(cfg.n_layers, kLayers);
  EXPECT_EQ(cfg.n_heads, kHeads);
  EXPECT_EQ(cfg.n_kv_heads, kKv);
  EXPECT_EQ(cfg.head_dim, kHead);
  EXPECT_EQ(cfg.rope_dim, kHead);
  EXPECT_EQ(cfg.d_ff, kFf);
  EXPECT_EQ(cfg.vocab_size, kVocab);
  EXPECT_EQ(cfg.max_ctx, 4096);
  EXPECT_FLOAT_EQ(cfg.norm_eps, 1e-6f);
  EXPECT_FLOAT_EQ(cfg.rope_freq_base, 500000.0f);
  EXPECT_EQ(cfg.rope_layout, RopeLayout::kHalves);
  EXPECT_EQ(cfg.rope_scaling.kind, RopeScaling::Kind::kLlama3);
  EXPECT_FLOAT_EQ(cfg.rope_scaling.factor, 32.0f);
  EXPECT_FLOAT_EQ(cfg.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(cfg.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(cfg.rope_scaling.original_max_position, 8192);
  EXPECT_FALSE(cfg.tied_embeddings);
  EXPECT_FALSE(cfg.qkv_bias);
  EXPECT_EQ(model.maps.size(), 3u);
  EXPECT_EQ(model.tokenizer.hf_json_path, dir_ + "/tokenizer.json");
  EXPECT_EQ(model.tokenizer.hf_config_dir, dir_);

  // Matrices stay bf16 views in HF order ([out, in] -> ne = {in, out}).
  const Tensor& wk = model.weights.layers[1].wk;
  EXPECT_EQ(wk.type, kernels::DType::kBF16);
  EXPECT_EQ(wk.ne, (std::array<int64_t, 4>{kD, kKv * kHead, 1, 1}));
  const SafetensorsEntry& ek = Entry(c, "model.layers.1.self_attn.k_proj.weight");
  EXPECT_EQ(std::memcmp(wk.data, ek.bytes.data(), ek.bytes.size()), 0);
  const Tensor& down = model.weights.layers[0].w_down;
  EXPECT_EQ(down.ne, (std::array<int64_t, 4>{kFf, kD, 1, 1}));
  const SafetensorsEntry& eo = Entry(c, "lm_head.weight");
  EXPECT_EQ(std::memcmp(model.weights.output.data, eo.bytes.data(), eo.bytes.size()), 0);
  // Norms became f32 with the same values.
  const Tensor& norm = model.weights.layers[1].ffn_norm;
  EXPECT_EQ(norm.type, kernels::DType::kF32);
  const SafetensorsEntry& en = Entry(c, "model.layers.1.post_attention_layernorm.weight");
  for (int k = 0; k < kD; ++k) {
    EXPECT_EQ(static_cast<const float*>(norm.data)[k], AsFloat(en, k));
  }
  EXPECT_EQ(model.weights.output_norm.type, kernels::DType::kF32);

  // The same checkpoint through config.json's path and a shard's path.
  EXPECT_TRUE(LoadModel(dir_ + "/config.json").ok());
  EXPECT_TRUE(LoadModel(dir_ + "/model-00001-of-00003.safetensors").ok());
}

TEST_F(HfTest, Qwen2SingleFileWithBiasesAndTiedEmbeddings) {
  nlohmann::json config = BaseConfig("Qwen2ForCausalLM");
  config["tie_word_embeddings"] = true;
  config["rope_scaling"] = nullptr;
  const Checkpoint c = MakeTensors("F32", /*bias=*/true, /*lm_head=*/false, 2);
  WriteCheckpoint(dir_, config, c, 1);
  LoadOptions opts;
  opts.tokenizer_path = "/other/tokenizer.json";
  absl::StatusOr<std::unique_ptr<Model>> m = LoadModel(dir_, opts);
  ASSERT_TRUE(m.ok()) << m.status();
  const Model& model = **m;
  EXPECT_EQ(model.config.arch, "qwen2");
  EXPECT_TRUE(model.config.qkv_bias);
  EXPECT_TRUE(model.config.tied_embeddings);
  EXPECT_EQ(model.config.rope_layout, RopeLayout::kHalves);
  EXPECT_EQ(model.config.rope_scaling.kind, RopeScaling::Kind::kNone);
  EXPECT_EQ(model.weights.output.data, model.weights.tok_embd.data);
  EXPECT_EQ(model.tokenizer.hf_json_path, "/other/tokenizer.json");
  const Tensor& bk = model.weights.layers[0].bk;
  ASSERT_TRUE(bk.present());
  EXPECT_EQ(bk.ne[0], kKv * kHead);
  const SafetensorsEntry& e = Entry(c, "model.layers.0.self_attn.k_proj.bias");
  EXPECT_EQ(std::memcmp(bk.data, e.bytes.data(), e.bytes.size()), 0);
  EXPECT_TRUE(model.owned.empty());  // f32 and aligned: nothing copied
}

TEST_F(HfTest, MistralF16LoadsAsLlamaWithLinearScaling) {
  nlohmann::json config = BaseConfig("MistralForCausalLM");
  config.erase("head_dim");
  config.erase("num_key_value_heads");
  config["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  Checkpoint c = MakeTensors("F16", false, true, 3);
  // Without num_key_value_heads the model is MHA: k/v need n_heads * head_dim rows.
  std::mt19937 rng(4);
  for (SafetensorsEntry& e : c.tensors) {
    if (e.name.find("k_proj") != std::string::npos || e.name.find("v_proj") != std::string::npos) {
      e = Random(e.name, "F16", {kHeads * kHead, kD}, rng);
    }
  }
  WriteCheckpoint(dir_, config, c, 2);
  absl::StatusOr<std::unique_ptr<Model>> m = LoadModel(dir_);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->config.arch, "llama");
  EXPECT_EQ((*m)->config.n_kv_heads, kHeads);
  EXPECT_EQ((*m)->config.head_dim, kD / kHeads);
  EXPECT_EQ((*m)->config.rope_scaling.kind, RopeScaling::Kind::kLinear);
  EXPECT_FLOAT_EQ((*m)->config.rope_scaling.factor, 2.0f);
  EXPECT_EQ((*m)->weights.layers[0].wq.type, kernels::DType::kF16);
}

TEST(SafetensorsTest, ParsesHeaderAndMetadata) {
  std::mt19937 rng(5);
  const std::vector<uint8_t> bytes = SafetensorsBytes(
      {Random("a", "F32", {2, 3}, rng), Random("b", "BF16", {4}, rng)}, {{"format", "pt"}});
  absl::StatusOr<SafetensorsHeader> h = ParseSafetensors(bytes, "x.safetensors");
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_EQ(h->tensors.size(), 2u);
  EXPECT_EQ(h->metadata.at("format"), "pt");
  const SafetensorsTensor& b = h->tensors[h->index.at("b")];
  EXPECT_EQ(b.type, kernels::DType::kBF16);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(b.end - b.begin, 8u);
  EXPECT_EQ(b.data, bytes.data() + h->data_start + 24);
}

}  // namespace
}  // namespace weft::model
