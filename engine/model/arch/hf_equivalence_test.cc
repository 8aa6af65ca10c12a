// SPDX-License-Identifier: Apache-2.0
// The same weights written as an HF checkpoint (config.json + safetensors + tokenizer.json,
// rotate-half RoPE) and as a GGUF (q/k rows permuted to adjacent-pair RoPE, as llama.cpp's
// converter does) give the same logits at every position. Proves the safetensors and GGUF readers,
// the RoPE permutation, both RoPE kernels, and Llama-3 rope scaling given as config parameters (HF)
// versus a rope_freqs tensor (GGUF). The tokenizers of both files must agree too.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/arch/llama.h"
#include "engine/model/gguf_writer.h"
#include "engine/model/model.h"
#include "engine/model/safetensors_writer.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_data.h"

namespace weft::model {
namespace {

constexpr int kD = 64, kHeads = 4, kKv = 2, kHeadDim = 16, kFf = 96, kLayers = 2;
constexpr float kRopeBase = 500000.0f;
constexpr int kOrigCtx =
    32;  // small, so Llama-3 scaling changes low frequencies at short positions

// GPT-2's byte -> unicode map (printable bytes stand for themselves, others shift past 255).
std::vector<std::string> ByteLevelAlphabet() {
  std::vector<int> cps(256, -1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cps[b] = printable ? b : next++;
  }
  std::vector<std::string> out;
  for (int cp : cps) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out.push_back(s);
  }
  return out;
}

struct Vocab {
  std::vector<std::string> tokens;  // byte tokens, then merged tokens, then <|endoftext|>
  std::vector<std::string> merges;  // "a b"
  int eos = 0;
};

Vocab MakeVocab() {
  Vocab v;
  v.tokens = ByteLevelAlphabet();
  const std::string space = v.tokens[' '];
  for (auto [a, b] : std::vector<std::pair<std::string, std::string>>{
           {"h", "e"}, {"l", "l"}, {"he", "ll"}, {space, "w"}, {"o", "r"}, {space + "w", "or"}}) {
    v.merges.push_back(a + " " + b);
    v.tokens.push_back(a + b);
  }
  v.eos = static_cast<int>(v.tokens.size());
  v.tokens.push_back("<|endoftext|>");
  return v;
}

std::vector<float> RandomVector(int64_t n, std::mt19937& rng, float std_dev, float mean = 0.0f) {
  std::normal_distribution<float> dist(mean, std_dev);
  std::vector<float> out(n);
  for (float& x : out) x = dist(rng);
  return out;
}

std::vector<uint8_t> Bytes(const std::vector<float>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return std::vector<uint8_t>(p, p + v.size() * sizeof(float));
}

// HF q/k rows [n_heads * head_dim, d] (rotate-half) -> GGUF rows (adjacent pairs): within each
// head, row 2i comes from row i and row 2i+1 from row i + head_dim/2.
std::vector<float> PermuteForGguf(const std::vector<float>& w, int n_heads, int64_t cols) {
  std::vector<float> out(w.size());
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < kHeadDim / 2; ++i) {
      for (int half = 0; half < 2; ++half) {
        const int64_t src = h * kHeadDim + half * (kHeadDim / 2) + i;
        const int64_t dst = h * kHeadDim + 2 * i + half;
        std::copy_n(w.begin() + src * cols, cols, out.begin() + dst * cols);
      }
    }
  }
  return out;
}

// llama.cpp's converter's Llama-3 rope_freqs: per-pair divisors of the inverse frequency.
std::vector<float> Llama3RopeFreqs(float factor, float low, float high, int orig_ctx) {
  std::vector<float> out;
  const float low_wavelen = orig_ctx / low, high_wavelen = orig_ctx / high;
  for (int i = 0; i < kHeadDim; i += 2) {
    const double freq = 1.0 / std::pow(kRopeBase, static_cast<double>(i) / kHeadDim);
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const double smooth = (orig_ctx / wavelen - low) / (high - low);
      out.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

struct Written {
  std::string hf_dir;
  std::string gguf_path;
};

Written WriteBoth(const std::string& dir, bool llama3_scaling, int vocab_size, const Vocab& vocab) {
  std::mt19937 rng(1234);
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"hidden_size", kD},
                           {"intermediate_size", kFf},
                           {"num_hidden_layers", kLayers},
                           {"num_attention_heads", kHeads},
                           {"num_key_value_heads", kKv},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", kRopeBase},
                           {"vocab_size", vocab_size},
                           {"max_position_embeddings", 256},
                           {"tie_word_embeddings", false},
                           {"bos_token_id", vocab.eos},
                           {"eos_token_id", vocab.eos},
                           {"torch_dtype", "float32"}};
  if (llama3_scaling) {
    config["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0},
                              {"original_max_position_embeddings", kOrigCtx}};
  }
  Written w{dir + "/hf", dir + "/model.gguf"};
  std::filesystem::create_directories(w.hf_dir);
  std::ofstream(w.hf_dir + "/config.json") << config.dump(2);

  nlohmann::json added = nlohmann::json::array();
  added.push_back({{"id", vocab.eos},
                   {"content", "<|endoftext|>"},
                   {"single_word", false},
                   {"lstrip", false},
                   {"rstrip", false},
                   {"normalized", false},
                   {"special", true}});
  nlohmann::json vocab_map = nlohmann::json::object();
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    if (static_cast<int>(i) != vocab.eos) vocab_map[vocab.tokens[i]] = i;
  }
  nlohmann::json tok = {{"version", "1.0"},
                        {"added_tokens", added},
                        {"normalizer", nullptr},
                        {"pre_tokenizer",
                         {{"type", "ByteLevel"},
                          {"add_prefix_space", false},
                          {"trim_offsets", true},
                          {"use_regex", true}}},
                        {"post_processor", nullptr},
                        {"decoder", {{"type", "ByteLevel"}}},
                        {"model",
                         {{"type", "BPE"},
                          {"dropout", nullptr},
                          {"unk_token", nullptr},
                          {"fuse_unk", false},
                          {"byte_fallback", false},
                          {"vocab", vocab_map},
                          {"merges", vocab.merges}}}};
  std::ofstream(w.hf_dir + "/tokenizer.json") << tok.dump();

  std::vector<SafetensorsEntry> st;
  GgufWriter g;
  g.SetString("general.architecture", "llama");
  g.SetString("general.name", "hf-equivalence");
  g.SetU32("llama.block_count", kLayers);
  g.SetU32("llama.context_length", 256);
  g.SetU32("llama.embedding_length", kD);
  g.SetU32("llama.feed_forward_length", kFf);
  g.SetU32("llama.attention.head_count", kHeads);
  g.SetU32("llama.attention.head_count_kv", kKv);
  g.SetF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  g.SetF32("llama.rope.freq_base", kRopeBase);
  g.SetU32("llama.rope.dimension_count", kHeadDim);
  g.SetU32("llama.vocab_size", vocab_size);
  g.SetString("tokenizer.ggml.model", "gpt2");
  g.SetString("tokenizer.ggml.pre", "default");
  std::vector<std::string> tokens = vocab.tokens;
  std::vector<int32_t> types(tokens.size(), 1);
  types[vocab.eos] = 3;  // control
  g.SetStringArray("tokenizer.ggml.tokens", tokens);
  g.SetArray("tokenizer.ggml.token_type", GgufType::kInt32, types.data(), types.size());
  g.SetStringArray("tokenizer.ggml.merges", vocab.merges);
  g.SetU32("tokenizer.ggml.bos_token_id", vocab.eos);
  g.SetU32("tokenizer.ggml.eos_token_id", vocab.eos);
  g.SetBool("tokenizer.ggml.add_bos_token", false);

  auto both = [&](const std::string& hf_name, const std::string& gguf_name,
                  std::vector<int64_t> hf_shape, const std::vector<float>& hf_data,
                  const std::vector<float>& gguf_data) {
    st.push_back({hf_name, "F32", hf_shape, Bytes(hf_data)});
    std::vector<int64_t> ne(hf_shape.rbegin(), hf_shape.rend());
    EXPECT_TRUE(g.AddTensor(gguf_name, kernels::DType::kF32, ne, Bytes(gguf_data)).ok());
  };
  auto same = [&](const std::string& hf_name, const std::string& gguf_name,
                  std::vector<int64_t> shape, float std_dev, float mean = 0.0f) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    std::vector<float> v = RandomVector(n, rng, std_dev, mean);
    both(hf_name, gguf_name, shape, v, v);
  };
  same("model.embed_tokens.weight", "token_embd.weight", {vocab_size, kD}, 1.0f);
  for (int l = 0; l < kLayers; ++l) {
    const std::string hf = absl::StrCat("model.layers.", l, ".");
    const std::string gg = absl::StrCat("blk.", l, ".");
    same(hf + "input_layernorm.weight", gg + "attn_norm.weight", {kD}, 0.1f, 1.0f);
    std::vector<float> wq = RandomVector(kHeads * kHeadDim * kD, rng, 0.3f);
    std::vector<float> wk = RandomVector(kKv * kHeadDim * kD, rng, 0.3f);
    both(hf + "self_attn.q_proj.weight", gg + "attn_q.weight", {kHeads * kHeadDim, kD}, wq,
         PermuteForGguf(wq, kHeads, kD));
    both(hf + "self_attn.k_proj.weight", gg + "attn_k.weight", {kKv * kHeadDim, kD}, wk,
         PermuteForGguf(wk, kKv, kD));
    same(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", {kKv * kHeadDim, kD}, 0.2f);
    same(hf + "self_attn.o_proj.weight", gg + "attn_output.weight", {kD, kHeads * kHeadDim}, 0.2f);
    same(hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", {kD}, 0.1f, 1.0f);
    same(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", {kFf, kD}, 0.2f);
    same(hf + "mlp.up_proj.weight", gg + "ffn_up.weight", {kFf, kD}, 0.2f);
    same(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", {kD, kFf}, 0.2f);
  }
  same("model.norm.weight", "output_norm.weight", {kD}, 0.1f, 1.0f);
  same("lm_head.weight", "output.weight", {vocab_size, kD}, 0.2f);
  if (llama3_scaling) {
    std::vector<float> freqs = Llama3RopeFreqs(8.0f, 1.0f, 4.0f, kOrigCtx);
    EXPECT_TRUE(g.AddTensor("rope_freqs.weight", kernels::DType::kF32,
                            {static_cast<int64_t>(freqs.size())}, Bytes(freqs))
                    .ok());
  }
  EXPECT_TRUE(WriteSafetensors(w.hf_dir + "/model.safetensors", st).ok());
  EXPECT_TRUE(g.WriteFile(w.gguf_path).ok());
  return w;
}

std::vector<float> AllLogits(const Model& m, const std::vector<int32_t>& tokens) {
  auto f = LlamaForward::Create(m, {.n_ctx = 128, .n_batch = 16, .n_threads = 1});
  EXPECT_TRUE(f.ok()) << f.status();
  auto out = (*f)->Forward(tokens, /*all_logits=*/true);
  EXPECT_TRUE(out.ok()) << out.status();
  return std::vector<float>(out->begin(), out->end());
}

class HfEquivalenceTest : public ::testing::TestWithParam<bool> {};

TEST_P(HfEquivalenceTest, SameLogitsAsGguf) {
  const bool llama3 = GetParam();
  const Vocab vocab = MakeVocab();
  const int vocab_size = static_cast<int>(vocab.tokens.size());
  const std::string dir = weft::testing::MakeTempDir("weft_hf_equiv_");
  Written w = WriteBoth(dir, llama3, vocab_size, vocab);

  auto hf = LoadModel(w.hf_dir);
  ASSERT_TRUE(hf.ok()) << hf.status();
  auto gg = LoadModel(w.gguf_path);
  ASSERT_TRUE(gg.ok()) << gg.status();
  EXPECT_EQ((*hf)->format, ModelFormat::kHfSafetensors);
  EXPECT_EQ((*hf)->config.rope_layout, RopeLayout::kHalves);
  EXPECT_EQ((*gg)->config.rope_layout, RopeLayout::kAdjacentPairs);

  auto hf_tok = tokenizer::LoadTokenizer(**hf);
  ASSERT_TRUE(hf_tok.ok()) << hf_tok.status();
  auto gg_tok = tokenizer::LoadTokenizer(**gg);
  ASSERT_TRUE(gg_tok.ok()) << gg_tok.status();
  const std::string text = "hello world, hello world! hello hello world world 123";
  std::vector<int32_t> tokens = (*hf_tok)->Encode(text, {});
  ASSERT_EQ(tokens, (*gg_tok)->Encode(text, {}));
  EXPECT_LT(tokens.size(), text.size()) << "the merges should have applied";
  EXPECT_EQ((*hf_tok)->Decode(tokens), text);
  // Longer than the original context, so Llama-3 scaling matters.
  while (tokens.size() < 48) tokens.push_back(static_cast<int32_t>(tokens.size() * 7 % 256));

  std::vector<float> a = AllLogits(**hf, tokens);
  std::vector<float> b = AllLogits(**gg, tokens);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), tokens.size() * vocab_size);
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max<double>(max_diff, std::fabs(a[i] - b[i]));
    max_abs = std::max<double>(max_abs, std::fabs(a[i]));
  }
  EXPECT_GT(max_abs, 0.5) << "logits should not be trivially small";
  EXPECT_LT(max_diff, 1e-4 * std::max(1.0, max_abs)) << "max |hf - gguf| = " << max_diff;

  if (llama3) {
    // The scaling must actually change the result: without rope_freqs the GGUF differs.
    Model& gm = **gg;
    gm.weights.rope_freqs = Tensor{};
    std::vector<float> c = AllLogits(gm, tokens);
    double diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff = std::max<double>(diff, std::fabs(a[i] - c[i]));
    EXPECT_GT(diff, 1e-3) << "llama3 rope scaling had no effect";
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(RopeScaling, HfEquivalenceTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Llama3" : "None"; });

}  // namespace
}  // namespace weft::model
