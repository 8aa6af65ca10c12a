// SPDX-License-Identifier: Apache-2.0
// Loading the real stories260K model from its llama2.c checkpoint and its GGUF conversion: the
// configs agree and so does every weight, element by element.
#include "engine/model/model.h"

#include <cstring>
#include <filesystem>

#include "engine/kernels/kernels.h"
#include "engine/model/gguf.h"
#include "engine/model/loaders.h"
#include "engine/model/tiny_models.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::model {
namespace {

std::vector<float> Dequant(const Tensor& t) {
  std::vector<float> out(t.ne[0] * t.rows());
  const int64_t row_bytes = kernels::RowBytes(t.type, t.ne[0]);
  for (int64_t r = 0; r < t.rows(); ++r) {
    kernels::DequantizeRow(t.type, static_cast<const uint8_t*>(t.data) + r * row_bytes,
                           out.data() + r * t.ne[0], t.ne[0]);
  }
  return out;
}

void ExpectSameWeights(const Tensor& a, const Tensor& b) {
  ASSERT_TRUE(a.present()) << a.name;
  ASSERT_TRUE(b.present()) << b.name;
  ASSERT_EQ(a.ne, b.ne) << a.name << " vs " << b.name;
  std::vector<float> x = Dequant(a), y = Dequant(b);
  for (size_t k = 0; k < x.size(); ++k) {
    ASSERT_EQ(x[k], y[k]) << a.name << " vs " << b.name << " at " << k;
  }
}

void ExpectStoriesConfig(const ModelConfig& c) {
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.d_ff, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.rope_layout, RopeLayout::kAdjacentPairs);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 10000.0f);
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::kNone);
  EXPECT_FALSE(c.qkv_bias);
}

TEST(ModelTest, LoadsStories260KGguf) {
  const std::string path = weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
  absl::StatusOr<std::unique_ptr<Model>> m = LoadModel(path);
  ASSERT_TRUE(m.ok()) << m.status();
  const Model& model = **m;
  EXPECT_EQ(model.format, ModelFormat::kGguf);
  ExpectStoriesConfig(model.config);
  EXPECT_EQ(model.config.max_ctx, 128);        // what llama.cpp's converter wrote
  EXPECT_FALSE(model.config.tied_embeddings);  // the converter wrote output.weight
  EXPECT_EQ(model.tokenizer.gguf, model.gguf.get());
  EXPECT_NE(model.tokenizer.gguf, nullptr);
  EXPECT_EQ(model.weights.layers.size(), 5u);
  EXPECT_EQ(model.weights.layers[2].wk.name, "blk.2.attn_k.weight");
  EXPECT_EQ(model.weights.layers[2].wk.ne[0], 64);
  EXPECT_EQ(model.weights.layers[2].wk.ne[1], 32);
  EXPECT_FALSE(model.weights.rope_freqs.present());
  // llama2.c's weights without freq_cis, plus the converter's separate output.weight.
  EXPECT_EQ(model.weight_bytes, 1056512u - 4096u * 4 + 512u * 64 * 4);
  // Views point into the mapping: no copies.
  const uint8_t* base = model.gguf->tensors().front().data - model.gguf->tensors().front().offset;
  const uint8_t* p = static_cast<const uint8_t*>(model.weights.layers[4].w_down.data);
  EXPECT_GE(p, base);
  EXPECT_LT(p, base + model.gguf->file_size());
  EXPECT_TRUE(model.owned.empty());
}

TEST(ModelTest, LoadsStories260KLlama2cWithTokenizerBesideIt) {
  const std::string path = weft::testing::RequireTestData("models/stories260K/stories260K.bin");
  const std::string tok = weft::testing::RequireTestData("models/stories260K/tok512.bin");
  absl::StatusOr<std::unique_ptr<Model>> m = LoadModel(path);
  ASSERT_TRUE(m.ok()) << m.status();
  const Model& model = **m;
  EXPECT_EQ(model.format, ModelFormat::kLlama2c);
  ExpectStoriesConfig(model.config);
  EXPECT_EQ(model.config.max_ctx, 512);
  EXPECT_TRUE(model.config.tied_embeddings);
  EXPECT_EQ(model.weights.output.data, model.weights.tok_embd.data);
  EXPECT_EQ(model.tokenizer.llama2c_path, tok);
  EXPECT_EQ(model.tokenizer.gguf, nullptr);
  EXPECT_TRUE(model.owned.empty());
  ASSERT_EQ(model.maps.size(), 1u);
  // The first weight follows the 28-byte header.
  EXPECT_EQ(static_cast<const uint8_t*>(model.weights.tok_embd.data), model.maps[0]->data() + 28);

  LoadOptions opts;
  opts.tokenizer_path = "/elsewhere/tokenizer.bin";
  absl::StatusOr<std::unique_ptr<Model>> m2 = LoadModel(path, opts);
  ASSERT_TRUE(m2.ok()) << m2.status();
  EXPECT_EQ((*m2)->tokenizer.llama2c_path, "/elsewhere/tokenizer.bin");
}

TEST(ModelTest, GgufAndLlama2cWeightsAreEqual) {
  absl::StatusOr<std::unique_ptr<Model>> g =
      LoadModel(weft::testing::RequireTestData("models/stories260K/stories260K.gguf"));
  absl::StatusOr<std::unique_ptr<Model>> b =
      LoadModel(weft::testing::RequireTestData("models/stories260K/stories260K.bin"));
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_TRUE(b.ok()) << b.status();
  const ModelWeights& x = (*g)->weights;
  const ModelWeights& y = (*b)->weights;
  ExpectSameWeights(x.tok_embd, y.tok_embd);
  ExpectSameWeights(x.output, y.output);
  ExpectSameWeights(x.output_norm, y.output_norm);
  for (size_t l = 0; l < x.layers.size(); ++l) {
    const LayerWeights& a = x.layers[l];
    const LayerWeights& c = y.layers[l];
    ExpectSameWeights(a.attn_norm, c.attn_norm);
    ExpectSameWeights(a.wq, c.wq);
    ExpectSameWeights(a.wk, c.wk);
    ExpectSameWeights(a.wv, c.wv);
    ExpectSameWeights(a.wo, c.wo);
    ExpectSameWeights(a.ffn_norm, c.ffn_norm);
    ExpectSameWeights(a.w_gate, c.w_gate);
    ExpectSameWeights(a.w_up, c.w_up);
    ExpectSameWeights(a.w_down, c.w_down);
  }
}

TEST(GgufModelTest, Qwen2WithBiasesUsesHalvesRope) {
  using namespace weft::model::testing;  // NOLINT
  std::vector<TensorSpec> tensors = TinyGgufTensors();
  const int64_t kv = kTinyD / kTinyHeads * kTinyKv;
  for (int l = 0; l < kTinyLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    tensors.push_back({p + "attn_q.bias", kernels::DType::kF32, {kTinyD}});
    tensors.push_back({p + "attn_k.bias", kernels::DType::kF32, {kv}});
    tensors.push_back({p + "attn_v.bias", kernels::DType::kF32, {kv}});
  }
  const std::vector<uint8_t> bytes = TinyGguf(tensors, [](GgufWriter& w) {
    w.SetString("general.architecture", "qwen2");
    w.SetU32("qwen2.context_length", 64);
    w.SetU32("qwen2.embedding_length", kTinyD);
    w.SetU32("qwen2.block_count", kTinyLayers);
    w.SetU32("qwen2.feed_forward_length", kTinyFf);
    w.SetU32("qwen2.attention.head_count", kTinyHeads);
    w.SetU32("qwen2.attention.head_count_kv", kTinyKv);
    w.SetF32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
    w.SetF32("qwen2.rope.freq_base", 1000000.0f);
  });
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Parse(bytes, "qwen2.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  absl::StatusOr<std::unique_ptr<Model>> m = ModelFromGguf(std::move(*f));
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelConfig& c = (*m)->config;
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_EQ(c.rope_layout, RopeLayout::kHalves);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 1000000.0f);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
  EXPECT_EQ(c.vocab_size, kTinyVocab);
  EXPECT_EQ(c.head_dim, kTinyD / kTinyHeads);
  EXPECT_TRUE((*m)->weights.layers[1].bv.present());
  EXPECT_EQ((*m)->weights.layers[1].bv.ne[0], kv);
  EXPECT_EQ((*m)->config.name, "tiny");

  // The same tensors without biases are not a valid qwen2 model.
  const std::vector<uint8_t> no_bias = TinyGguf(TinyGgufTensors(), [](GgufWriter& w) {
    w.SetString("general.architecture", "qwen2");
    w.SetU32("qwen2.context_length", 64);
    w.SetU32("qwen2.embedding_length", kTinyD);
    w.SetU32("qwen2.block_count", kTinyLayers);
    w.SetU32("qwen2.feed_forward_length", kTinyFf);
    w.SetU32("qwen2.attention.head_count", kTinyHeads);
    w.SetF32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
  });
  absl::StatusOr<std::unique_ptr<GgufFile>> g = GgufFile::Parse(no_bias, "qwen2.gguf");
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(ModelFromGguf(std::move(*g)).ok());
}

TEST(GgufModelTest, LlamaLinearRopeScalingAndTiedOutput) {
  using namespace weft::model::testing;  // NOLINT
  std::vector<TensorSpec> tensors = TinyGgufTensors();
  std::erase_if(tensors, [](const TensorSpec& t) { return t.name == "output.weight"; });
  const std::vector<uint8_t> bytes = TinyGguf(tensors, [](GgufWriter& w) {
    w.SetString("llama.rope.scaling.type", "linear");
    w.SetF32("llama.rope.scaling.factor", 4.0f);
    w.SetU32("llama.rope.dimension_count", 4);
  });
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Parse(bytes, "llama.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  absl::StatusOr<std::unique_ptr<Model>> m = ModelFromGguf(std::move(*f));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->config.rope_scaling.kind, RopeScaling::Kind::kLinear);
  EXPECT_FLOAT_EQ((*m)->config.rope_scaling.factor, 4.0f);
  EXPECT_EQ((*m)->config.rope_dim, 4);
  EXPECT_EQ((*m)->config.rope_layout, RopeLayout::kAdjacentPairs);
  EXPECT_TRUE((*m)->config.tied_embeddings);
  EXPECT_EQ((*m)->weights.output.data, (*m)->weights.tok_embd.data);
  EXPECT_EQ((*m)->weights.output.type, kernels::DType::kQ8_0);
}

}  // namespace
}  // namespace weft::model
