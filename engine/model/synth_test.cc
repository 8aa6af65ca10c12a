// SPDX-License-Identifier: Apache-2.0
// The synthesizer writes GGUFs that load, with the shape's config, the vocab's tokenizer
// metadata, Llama-3 rope factors and N(0, 0.02) weights; the same seed gives the same file.
#include "engine/model/synth.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "engine/kernels/kernels.h"
#include "engine/model/gguf.h"
#include "engine/model/model.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::model {
namespace {

using kernels::DType;

class SynthTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = weft::testing::MakeTempDir("synth_test"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  SynthOptions Options(const std::string& type, const std::string& vocab, uint64_t seed = 1) {
    SynthOptions o;
    o.shape = "tiny";
    o.type = type;
    o.vocab_path = weft::testing::RequireTestData("vocab/" + vocab);
    o.seed = seed;
    o.output_path = dir_ + "/" + type + "-" + std::to_string(seed) + ".gguf";
    return o;
  }
  std::string dir_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(SynthTest, TinyQ8_0LoadsWithShapeVocabAndRopeFactors) {
  const SynthOptions o = Options("q8_0", "ggml-vocab-llama-bpe.gguf");
  ASSERT_TRUE(SynthesizeModel(o).ok());
  absl::StatusOr<std::unique_ptr<Model>> m = LoadModel(o.output_path);
  ASSERT_TRUE(m.ok()) << m.status();
  const Model& model = **m;
  const SynthShape shape = *FindSynthShape("tiny");
  const ModelConfig& c = model.config;
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.d_model, shape.d_model);
  EXPECT_EQ(c.n_layers, shape.n_layers);
  EXPECT_EQ(c.n_heads, shape.n_heads);
  EXPECT_EQ(c.n_kv_heads, shape.n_kv_heads);
  EXPECT_EQ(c.head_dim, shape.head_dim);
  EXPECT_EQ(c.d_ff, shape.d_ff);
  EXPECT_EQ(c.max_ctx, shape.max_ctx);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_FLOAT_EQ(c.rope_freq_base, shape.rope_freq_base);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(model.weights.layers[1].w_down.type, DType::kQ8_0);
  EXPECT_EQ(model.weights.tok_embd.type, DType::kQ8_0);
  EXPECT_EQ(model.weights.layers[0].attn_norm.type, DType::kF32);
  EXPECT_EQ(static_cast<const float*>(model.weights.layers[0].attn_norm.data)[5], 1.0f);

  // Llama-3 rope factors: 1 for high frequencies, the factor for the lowest, between in between.
  const Tensor& f = model.weights.rope_freqs;
  ASSERT_TRUE(f.present());
  ASSERT_EQ(f.ne[0], shape.head_dim / 2);
  const float* fac = static_cast<const float*>(f.data);
  EXPECT_EQ(fac[0], 1.0f);
  EXPECT_EQ(fac[f.ne[0] - 1], shape.rope_factor);
  for (int k = 1; k < f.ne[0]; ++k) EXPECT_GE(fac[k], fac[k - 1]);

  // Tokenizer metadata copied from the vocab file.
  absl::StatusOr<std::unique_ptr<GgufFile>> vocab = GgufFile::Open(o.vocab_path);
  ASSERT_TRUE(vocab.ok());
  const GgufFile& g = *model.gguf;
  for (const auto& [key, value] : (*vocab)->metadata()) {
    if (!key.starts_with("tokenizer.")) continue;
    const GgufValue* v = g.Find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, value.type) << key;
  }
  EXPECT_EQ(*g.GetString("tokenizer.ggml.pre"), *(*vocab)->GetString("tokenizer.ggml.pre"));
  EXPECT_EQ(*g.GetStringArray("tokenizer.ggml.merges"),
            *(*vocab)->GetStringArray("tokenizer.ggml.merges"));
  EXPECT_EQ(*g.GetU32("general.alignment"), 32u);
  EXPECT_EQ(*g.GetU32("general.file_type"), 7u);
  EXPECT_EQ(*g.GetU32("llama.vocab_size"), 128256u);

  // Weights look like N(0, 0.02^2).
  const Tensor& wq = model.weights.layers[0].wq;
  std::vector<float> row(wq.ne[0]);
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < wq.rows(); ++r) {
    kernels::DequantizeRow(
        wq.type, static_cast<const uint8_t*>(wq.data) + r * kernels::RowBytes(wq.type, wq.ne[0]),
        row.data(), wq.ne[0]);
    for (float x : row) {
      sum += x;
      sum2 += double{x} * x;
      ++n;
    }
  }
  const double mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(sd, 0.02, 0.002);
}

TEST_F(SynthTest, Q4_0AndF16AndSeeds) {
  const SynthOptions q4 = Options("q4_0", "ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(SynthesizeModel(q4).ok());
  absl::StatusOr<std::unique_ptr<Model>> m = LoadModel(q4.output_path);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->config.vocab_size, 32000);
  EXPECT_EQ((*m)->weights.layers[0].wq.type, DType::kQ4_0);
  EXPECT_EQ((*m)->weights.tok_embd.type, DType::kQ4_0);
  // d_model 64 does not split into 256-blocks, so the output falls back from q6_K to q8_0.
  EXPECT_EQ((*m)->weights.output.type, DType::kQ8_0);
  EXPECT_EQ(*(*m)->gguf->GetString("tokenizer.ggml.model"), "llama");

  const SynthOptions f16 = Options("f16", "ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(SynthesizeModel(f16).ok());
  absl::StatusOr<std::unique_ptr<Model>> h = LoadModel(f16.output_path);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*h)->weights.layers[1].w_up.type, DType::kF16);

  SynthOptions again = q4;
  again.output_path = dir_ + "/again.gguf";
  ASSERT_TRUE(SynthesizeModel(again).ok());
  EXPECT_EQ(ReadAll(q4.output_path), ReadAll(again.output_path));
  const SynthOptions other = Options("q4_0", "ggml-vocab-llama-spm.gguf", 2);
  ASSERT_TRUE(SynthesizeModel(other).ok());
  EXPECT_NE(ReadAll(q4.output_path), ReadAll(other.output_path));
}

TEST_F(SynthTest, RejectsUnknownShapeTypeAndMissingVocab) {
  SynthOptions o = Options("q8_0", "ggml-vocab-llama-spm.gguf");
  o.shape = "llama-70b";
  absl::Status s = SynthesizeModel(o);
  EXPECT_TRUE(absl::IsNotFound(s));
  EXPECT_NE(s.message().find("llama-1b"), std::string::npos) << s;
  o.shape = "tiny";
  o.type = "q3_k";
  EXPECT_TRUE(absl::IsInvalidArgument(SynthesizeModel(o)));
  o.type = "q8_0";
  o.vocab_path = dir_ + "/none.gguf";
  EXPECT_FALSE(SynthesizeModel(o).ok());
}

TEST(SynthShapeTest, RealShapes) {
  const SynthShape b1 = *FindSynthShape("llama-1b");
  EXPECT_EQ(b1.d_model, 2048);
  EXPECT_EQ(b1.n_layers, 16);
  EXPECT_EQ(b1.n_heads, 32);
  EXPECT_EQ(b1.n_kv_heads, 8);
  EXPECT_EQ(b1.d_ff, 8192);
  EXPECT_EQ(b1.head_dim, 64);
  EXPECT_EQ(b1.max_ctx, 131072);
  EXPECT_TRUE(b1.tied_embeddings);
  EXPECT_TRUE(b1.llama3_rope);
  EXPECT_EQ(b1.rope_factor, 32.0f);
  const SynthShape m110 = *FindSynthShape("llama-110m");
  EXPECT_EQ(m110.d_model, 768);
  EXPECT_EQ(m110.n_layers, 12);
  EXPECT_EQ(m110.d_ff, 2048);
  EXPECT_EQ(m110.max_ctx, 1024);
  EXPECT_FALSE(m110.llama3_rope);
}

}  // namespace
}  // namespace weft::model
