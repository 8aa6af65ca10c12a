// SPDX-License-Identifier: Apache-2.0
// LoRA adapters: both file forms load to the same weights (q/k permuted for a GGUF base), every
// malformed or mismatched adapter is a clear error, the per-row batched delta equals the dense
// x (W + s B A)^T, and a mixed batch run through a forward loop with the AddLoraDelta hook gives
// the logits of models whose weights were merged.
#include "engine/lora/lora.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/kernels/kernels.h"
#include "engine/lora/lora_testing.h"
#include "engine/model/arch/llama.h"
#include "engine/model/model.h"
#include "engine/model/safetensors_writer.h"
#include "engine/model/synth.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::lora {
namespace {

namespace fs = std::filesystem;
using testing::AllTargets;
using ::testing::HasSubstr;
using testing::RandomLora;

class LoraTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(weft::testing::MakeTempDir("weft_lora_"));
    auto pair = testing::WriteTinyBasePair(*dir_);
    ASSERT_TRUE(pair.ok()) << pair.status();
    pair_ = new testing::BasePair(*pair);
    auto hf = model::LoadModel(pair->hf_dir);
    ASSERT_TRUE(hf.ok()) << hf.status();
    auto gg = model::LoadModel(pair->gguf_path);
    ASSERT_TRUE(gg.ok()) << gg.status();
    hf_ = hf->release();
    gg_ = gg->release();
  }
  static void TearDownTestSuite() {
    delete hf_;
    delete gg_;
    delete pair_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }

  static std::string* dir_;
  static testing::BasePair* pair_;
  static model::Model* hf_;
  static model::Model* gg_;
};
std::string* LoraTest::dir_ = nullptr;
testing::BasePair* LoraTest::pair_ = nullptr;
model::Model* LoraTest::hf_ = nullptr;
model::Model* LoraTest::gg_ = nullptr;

std::vector<uint8_t> FloatBytes(const std::vector<float>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return std::vector<uint8_t>(p, p + v.size() * sizeof(float));
}

std::unique_ptr<LoraAdapter> MustLoad(const std::string& path, const model::Model& base) {
  auto a = LoadLoraAdapter(path, base);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? std::move(*a) : nullptr;
}

double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    d = std::max<double>(d, std::fabs(a[i] - b[i]));
  }
  return d;
}

// Every target of the two adapters has the same rank, scale and A/B within tol.
void ExpectSameWeights(const LoraAdapter& x, const LoraAdapter& y, double tol) {
  ASSERT_EQ(x.layers.size(), y.layers.size());
  EXPECT_EQ(x.n_targets, y.n_targets);
  for (size_t l = 0; l < x.layers.size(); ++l) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LoraWeights& a = x.layers[l][t];
      const LoraWeights& b = y.layers[l][t];
      SCOPED_TRACE(absl::StrCat("layer ", l, " target ",
                                std::string(HfModuleName(static_cast<LoraTarget>(t)))));
      ASSERT_EQ(a.rank, b.rank);
      EXPECT_FLOAT_EQ(a.scale, b.scale);
      EXPECT_LE(MaxDiff(a.a, b.a), tol);
      EXPECT_LE(MaxDiff(a.b, b.b), tol);
    }
  }
}

TEST_F(LoraTest, GgufFormMatchesWrittenTensors) {
  RandomLora r = testing::MakeRandomLora(*gg_, 4, 8.0f, AllTargets(), 1);
  ASSERT_TRUE(testing::WriteGgufLora(r, gg_->config, Path("a.gguf")).ok());
  auto a = MustLoad(Path("a.gguf"), *gg_);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->format, LoraFormat::kGguf);
  EXPECT_EQ(a->max_rank, 4);
  EXPECT_EQ(a->n_targets, 2 * kNumLoraTargets);
  EXPECT_FLOAT_EQ(a->alpha, 8.0f);
  const model::ModelConfig& c = gg_->config;
  for (const RandomLora::Module& m : r.modules) {
    const LoraWeights* w = a->Find(m.layer, m.target);
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->rank, 4);
    EXPECT_FLOAT_EQ(w->scale, 2.0f);  // alpha / r
    EXPECT_EQ(w->n_in, m.n_in);
    EXPECT_EQ(w->n_out, m.n_out);
    EXPECT_EQ(w->a, m.a);
    // The file holds q/k lora_b in the GGUF (adjacent-pair) order, which the base uses too.
    if (m.target == LoraTarget::kQ) {
      EXPECT_EQ(w->b, testing::PermuteForGguf(m.b, c.n_heads, c.head_dim, m.rank));
      EXPECT_NE(w->b, m.b);
    } else if (m.target == LoraTarget::kK) {
      EXPECT_EQ(w->b, testing::PermuteForGguf(m.b, c.n_kv_heads, c.head_dim, m.rank));
    } else {
      EXPECT_EQ(w->b, m.b);
    }
  }
}

TEST_F(LoraTest, PeftOnGgufBaseIsPermutedLikeTheGgufForm) {
  RandomLora r = testing::MakeRandomLora(*gg_, 8, 16.0f, AllTargets(), 2);
  ASSERT_TRUE(testing::WriteGgufLora(r, gg_->config, Path("b.gguf")).ok());
  ASSERT_TRUE(testing::WritePeftLora(r, Path("b_peft")).ok());
  auto from_gguf = MustLoad(Path("b.gguf"), *gg_);
  auto from_peft = MustLoad(Path("b_peft"), *gg_);
  ASSERT_TRUE(from_gguf && from_peft);
  EXPECT_EQ(from_peft->format, LoraFormat::kPeft);
  ExpectSameWeights(*from_gguf, *from_peft, 0.0);
  // Also reachable through the config file's path.
  auto via_config = MustLoad(Path("b_peft/adapter_config.json"), *gg_);
  ASSERT_NE(via_config, nullptr);
  ExpectSameWeights(*from_peft, *via_config, 0.0);
}

TEST_F(LoraTest, GgufFormOnHfBaseIsUnpermuted) {
  RandomLora r = testing::MakeRandomLora(*hf_, 4, 4.0f, AllTargets(), 3);
  ASSERT_TRUE(testing::WriteGgufLora(r, gg_->config, Path("c.gguf")).ok());
  ASSERT_TRUE(testing::WritePeftLora(r, Path("c_peft")).ok());
  auto from_gguf = MustLoad(Path("c.gguf"), *hf_);
  auto from_peft = MustLoad(Path("c_peft"), *hf_);
  ASSERT_TRUE(from_gguf && from_peft);
  ExpectSameWeights(*from_gguf, *from_peft, 0.0);
  for (const RandomLora::Module& m : r.modules) {
    EXPECT_EQ(from_peft->Find(m.layer, m.target)->b, m.b);  // HF base: no permutation
  }
}

TEST_F(LoraTest, HalfPrecisionAndQ8_0Tensors) {
  RandomLora r = testing::MakeRandomLora(*gg_, 32, 32.0f, AllTargets(), 4);
  ASSERT_TRUE(testing::WriteGgufLora(r, gg_->config, Path("f32.gguf")).ok());
  auto ref = MustLoad(Path("f32.gguf"), *gg_);
  ASSERT_NE(ref, nullptr);
  for (auto [type, tol] :
       std::vector<std::pair<kernels::DType, double>>{{kernels::DType::kF16, 2e-4},
                                                      {kernels::DType::kBF16, 2e-3},
                                                      {kernels::DType::kQ8_0, 4e-3}}) {
    const std::string path = Path(absl::StrCat("t", static_cast<int>(type), ".gguf"));
    ASSERT_TRUE(testing::WriteGgufLora(r, gg_->config, path, type).ok());
    auto a = MustLoad(path, *gg_);
    ASSERT_NE(a, nullptr);
    ExpectSameWeights(*ref, *a, tol);
  }
  for (auto [dtype, tol] :
       std::vector<std::pair<std::string, double>>{{"F16", 2e-4}, {"BF16", 2e-3}}) {
    ASSERT_TRUE(testing::WritePeftLora(r, Path("peft_" + dtype), dtype).ok());
    auto a = MustLoad(Path("peft_" + dtype), *gg_);
    ASSERT_NE(a, nullptr);
    ExpectSameWeights(*ref, *a, tol);
  }
}

TEST_F(LoraTest, PerModuleRanksRsloraAndAlphaPattern) {
  RandomLora r =
      testing::MakeRandomLora(*hf_, 8, 16.0f, {LoraTarget::kQ, LoraTarget::kV, LoraTarget::kDown},
                              5, 0.1f, [](LoraTarget t) { return t == LoraTarget::kQ ? 2 : 8; });
  r.use_rslora = true;
  ASSERT_TRUE(testing::WritePeftLora(r, Path("ranks"), "F32", [](nlohmann::json& c) {
                c["alpha_pattern"] = {{"down_proj", 4.0}};
                c["target_modules"] = R"(.*\.(q_proj|v_proj|down_proj))";
              }).ok());
  auto a = MustLoad(Path("ranks"), *hf_);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->max_rank, 8);
  EXPECT_EQ(a->n_targets, 6);
  for (int l = 0; l < 2; ++l) {
    EXPECT_EQ(a->Find(l, LoraTarget::kQ)->rank, 2);
    EXPECT_FLOAT_EQ(a->Find(l, LoraTarget::kQ)->scale, 16.0f / std::sqrt(2.0f));
    EXPECT_FLOAT_EQ(a->Find(l, LoraTarget::kV)->scale, 16.0f / std::sqrt(8.0f));
    EXPECT_FLOAT_EQ(a->Find(l, LoraTarget::kDown)->scale, 4.0f / std::sqrt(8.0f));
    EXPECT_EQ(a->Find(l, LoraTarget::kK), nullptr);
    EXPECT_EQ(a->Find(l, LoraTarget::kGate), nullptr);
  }
  // GGUF LoRA: ranks per tensor; alpha 0 means scale 1 (llama.cpp).
  RandomLora r2 = r;
  r2.alpha = 0;
  ASSERT_TRUE(testing::WriteGgufLora(r2, hf_->config, Path("ranks.gguf")).ok());
  auto g = MustLoad(Path("ranks.gguf"), *hf_);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->Find(0, LoraTarget::kQ)->rank, 2);
  EXPECT_FLOAT_EQ(g->Find(0, LoraTarget::kQ)->scale, 1.0f);
}

TEST_F(LoraTest, SynthesizedBaseWithVocab) {
  model::SynthOptions o;
  o.shape = "tiny";
  o.type = "f32";
  o.vocab_path = weft::testing::RequireTestData("vocab/ggml-vocab-llama-spm.gguf");
  o.output_path = Path("synth.gguf");
  ASSERT_TRUE(model::SynthesizeModel(o).ok());
  auto base = model::LoadModel(o.output_path);
  ASSERT_TRUE(base.ok()) << base.status();
  RandomLora r = testing::MakeRandomLora(**base, 4, 8.0f, AllTargets(), 6);
  ASSERT_TRUE(testing::WriteGgufLora(r, (*base)->config, Path("synth_lora.gguf")).ok());
  ASSERT_TRUE(testing::WritePeftLora(r, Path("synth_peft")).ok());
  auto x = MustLoad(Path("synth_lora.gguf"), **base);
  auto y = MustLoad(Path("synth_peft"), **base);
  ASSERT_TRUE(x && y);
  ExpectSameWeights(*x, *y, 0.0);
  EXPECT_EQ(x->n_targets, (*base)->config.n_layers * kNumLoraTargets);
}

// ---- errors ------------------------------------------------------------------------------------

void ExpectError(const absl::StatusOr<std::unique_ptr<LoraAdapter>>& s,
                 const std::vector<std::string>& parts) {
  ASSERT_FALSE(s.ok()) << "expected an error";
  for (const std::string& p : parts) EXPECT_THAT(s.status().message(), HasSubstr(p));
}

TEST_F(LoraTest, GgufErrors) {
  RandomLora r = testing::MakeRandomLora(*gg_, 4, 8.0f, {LoraTarget::kQ, LoraTarget::kUp}, 7);
  auto write = [&](const std::string& name, const std::function<void(model::GgufWriter&)>& edit,
                   const RandomLora& lora) {
    EXPECT_TRUE(
        testing::WriteGgufLora(lora, gg_->config, Path(name), kernels::DType::kF32, edit).ok());
    return Path(name);
  };
  // A model, not an adapter.
  ExpectError(LoadLoraAdapter(pair_->gguf_path, *gg_), {pair_->gguf_path, "general.type"});
  ExpectError(LoadLoraAdapter(Path("missing.gguf"), *gg_), {"missing.gguf"});
  ExpectError(
      LoadLoraAdapter(
          write(
              "e1.gguf",
              [](model::GgufWriter& w) { w.SetString("adapter.type", "control_vector"); }, r),
          *gg_),
      {"e1.gguf", "adapter.type", "control_vector"});
  ExpectError(
      LoadLoraAdapter(
          write(
              "e2.gguf", [](model::GgufWriter& w) { w.SetString("general.architecture", "qwen2"); },
              r),
          *gg_),
      {"e2.gguf", "qwen2"});
  ExpectError(
      LoadLoraAdapter(write(
                          "e3.gguf",
                          [](model::GgufWriter& w) {
                            std::vector<float> v(64 * 4, 0.0f);
                            ASSERT_TRUE(w.AddTensor("blk.0.attn_norm.weight.lora_a",
                                                    kernels::DType::kF32, {64, 4}, FloatBytes(v))
                                            .ok());
                          },
                          r),
                      *gg_),
      {"e3.gguf", "blk.0.attn_norm.weight.lora_a", "supported weight"});
  ExpectError(
      LoadLoraAdapter(write(
                          "e4.gguf",
                          [](model::GgufWriter& w) {
                            std::vector<float> v(64 * 4, 0.0f);
                            ASSERT_TRUE(w.AddTensor("blk.0.attn_q.weight.extra",
                                                    kernels::DType::kF32, {64, 4}, FloatBytes(v))
                                            .ok());
                          },
                          r),
                      *gg_),
      {"e4.gguf", "blk.0.attn_q.weight.extra"});
  ExpectError(
      LoadLoraAdapter(write(
                          "e5.gguf",
                          [](model::GgufWriter& w) {
                            std::vector<float> v(64 * 4, 0.0f);
                            ASSERT_TRUE(w.AddTensor("blk.7.attn_v.weight.lora_a",
                                                    kernels::DType::kF32, {64, 4}, FloatBytes(v))
                                            .ok());
                          },
                          r),
                      *gg_),
      {"e5.gguf", "blk.7.attn_v.weight.lora_a", "layer 7"});
  // An unpaired lora_a.
  ExpectError(
      LoadLoraAdapter(write(
                          "e6.gguf",
                          [](model::GgufWriter& w) {
                            std::vector<float> v(64 * 4, 0.0f);
                            ASSERT_TRUE(w.AddTensor("blk.1.attn_v.weight.lora_a",
                                                    kernels::DType::kF32, {64, 4}, FloatBytes(v))
                                            .ok());
                          },
                          r),
                      *gg_),
      {"e6.gguf", "blk.1.attn_v.weight.lora_b", "missing"});
  // Wrong n_in (lora_a of attn_q sized for d_ff) and ranks that disagree.
  RandomLora bad_in = r;
  bad_in.modules[0].n_in = 96;
  bad_in.modules[0].a.resize(4 * 96);
  ExpectError(LoadLoraAdapter(write("e7.gguf", {}, bad_in), *gg_),
              {"e7.gguf", "blk.0.attn_q.weight.lora_a", "do not fit", "blk.0.attn_q.weight"});
  {
    // lora_a of rank 3, lora_b of rank 4.
    model::GgufWriter w;
    w.SetString("general.architecture", "llama");
    w.SetString("general.type", "adapter");
    w.SetString("adapter.type", "lora");
    w.SetF32("adapter.lora.alpha", 8.0f);
    std::vector<float> a(64 * 3, 0.1f), b(4 * 96, 0.1f);
    ASSERT_TRUE(
        w.AddTensor("blk.0.ffn_up.weight.lora_a", kernels::DType::kF32, {64, 3}, FloatBytes(a))
            .ok());
    ASSERT_TRUE(
        w.AddTensor("blk.0.ffn_up.weight.lora_b", kernels::DType::kF32, {4, 96}, FloatBytes(b))
            .ok());
    ASSERT_TRUE(w.WriteFile(Path("e8.gguf")).ok());
    ExpectError(LoadLoraAdapter(Path("e8.gguf"), *gg_),
                {"e8.gguf", "blk.0.ffn_up.weight.lora_a", "rank 3", "rank 4"});
  }
  {
    model::GgufWriter w;
    w.SetString("general.type", "adapter");
    w.SetString("adapter.type", "lora");
    ASSERT_TRUE(w.WriteFile(Path("e9.gguf")).ok());
    ExpectError(LoadLoraAdapter(Path("e9.gguf"), *gg_), {"e9.gguf", "no LoRA tensors"});
  }
  ExpectError(
      LoadLoraAdapter(
          write(
              "e10.gguf",
              [](model::GgufWriter& w) { w.SetString("adapter.lora.alpha", "sixteen"); }, r),
          *gg_),
      {"adapter.lora.alpha"});
}

TEST_F(LoraTest, PeftErrors) {
  RandomLora r = testing::MakeRandomLora(*hf_, 4, 8.0f, {LoraTarget::kQ, LoraTarget::kDown}, 8);
  auto write = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit,
                   const RandomLora& lora = {}) {
    EXPECT_TRUE(
        testing::WritePeftLora(lora.modules.empty() ? r : lora, Path(name), "F32", edit).ok());
    return Path(name);
  };
  fs::create_directories(Path("empty_dir"));
  ExpectError(LoadLoraAdapter(Path("empty_dir"), *hf_), {"empty_dir", "adapter_config.json"});
  {
    const std::string d = write("p0", {});
    fs::remove(d + "/adapter_model.safetensors");
    ExpectError(LoadLoraAdapter(d, *hf_), {"p0", "adapter_model.safetensors"});
    std::ofstream(d + "/adapter_model.bin") << "pickle";
    ExpectError(LoadLoraAdapter(d, *hf_), {"p0", "adapter_model.bin", "safetensors"});
  }
  {
    const std::string d = write("p1", {});
    std::ofstream(d + "/adapter_config.json") << "{not json";
    ExpectError(LoadLoraAdapter(d, *hf_), {"adapter_config.json", "JSON"});
  }
  ExpectError(LoadLoraAdapter(write("p2", [](nlohmann::json& c) { c["r"] = 8; }), *hf_),
              {"p2", "lora_A.weight", "rank 4", "r = 8"});
  ExpectError(LoadLoraAdapter(write("p3", [](nlohmann::json& c) { c.erase("lora_alpha"); }), *hf_),
              {"p3", "lora_alpha"});
  ExpectError(LoadLoraAdapter(
                  write("p4", [](nlohmann::json& c) { c["target_modules"] = {"q_proj"}; }), *hf_),
              {"p4", "down_proj", "target_modules"});
  ExpectError(
      LoadLoraAdapter(
          write("p4b", [](nlohmann::json& c) { c["target_modules"] = R"(.*\.self_attn\..*)"; }),
          *hf_),
      {"p4b", "mlp.down_proj", "target_modules"});
  ExpectError(LoadLoraAdapter(
                  write("p4c", [](nlohmann::json& c) { c["target_modules"] = "(unclosed"; }), *hf_),
              {"p4c", "regular expression"});
  ExpectError(LoadLoraAdapter(write("p5", [](nlohmann::json& c) { c["use_dora"] = true; }), *hf_),
              {"p5", "DoRA"});
  ExpectError(LoadLoraAdapter(write("p6", [](nlohmann::json& c) { c["peft_type"] = "IA3"; }), *hf_),
              {"p6", "IA3"});
  ExpectError(LoadLoraAdapter(write("p7", [](nlohmann::json& c) { c["bias"] = "all"; }), *hf_),
              {"p7", "bias"});
  {
    // A wrong shape (lora_B rows != the base's n_out) and a non-LoRA tensor.
    RandomLora bad = r;
    bad.modules[0].n_out = 32;
    bad.modules[0].b.resize(32 * 4);
    ExpectError(LoadLoraAdapter(write("p8", {}, bad), *hf_),
                {"p8", "model.layers.0.self_attn.q_proj.lora_B.weight", "do not fit",
                 "model.layers.0.self_attn.q_proj.weight"});
  }
  {
    const std::string d = write("p9", {});
    std::vector<model::SafetensorsEntry> e = {
        {"base_model.model.lm_head.weight", "F32", {2, 2}, std::vector<uint8_t>(16, 0)}};
    ASSERT_TRUE(model::WriteSafetensors(d + "/adapter_model.safetensors", e).ok());
    ExpectError(LoadLoraAdapter(d, *hf_), {"p9", "base_model.model.lm_head.weight"});
  }
  {
    std::vector<model::SafetensorsEntry> e = {
        {"base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
         "F32",
         {2, 64},
         std::vector<uint8_t>(2 * 64 * 4, 0)}};
    const std::string d = write("p10", [](nlohmann::json& c) { c["target_modules"] = nullptr; });
    ASSERT_TRUE(model::WriteSafetensors(d + "/adapter_model.safetensors", e).ok());
    ExpectError(LoadLoraAdapter(d, *hf_), {"p10", "self_attn.v_proj", "lora_B"});
  }
}

// ---- application -------------------------------------------------------------------------------

struct DenseRows {
  std::vector<float> w;  // [n_out, n_in]
  int64_t n_in, n_out;
};

DenseRows Dense(const model::Tensor& t) {
  DenseRows d{std::vector<float>(t.ne[0] * t.rows()), t.ne[0], t.rows()};
  for (int64_t o = 0; o < d.n_out; ++o) {
    kernels::DequantizeRow(
        t.type, static_cast<const uint8_t*>(t.data) + o * kernels::RowBytes(t.type, d.n_in),
        d.w.data() + o * d.n_in, d.n_in);
  }
  return d;
}

class LoraApplyTest : public LoraTest, public ::testing::WithParamInterface<kernels::Isa> {};

TEST_P(LoraApplyTest, MixedBatchEqualsDense) {
  if (!kernels::IsaSupported(GetParam())) GTEST_SKIP() << "ISA not supported here";
  auto be = kernels::Backend::Create({GetParam(), 2});
  RandomLora r1 = testing::MakeRandomLora(*gg_, 8, 16.0f, AllTargets(), 11);
  RandomLora r2 = testing::MakeRandomLora(*gg_, 3, 5.0f, {LoraTarget::kQ, LoraTarget::kDown}, 12);
  ASSERT_TRUE(testing::WritePeftLora(r1, Path("apply1")).ok());
  ASSERT_TRUE(testing::WriteGgufLora(r2, gg_->config, Path("apply2.gguf")).ok());
  auto a1 = MustLoad(Path("apply1"), *gg_);
  auto a2 = MustLoad(Path("apply2.gguf"), *gg_);
  ASSERT_TRUE(a1 && a2);

  // Interleaved (non-contiguous groups) and one contiguous run per adapter.
  const std::vector<std::vector<const LoraAdapter*>> layouts = {
      {a1.get(), nullptr, a2.get(), a1.get(), nullptr, a2.get(), a2.get()},
      {nullptr, a1.get(), a1.get(), a1.get(), a2.get(), a2.get(), nullptr},
      {nullptr, nullptr, nullptr},
      {a2.get()}};
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  LoraScratch scratch;
  for (const auto& layout : layouts) {
    LoraBatch batch;
    batch.Reset(layout);
    EXPECT_EQ(batch.n_rows(), static_cast<int64_t>(layout.size()));
    const int64_t n = batch.n_rows();
    for (int l = 0; l < gg_->config.n_layers; ++l) {
      for (LoraTarget t : AllTargets()) {
        const DenseRows w = Dense(BaseWeight(gg_->weights.layers[l], t));
        std::vector<float> x(n * w.n_in);
        for (float& v : x) v = dist(rng);
        std::vector<float> y(n * w.n_out);
        be->MatMul(model::ViewOf(BaseWeight(gg_->weights.layers[l], t)), x.data(), n, y.data());
        AddLoraDelta(*be, batch, l, t, x.data(), y.data(), scratch);
        // Dense: y = x (W + s B A)^T for the row's adapter, x W^T for base rows.
        double max_diff = 0, max_delta = 0;
        for (int64_t row = 0; row < n; ++row) {
          const LoraWeights* lw = layout[row] ? layout[row]->Find(l, t) : nullptr;
          for (int64_t o = 0; o < w.n_out; ++o) {
            double base = 0, delta = 0;
            for (int64_t i = 0; i < w.n_in; ++i) {
              double wd = 0;
              if (lw != nullptr) {
                for (int k = 0; k < lw->rank; ++k) {
                  wd += static_cast<double>(lw->b[o * lw->rank + k]) * lw->a[k * w.n_in + i];
                }
                wd *= lw->scale;
              }
              base += static_cast<double>(w.w[o * w.n_in + i]) * x[row * w.n_in + i];
              delta += wd * x[row * w.n_in + i];
            }
            max_delta = std::max(max_delta, std::fabs(delta));
            max_diff = std::max(max_diff, std::fabs(base + delta - y[row * w.n_out + o]));
          }
        }
        EXPECT_LT(max_diff, 2e-4) << "layer " << l << " " << HfModuleName(t);
        if (layout.size() > 3) {
          EXPECT_GT(max_delta, 1e-2) << "the adapters should matter";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, LoraApplyTest,
                         ::testing::Values(kernels::Isa::kScalar, kernels::BestIsa()),
                         [](const auto& info) {
                           return std::string(kernels::IsaName(info.param));
                         });

TEST_F(LoraTest, ApplyLoraDeltaSubsetOfRows) {
  auto be = kernels::Backend::Create({kernels::Isa::kScalar, 1});
  RandomLora r = testing::MakeRandomLora(*gg_, 5, 10.0f, {LoraTarget::kO}, 13);
  ASSERT_TRUE(testing::WriteGgufLora(r, gg_->config, Path("subset.gguf")).ok());
  auto a = MustLoad(Path("subset.gguf"), *gg_);
  ASSERT_NE(a, nullptr);
  const LoraWeights& w = *a->Find(1, LoraTarget::kO);
  std::vector<float> x(4 * w.n_in, 0.5f), y(4 * w.n_out, 1.0f);
  const std::vector<int32_t> rows = {1, 3};
  LoraScratch scratch;
  ApplyLoraDelta(*be, w, x.data(), rows, y.data(), scratch);
  for (int64_t o = 0; o < w.n_out; ++o) {
    double d = 0;
    for (int k = 0; k < w.rank; ++k) {
      double ax = 0;
      for (int64_t i = 0; i < w.n_in; ++i) ax += w.a[k * w.n_in + i] * 0.5;
      d += w.b[o * w.rank + k] * ax;
    }
    d *= w.scale;
    EXPECT_EQ(y[0 * w.n_out + o], 1.0f);
    EXPECT_EQ(y[2 * w.n_out + o], 1.0f);
    EXPECT_NEAR(y[1 * w.n_out + o], 1.0 + d, 1e-4);
    EXPECT_NEAR(y[3 * w.n_out + o], 1.0 + d, 1e-4);
  }
}

TEST_F(LoraTest, StridedActivationsMatchDense) {
  // A fused q|k|v output buffer and an input with padded rows give the dense results.
  auto be = kernels::Backend::Create({kernels::BestIsa(), 1});
  RandomLora r1 = testing::MakeRandomLora(*gg_, 8, 16.0f, AllTargets(), 31);
  RandomLora r2 = testing::MakeRandomLora(*gg_, 2, 2.0f, {LoraTarget::kK}, 32);
  ASSERT_TRUE(testing::WritePeftLora(r1, Path("strided1")).ok());
  ASSERT_TRUE(testing::WritePeftLora(r2, Path("strided2")).ok());
  auto a1 = MustLoad(Path("strided1"), *gg_);
  auto a2 = MustLoad(Path("strided2"), *gg_);
  ASSERT_TRUE(a1 && a2);
  const std::vector<const LoraAdapter*> rows = {a2.get(), a1.get(), nullptr, a1.get(), a2.get()};
  LoraBatch batch;
  batch.Reset(rows);
  const int64_t n = 5, d = gg_->config.d_model, pad = d + 7;
  const int64_t widths[3] = {gg_->config.n_heads * gg_->config.head_dim,
                             gg_->config.n_kv_heads * gg_->config.head_dim,
                             gg_->config.n_kv_heads * gg_->config.head_dim};
  const int64_t fused = widths[0] + widths[1] + widths[2];
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n * d), xpad(n * pad, 99.0f), yf(n * fused, 0.5f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) xpad[i * pad + j] = x[i * d + j] = dist(rng);
  }
  LoraScratch scratch;
  int64_t off = 0;
  const LoraTarget targets[3] = {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV};
  for (int t = 0; t < 3; ++t) {
    std::vector<float> dense(n * widths[t], 0.5f);
    AddLoraDelta(*be, batch, 1, targets[t], x.data(), dense.data(), scratch);
    AddLoraDelta(*be, batch, 1, targets[t], xpad.data(), yf.data() + off, scratch,
                 {.x = pad, .y = fused});
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t o = 0; o < widths[t]; ++o) {
        ASSERT_FLOAT_EQ(yf[i * fused + off + o], dense[i * widths[t] + o]) << t << " " << i;
      }
    }
    off += widths[t];
  }
}

// ---- permutation and merged models ----------------------------------------------------------

TEST_F(LoraTest, PeftQkDeltaOnGgufBaseIsThePermutedHfDelta) {
  RandomLora r = testing::MakeRandomLora(*hf_, 6, 12.0f, AllTargets(), 14);
  ASSERT_TRUE(testing::WritePeftLora(r, Path("perm")).ok());
  auto on_hf = MustLoad(Path("perm"), *hf_);
  auto on_gg = MustLoad(Path("perm"), *gg_);
  ASSERT_TRUE(on_hf && on_gg);
  const model::ModelConfig& c = gg_->config;
  for (int l = 0; l < c.n_layers; ++l) {
    for (LoraTarget t : AllTargets()) {
      auto merged = [&](const model::Model& m, const LoraAdapter& a) {
        DenseRows d = Dense(BaseWeight(m.weights.layers[l], t));
        const LoraWeights& lw = *a.Find(l, t);
        for (int64_t o = 0; o < d.n_out; ++o) {
          for (int64_t i = 0; i < d.n_in; ++i) {
            double s = 0;
            for (int k = 0; k < lw.rank; ++k) s += lw.b[o * lw.rank + k] * lw.a[k * d.n_in + i];
            d.w[o * d.n_in + i] += static_cast<float>(lw.scale * s);
          }
        }
        return d;
      };
      DenseRows h = merged(*hf_, *on_hf);
      DenseRows g = merged(*gg_, *on_gg);
      std::vector<float> expect = h.w;
      if (t == LoraTarget::kQ) expect = testing::PermuteForGguf(h.w, c.n_heads, c.head_dim, h.n_in);
      if (t == LoraTarget::kK) {
        expect = testing::PermuteForGguf(h.w, c.n_kv_heads, c.head_dim, h.n_in);
      }
      EXPECT_LT(MaxDiff(g.w, expect), 1e-6) << "layer " << l << " " << HfModuleName(t);
    }
  }
}

std::vector<float> AllLogits(const model::Model& m, const std::vector<int32_t>& tokens) {
  auto f = model::LlamaForward::Create(m, {.n_ctx = 64, .n_batch = 16, .n_threads = 1});
  EXPECT_TRUE(f.ok()) << f.status();
  auto out = (*f)->Forward(tokens, /*all_logits=*/true);
  EXPECT_TRUE(out.ok()) << out.status();
  return std::vector<float>(out->begin(), out->end());
}

TEST_F(LoraTest, MergedPeftGivesSameLogitsOnHfAndGgufBase) {
  RandomLora r = testing::MakeRandomLora(*hf_, 8, 16.0f, AllTargets(), 15, 0.15f);
  ASSERT_TRUE(testing::WritePeftLora(r, Path("merge_peft")).ok());
  ASSERT_TRUE(testing::WriteGgufLora(r, gg_->config, Path("merge.gguf")).ok());
  auto on_hf = MustLoad(Path("merge_peft"), *hf_);
  auto on_gg = MustLoad(Path("merge_peft"), *gg_);
  auto gguf_form = MustLoad(Path("merge.gguf"), *gg_);
  ASSERT_TRUE(on_hf && on_gg && gguf_form);
  ASSERT_TRUE(testing::MergeLoraIntoModel(*hf_, *on_hf, Path("merged_hf")).ok());
  ASSERT_TRUE(testing::MergeLoraIntoModel(*gg_, *on_gg, Path("merged.gguf")).ok());
  ASSERT_TRUE(testing::MergeLoraIntoModel(*gg_, *gguf_form, Path("merged2.gguf")).ok());
  auto mh = model::LoadModel(Path("merged_hf"));
  auto mg = model::LoadModel(Path("merged.gguf"));
  auto mg2 = model::LoadModel(Path("merged2.gguf"));
  ASSERT_TRUE(mh.ok() && mg.ok() && mg2.ok());
  const std::vector<int32_t> tokens = {1, 5, 9, 13, 2, 33, 7, 7, 21, 39, 0, 4};
  const std::vector<float> lh = AllLogits(**mh, tokens);
  const std::vector<float> lg = AllLogits(**mg, tokens);
  const std::vector<float> lg2 = AllLogits(**mg2, tokens);
  const std::vector<float> base = AllLogits(*gg_, tokens);
  double max_abs = 0;
  for (float v : lh) max_abs = std::max<double>(max_abs, std::fabs(v));
  EXPECT_GT(max_abs, 0.5);
  EXPECT_LT(MaxDiff(lh, lg), 1e-4 * std::max(1.0, max_abs));
  EXPECT_LT(MaxDiff(lg, lg2), 1e-5 * std::max(1.0, max_abs));
  EXPECT_GT(MaxDiff(lg, base), 0.05) << "the adapter should change the logits";
}

// A batched forward loop (one row per sequence per step, each sequence with its own KV cache)
// that calls AddLoraDelta after each projection, as the engine's forward pass does.
std::vector<std::vector<float>> HookedLogits(const model::Model& m,
                                             const std::vector<std::vector<int32_t>>& seqs,
                                             const std::vector<const LoraAdapter*>& adapters) {
  const model::ModelConfig& c = m.config;
  const model::ModelWeights& w = m.weights;
  auto be = kernels::Backend::Create({kernels::BestIsa(), 2});
  const int64_t S = static_cast<int64_t>(seqs.size()), T = static_cast<int64_t>(seqs[0].size());
  const int64_t d = c.d_model, hd = c.head_dim, q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  const int64_t ff = c.d_ff, V = c.vocab_size;
  kernels::RopeParams rope;
  rope.head_dim = c.head_dim;
  rope.rope_dim = c.rope_dim;
  rope.freq_base = c.rope_freq_base;
  rope.mode = c.rope_layout == model::RopeLayout::kHalves ? kernels::RopeMode::kHalves
                                                          : kernels::RopeMode::kAdjacentPairs;
  kernels::AttentionParams ap{c.n_heads, c.n_kv_heads, c.head_dim,
                              1.0f / std::sqrt(static_cast<float>(hd))};
  // [seq][layer] caches of [T, kv_dim].
  std::vector<std::vector<std::vector<float>>> kc(
      S, std::vector<std::vector<float>>(c.n_layers, std::vector<float>(T * kv_dim)));
  auto vc = kc;
  std::vector<float> x(S * d), xb(S * d), xb2(S * d), q(S * q_dim), k(S * kv_dim), v(S * kv_dim),
      att(S * q_dim), hb(S * ff), hb2(S * ff), logits(S * V);
  std::vector<std::vector<float>> out(S, std::vector<float>(T * V));
  LoraBatch batch;
  batch.Reset(adapters);
  LoraScratch scratch;
  auto f32 = [](const model::Tensor& t) { return static_cast<const float*>(t.data); };
  for (int32_t pos = 0; pos < T; ++pos) {
    std::vector<int32_t> positions(S, pos);
    for (int64_t s = 0; s < S; ++s) {
      be->EmbeddingLookup(model::ViewOf(w.tok_embd), seqs[s][pos], x.data() + s * d);
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const model::LayerWeights& L = w.layers[l];
      auto proj = [&](const model::Tensor& wt, LoraTarget t, const float* in, float* o) {
        be->MatMul(model::ViewOf(wt), in, S, o);
        AddLoraDelta(*be, batch, l, t, in, o, scratch);
      };
      be->RmsNorm(x.data(), f32(L.attn_norm), d, S, c.norm_eps, xb.data());
      proj(L.wq, LoraTarget::kQ, xb.data(), q.data());
      proj(L.wk, LoraTarget::kK, xb.data(), k.data());
      proj(L.wv, LoraTarget::kV, xb.data(), v.data());
      be->Rope(q.data(), S, c.n_heads, positions.data(), rope);
      be->Rope(k.data(), S, c.n_kv_heads, positions.data(), rope);
      for (int64_t s = 0; s < S; ++s) {
        std::copy_n(k.data() + s * kv_dim, kv_dim, kc[s][l].data() + pos * kv_dim);
        std::copy_n(v.data() + s * kv_dim, kv_dim, vc[s][l].data() + pos * kv_dim);
        be->Attention(q.data() + s * q_dim, kc[s][l].data(), vc[s][l].data(), 1, &pos, ap,
                      att.data() + s * q_dim);
      }
      proj(L.wo, LoraTarget::kO, att.data(), xb2.data());
      be->Add(xb2.data(), S * d, x.data());
      be->RmsNorm(x.data(), f32(L.ffn_norm), d, S, c.norm_eps, xb.data());
      proj(L.w_gate, LoraTarget::kGate, xb.data(), hb.data());
      proj(L.w_up, LoraTarget::kUp, xb.data(), hb2.data());
      be->SiluMul(hb.data(), hb2.data(), S * ff, hb.data());
      proj(L.w_down, LoraTarget::kDown, hb.data(), xb2.data());
      be->Add(xb2.data(), S * d, x.data());
    }
    be->RmsNorm(x.data(), f32(w.output_norm), d, S, c.norm_eps, xb.data());
    be->MatMul(model::ViewOf(w.output), xb.data(), S, logits.data());
    for (int64_t s = 0; s < S; ++s) {
      std::copy_n(logits.data() + s * V, V, out[s].data() + pos * V);
    }
  }
  return out;
}

TEST_F(LoraTest, MixedBatchForwardEqualsMergedModels) {
  // Two adapters of different ranks and forms, and base rows, in the same batch.
  RandomLora r1 = testing::MakeRandomLora(*hf_, 8, 16.0f, AllTargets(), 21, 0.15f);
  RandomLora r2 = testing::MakeRandomLora(
      *hf_, 4, 4.0f, {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kUp, LoraTarget::kDown}, 22,
      0.2f);
  ASSERT_TRUE(testing::WritePeftLora(r1, Path("fwd_peft")).ok());
  ASSERT_TRUE(testing::WriteGgufLora(r2, gg_->config, Path("fwd.gguf")).ok());
  auto a1 = MustLoad(Path("fwd_peft"), *gg_);
  auto a2 = MustLoad(Path("fwd.gguf"), *gg_);
  ASSERT_TRUE(a1 && a2);
  ASSERT_TRUE(testing::MergeLoraIntoModel(*gg_, *a1, Path("fwd_m1.gguf")).ok());
  ASSERT_TRUE(testing::MergeLoraIntoModel(*gg_, *a2, Path("fwd_m2.gguf")).ok());
  auto m1 = model::LoadModel(Path("fwd_m1.gguf"));
  auto m2 = model::LoadModel(Path("fwd_m2.gguf"));
  ASSERT_TRUE(m1.ok() && m2.ok());

  const std::vector<std::vector<int32_t>> seqs = {{1, 2, 3, 4, 5, 6, 7, 8},
                                                  {9, 8, 7, 6, 5, 4, 3, 2},
                                                  {11, 22, 33, 1, 2, 3, 14, 15},
                                                  {1, 2, 3, 4, 5, 6, 7, 8},
                                                  {39, 38, 37, 1, 0, 0, 12, 30}};
  const std::vector<const LoraAdapter*> adapters = {a1.get(), nullptr, a2.get(), nullptr, a1.get()};
  const std::vector<const model::Model*> reference = {m1->get(), gg_, m2->get(), gg_, m1->get()};
  const auto hooked = HookedLogits(*gg_, seqs, adapters);
  for (size_t s = 0; s < seqs.size(); ++s) {
    const std::vector<float> expect = AllLogits(*reference[s], seqs[s]);
    double max_abs = 0;
    for (float v : expect) max_abs = std::max<double>(max_abs, std::fabs(v));
    EXPECT_LT(MaxDiff(hooked[s], expect), 2e-4 * std::max(1.0, max_abs)) << "sequence " << s;
  }
  // Same tokens, adapter vs base: different logits.
  EXPECT_GT(MaxDiff(hooked[0], hooked[3]), 0.05);
}

}  // namespace
}  // namespace weft::lora
