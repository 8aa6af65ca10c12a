// SPDX-License-Identifier: Apache-2.0
// Every malformed input is a clear Status naming the file and the problem, never a crash: GGUF,
// safetensors, HF directories and llama2.c checkpoints, plus truncation sweeps at every byte.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "engine/model/gguf.h"
#include "engine/model/gguf_writer.h"
#include "engine/model/loaders.h"
#include "engine/model/model.h"
#include "engine/model/safetensors.h"
#include "engine/model/safetensors_writer.h"
#include "engine/model/tiny_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_data.h"

namespace weft::model {
namespace {

using kernels::DType;
using ::testing::HasSubstr;
using namespace weft::model::testing;  // NOLINT: tiny model builders

#define EXPECT_ERROR(status_expr, ...)                                             \
  do {                                                                             \
    const absl::Status s_ = (status_expr);                                         \
    EXPECT_FALSE(s_.ok());                                                         \
    for (const char* part : {__VA_ARGS__}) {                                       \
      EXPECT_THAT(std::string(s_.message()), HasSubstr(part)) << "status: " << s_; \
    }                                                                              \
  } while (0)

// Little-endian byte builder for hand-made headers.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  Bytes& Put(T v) {
    for (size_t k = 0; k < sizeof(T); ++k)
      b.push_back(static_cast<uint8_t>(uint64_t(v) >> (8 * k)));
    return *this;
  }
  Bytes& U32(uint32_t v) { return Put(v); }
  Bytes& U64(uint64_t v) { return Put(v); }
  Bytes& Str(std::string_view s) {
    U64(s.size());
    for (char c : s) b.push_back(static_cast<uint8_t>(c));
    return *this;
  }
};
Bytes GgufHeader(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
  Bytes b;
  b.U32(0x46554747).U32(version).U64(n_tensors).U64(n_kv);
  return b;
}

// Parses as LoadModel would: GgufFile, then the model views.
absl::Status LoadGgufBytes(const std::vector<uint8_t>& bytes) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Parse(bytes, "bad.gguf");
  if (!f.ok()) return f.status();
  return ModelFromGguf(std::move(*f)).status();
}

// Offset just past `needle` (a length-prefixed GGUF string) in the bytes.
size_t After(const std::vector<uint8_t>& bytes, std::string_view needle) {
  std::string hay(bytes.begin(), bytes.end());
  std::string pattern(8, '\0');
  const uint64_t n = needle.size();
  std::memcpy(pattern.data(), &n, 8);
  pattern += needle;
  const size_t at = hay.find(pattern);
  EXPECT_NE(at, std::string::npos) << needle;
  return at + pattern.size();
}
template <typename T>
void Poke(std::vector<uint8_t>& bytes, size_t at, T v) {
  std::memcpy(bytes.data() + at, &v, sizeof(T));
}

TEST(GgufErrorsTest, TinyModelIsValid) {
  EXPECT_TRUE(LoadGgufBytes(TinyGguf()).ok()) << LoadGgufBytes(TinyGguf());
}

TEST(GgufErrorsTest, TooShortAndBadMagic) {
  EXPECT_ERROR(LoadGgufBytes({}), "bad.gguf", "truncated");
  EXPECT_ERROR(LoadGgufBytes({'G', 'G'}), "bad.gguf", "truncated");
  std::vector<uint8_t> b = TinyGguf();
  b[0] = 'X';
  EXPECT_ERROR(LoadGgufBytes(b), "bad.gguf", "bad magic");
}

TEST(GgufErrorsTest, BadVersions) {
  EXPECT_ERROR(LoadGgufBytes(GgufHeader(1, 0, 0).b), "bad.gguf", "version 1 is not supported");
  EXPECT_ERROR(LoadGgufBytes(GgufHeader(0, 0, 0).b), "bad.gguf", "unsupported GGUF version 0");
  EXPECT_ERROR(LoadGgufBytes(GgufHeader(4, 0, 0).b), "bad.gguf", "unsupported GGUF version 4");
  EXPECT_ERROR(LoadGgufBytes(GgufHeader(0x03000000, 0, 0).b), "bad.gguf", "big-endian");
}

TEST(GgufErrorsTest, OverflowingCounts) {
  EXPECT_ERROR(LoadGgufBytes(GgufHeader(3, 0, ~0ull).b), "bad.gguf", "metadata count");
  EXPECT_ERROR(LoadGgufBytes(GgufHeader(3, 1ull << 60, 0).b), "bad.gguf", "tensor count");
  Bytes b = GgufHeader(3, 0, 1);
  b.Str("k").U32(9).U32(4).U64(1ull << 62);  // array of 2^62 uint32
  EXPECT_ERROR(LoadGgufBytes(b.b), "bad.gguf", "array 'k' claims");
  Bytes s = GgufHeader(3, 0, 1);
  s.Str("k").U32(9).U32(8).U64(1ull << 40);  // string array
  EXPECT_ERROR(LoadGgufBytes(s.b), "bad.gguf", "string array 'k'");
  Bytes l = GgufHeader(3, 0, 1);
  l.Str("k").U32(8).U64(~0ull);  // string length
  EXPECT_ERROR(LoadGgufBytes(l.b), "bad.gguf", "has length");
}

TEST(GgufErrorsTest, UnknownValueTypes) {
  Bytes b = GgufHeader(3, 0, 1);
  b.Str("weird").U32(13).U32(0);
  EXPECT_ERROR(LoadGgufBytes(b.b), "bad.gguf", "'weird' has unknown value type 13");
  Bytes a = GgufHeader(3, 0, 1);
  a.Str("arr").U32(9).U32(77).U64(0);
  EXPECT_ERROR(LoadGgufBytes(a.b), "bad.gguf", "array of unknown value type 77");
  Bytes bo = GgufHeader(3, 0, 1);
  bo.Str("flag").U32(7).Put<uint8_t>(2);
  EXPECT_ERROR(LoadGgufBytes(bo.b), "bad.gguf", "bool value 2");
}

TEST(GgufErrorsTest, NestingTooDeep) {
  Bytes b = GgufHeader(3, 0, 1);
  b.Str("deep").U32(9);
  for (int k = 0; k < 20; ++k) b.U32(9).U64(1);
  b.U32(4).U64(0);
  EXPECT_ERROR(LoadGgufBytes(b.b), "bad.gguf", "nests arrays deeper");
}

TEST(GgufErrorsTest, DuplicatesAndAlignment) {
  Bytes b = GgufHeader(3, 0, 2);
  b.Str("k").U32(4).U32(1).Str("k").U32(4).U32(2);
  EXPECT_ERROR(LoadGgufBytes(b.b), "bad.gguf", "duplicate metadata key 'k'");
  Bytes a = GgufHeader(3, 0, 1);
  a.Str("general.alignment").U32(4).U32(24);
  EXPECT_ERROR(LoadGgufBytes(a.b), "bad.gguf", "not a power of two");
  Bytes t = GgufHeader(3, 0, 1);
  t.Str("general.alignment").U32(8).Str("32");
  EXPECT_ERROR(LoadGgufBytes(t.b), "bad.gguf", "general.alignment has type string");
  std::vector<TensorSpec> specs = TinyGgufTensors();
  specs.push_back(specs[1]);
  GgufWriter w;
  for (const TensorSpec& s : specs) {
    ASSERT_TRUE(w.AddTensor(s.name, s.type, s.ne,
                            std::vector<uint8_t>(kernels::RowBytes(s.type, s.ne[0]) *
                                                 (s.ne.size() > 1 ? s.ne[1] : 1)))
                    .ok());
  }
  EXPECT_ERROR(LoadGgufBytes(*w.WriteToBytes()), "bad.gguf", "duplicate tensor name");
}

TEST(GgufErrorsTest, BadTensorInfos) {
  const std::vector<uint8_t> good = TinyGguf();
  {  // unknown tensor type
    std::vector<uint8_t> b = good;
    Poke<uint32_t>(b, After(b, "blk.0.attn_q.weight") + 4 + 16, 99);
    EXPECT_ERROR(LoadGgufBytes(b), "bad.gguf", "'blk.0.attn_q.weight'",
                 "unknown or unsupported tensor type 99");
  }
  {  // supported by GGML, not by Weft (q5_0 = 6)
    std::vector<uint8_t> b = good;
    Poke<uint32_t>(b, After(b, "blk.0.attn_q.weight") + 4 + 16, 6);
    EXPECT_ERROR(LoadGgufBytes(b), "bad.gguf", "tensor type 6");
  }
  {  // too many dims
    std::vector<uint8_t> b = good;
    Poke<uint32_t>(b, After(b, "output_norm.weight"), 5);
    EXPECT_ERROR(LoadGgufBytes(b), "bad.gguf", "has 5 dimensions");
  }
  {  // dimension beyond int64
    std::vector<uint8_t> b = good;
    Poke<uint64_t>(b, After(b, "output_norm.weight") + 4, ~0ull);
    EXPECT_ERROR(LoadGgufBytes(b), "bad.gguf", "does not fit int64");
  }
  {  // element count overflow
    std::vector<uint8_t> b = good;
    const size_t at = After(b, "blk.1.ffn_up.weight") + 4;
    Poke<uint64_t>(b, at, 1ull << 40);
    Poke<uint64_t>(b, at + 8, 1ull << 40);
    EXPECT_ERROR(LoadGgufBytes(b), "bad.gguf", "overflows int64");
  }
  {  // quantized row not a multiple of the block size
    std::vector<uint8_t> b = good;
    Poke<uint64_t>(b, After(b, "blk.1.ffn_up.weight") + 4, 16);
    EXPECT_ERROR(LoadGgufBytes(b), "bad.gguf", "not a multiple of the block size 32");
  }
  {  // misaligned offset
    std::vector<uint8_t> b = good;
    const size_t at = After(b, "blk.1.ffn_up.weight") + 4 + 16 + 4;
    uint64_t off;
    std::memcpy(&off, b.data() + at, 8);
    Poke<uint64_t>(b, at, off + 4);
    EXPECT_ERROR(LoadGgufBytes(b), "bad.gguf", "not a multiple of the alignment");
  }
  {  // offset beyond the file
    std::vector<uint8_t> b = good;
    Poke<uint64_t>(b, After(b, "blk.1.ffn_up.weight") + 4 + 16 + 4, 1ull << 40);
    EXPECT_ERROR(LoadGgufBytes(b), "bad.gguf", "outside the data section");
  }
}

TEST(GgufErrorsTest, ModelLevelProblems) {
  auto edited = [](const std::function<void(GgufWriter&)>& edit) {
    return LoadGgufBytes(TinyGguf(TinyGgufTensors(), edit));
  };
  EXPECT_ERROR(edited([](GgufWriter& w) { w.Erase("general.architecture"); }), "bad.gguf",
               "general.architecture is missing");
  EXPECT_ERROR(edited([](GgufWriter& w) { w.SetString("general.architecture", "gpt2"); }),
               "bad.gguf", "unsupported architecture 'gpt2'");
  EXPECT_ERROR(edited([](GgufWriter& w) { w.Erase("llama.block_count"); }), "bad.gguf",
               "required metadata key 'llama.block_count' is missing");
  EXPECT_ERROR(edited([](GgufWriter& w) { w.SetString("llama.block_count", "2"); }), "bad.gguf",
               "'llama.block_count' has type string");
  EXPECT_ERROR(edited([](GgufWriter& w) { w.SetU32("llama.attention.head_count_kv", 3); }),
               "bad.gguf", "not a multiple of n_kv_heads");
  EXPECT_ERROR(edited([](GgufWriter& w) { w.SetU32("llama.block_count", 3); }), "bad.gguf",
               "missing tensor blk.2.attn_norm.weight");
  EXPECT_ERROR(edited([](GgufWriter& w) { w.SetU32("llama.block_count", 4000000000u); }),
               "bad.gguf", "block_count");
  EXPECT_ERROR(edited([](GgufWriter& w) { w.SetU32("llama.feed_forward_length", 96); }), "bad.gguf",
               "blk.0.ffn_gate.weight' has shape [32, 64], expected [32, 96]");
  EXPECT_ERROR(edited([](GgufWriter& w) {
                 const std::vector<std::string> toks(9, "x");
                 w.SetStringArray("tokenizer.ggml.tokens", toks);
               }),
               "bad.gguf", "token_embd.weight' has shape [32, 8], expected [32, 9]");
  EXPECT_ERROR(edited([](GgufWriter& w) { w.SetString("llama.rope.scaling.type", "yarn"); }),
               "bad.gguf", "unsupported rope scaling type 'yarn'");

  std::vector<TensorSpec> missing = TinyGgufTensors();
  std::erase_if(missing, [](const TensorSpec& t) { return t.name == "blk.1.ffn_down.weight"; });
  EXPECT_ERROR(LoadGgufBytes(TinyGguf(missing)), "bad.gguf",
               "missing tensor blk.1.ffn_down.weight");
  std::vector<TensorSpec> no_embd = TinyGgufTensors();
  no_embd.erase(no_embd.begin());
  EXPECT_ERROR(LoadGgufBytes(TinyGguf(no_embd)), "bad.gguf", "missing tensor token_embd.weight");
  std::vector<TensorSpec> quant_norm = TinyGgufTensors();
  quant_norm[1].type = DType::kQ8_0;
  EXPECT_ERROR(LoadGgufBytes(TinyGguf(quant_norm)), "bad.gguf",
               "output_norm.weight' has type q8_0");
  std::vector<TensorSpec> wrong = TinyGgufTensors();
  for (TensorSpec& t : wrong) {
    if (t.name == "blk.0.attn_k.weight") t.ne = {32, 32};
  }
  EXPECT_ERROR(LoadGgufBytes(TinyGguf(wrong)), "bad.gguf",
               "blk.0.attn_k.weight' has shape [32, 32], expected [32, 16]");
  std::vector<TensorSpec> bad_freqs = TinyGgufTensors();
  bad_freqs.push_back({"rope_freqs.weight", DType::kF32, {3}});
  EXPECT_ERROR(LoadGgufBytes(TinyGguf(bad_freqs)), "bad.gguf", "rope_freqs.weight' has shape [3]");
  // Only some of q/k/v biases.
  std::vector<TensorSpec> one_bias = TinyGgufTensors();
  one_bias.push_back({"blk.0.attn_q.bias", DType::kF32, {32}});
  EXPECT_ERROR(LoadGgufBytes(TinyGguf(one_bias)), "bad.gguf", "missing tensor blk.0.attn_k.bias");
}

TEST(GgufErrorsTest, MisalignedTensorDataIsRejected) {
  // With general.alignment 1 tensors are packed: some header length puts an f32 tensor at an
  // address that is not a multiple of 4.
  int rejected = 0;
  for (int pad = 0; pad < 4; ++pad) {
    const std::vector<uint8_t> b = TinyGguf(TinyGgufTensors(), [&](GgufWriter& w) {
      w.SetAlignment(1);
      w.SetString("general.name", std::string(pad, 'x'));
    });
    const absl::Status s = LoadGgufBytes(b);  // vector storage is 16-byte aligned
    if (!s.ok()) {
      EXPECT_THAT(std::string(s.message()), HasSubstr("is not aligned to"));
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(GgufErrorsTest, LoadModelNamesTheFile) {
  const std::string dir = weft::testing::MakeTempDir("model_errors");
  const std::string path = dir + "/broken.gguf";
  std::vector<uint8_t> b = TinyGguf();
  b.erase(b.end() - 100, b.end());  // truncated (erase: GCC 12 at -O1 misreads a shrinking resize)
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
  EXPECT_ERROR(LoadModel(path).status(), "broken.gguf", "truncated");
  EXPECT_ERROR(LoadModel(dir + "/absent.gguf").status(), "absent.gguf");
  std::filesystem::remove_all(dir);
}

TEST(GgufErrorsTest, TruncationAtEveryByteIsAnError) {
  const std::vector<uint8_t> good = TinyGguf();
  ASSERT_TRUE(LoadGgufBytes(good).ok());
  for (size_t n = 0; n < good.size(); ++n) {
    const std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    const absl::Status s = LoadGgufBytes(cut);
    ASSERT_FALSE(s.ok()) << "prefix of " << n << " bytes loaded";
    ASSERT_THAT(std::string(s.message()), HasSubstr("bad.gguf")) << s;
  }
}

TEST(GgufErrorsTest, RealFileTruncatedInItsHeaderAndData) {
  const std::string path = weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
  absl::StatusOr<std::unique_ptr<MmapFile>> map = MmapFile::Open(path);
  ASSERT_TRUE(map.ok());
  const std::span<const uint8_t> all = (*map)->bytes();
  // Every byte of the first 12 KB (the metadata), then every 997th byte of the rest.
  for (size_t n = 0; n < all.size(); n += (n < 12288 ? 1 : 997)) {
    absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Parse(all.first(n), "cut.gguf");
    ASSERT_FALSE(f.ok()) << n;
    ASSERT_THAT(std::string(f.status().message()), HasSubstr("cut.gguf"));
  }
}

// ---- safetensors ----

absl::Status ParseSt(const std::vector<uint8_t>& b) {
  return ParseSafetensors(b, "bad.safetensors").status();
}
std::vector<uint8_t> WithHeader(const std::string& json, size_t data_bytes = 0) {
  std::vector<uint8_t> b;
  for (int k = 0; k < 8; ++k) b.push_back(static_cast<uint8_t>(uint64_t{json.size()} >> (8 * k)));
  for (char c : json) b.push_back(static_cast<uint8_t>(c));
  b.resize(b.size() + data_bytes);
  return b;
}

TEST(SafetensorsErrorsTest, HeaderProblems) {
  EXPECT_TRUE(ParseSt(TinySafetensors()).ok());
  EXPECT_ERROR(ParseSt({1, 2, 3}), "bad.safetensors", "too short");
  std::vector<uint8_t> beyond = TinySafetensors();
  Poke<uint64_t>(beyond, 0, beyond.size());
  EXPECT_ERROR(ParseSt(beyond), "bad.safetensors", "beyond the end of the file");
  Poke<uint64_t>(beyond, 0, ~0ull);
  EXPECT_ERROR(ParseSt(beyond), "bad.safetensors", "exceeds the limit");
  EXPECT_ERROR(ParseSt(WithHeader("{\"a\": ")), "bad.safetensors", "not valid JSON");
  EXPECT_ERROR(ParseSt(WithHeader("[1, 2]")), "bad.safetensors", "not a JSON object");
  EXPECT_ERROR(ParseSt(WithHeader(R"({"a": 5})")), "bad.safetensors", "'a' is not an object");
  EXPECT_ERROR(ParseSt(WithHeader(R"({"__metadata__": {"x": 1}})")), "bad.safetensors",
               "__metadata__ value 'x'");
  EXPECT_ERROR(ParseSt(WithHeader(R"({"a": {"dtype": "F32", "shape": [1]}})")), "bad.safetensors",
               "lacks dtype, shape or data_offsets");
}

TEST(SafetensorsErrorsTest, EntryProblems) {
  auto one = [](const std::string& dtype, const std::string& shape, const std::string& offsets,
                size_t data) {
    return ParseSt(WithHeader(absl::StrCat(R"({"w": {"dtype": ")", dtype, R"(", "shape": )", shape,
                                           R"(, "data_offsets": )", offsets, "}}"),
                              data));
  };
  EXPECT_TRUE(one("F32", "[2, 2]", "[0, 16]", 16).ok());
  EXPECT_ERROR(one("I64", "[2]", "[0, 16]", 16), "bad.safetensors", "unsupported dtype \"I64\"");
  EXPECT_ERROR(one("F32", "[2, 2]", "[0, 12]", 16), "bad.safetensors", "'w' has 12 bytes");
  EXPECT_ERROR(one("F16", "[2, 2]", "[0, 16]", 16), "bad.safetensors", "'w' has 16 bytes");
  EXPECT_ERROR(one("F32", "[2, 2]", "[0, 16]", 8), "bad.safetensors", "beyond the data section");
  EXPECT_ERROR(one("F32", "[2, -2]", "[0, 16]", 16), "bad.safetensors", "negative dimension");
  EXPECT_ERROR(one("F32", "[2.5]", "[0, 16]", 16), "bad.safetensors", "non-integer");
  EXPECT_ERROR(one("F32", "[4294967296, 4294967296]", "[0, 16]", 16), "bad.safetensors",
               "overflows");
  EXPECT_ERROR(one("F32", "[4]", "[16, 0]", 16), "bad.safetensors", "end before they begin");
  EXPECT_ERROR(one("F32", "[4]", "[0]", 16), "bad.safetensors", "not a pair");
  EXPECT_ERROR(one("F32", "7", "[0, 16]", 16), "bad.safetensors", "shape is not an array");
  EXPECT_ERROR(ParseSt(WithHeader(
                   R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                   16)),
               "bad.safetensors", "overlap");
}

TEST(SafetensorsErrorsTest, TruncationAtEveryByteIsAnError) {
  const std::vector<uint8_t> good = TinySafetensors();
  for (size_t n = 0; n < good.size(); ++n) {
    const absl::Status s = ParseSt(std::vector<uint8_t>(good.begin(), good.begin() + n));
    ASSERT_FALSE(s.ok()) << n;
    ASSERT_THAT(std::string(s.message()), HasSubstr("bad.safetensors"));
  }
}

// ---- HF directories ----

class HfErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = weft::testing::MakeTempDir("hf_errors");
    config_ = {{"architectures", {"LlamaForCausalLM"}},
               {"hidden_size", 32},
               {"intermediate_size", 64},
               {"num_hidden_layers", 1},
               {"num_attention_heads", 4},
               {"num_key_value_heads", 2},
               {"vocab_size", 8},
               {"tie_word_embeddings", true}};
    auto f32 = [](const std::string& name, std::vector<int64_t> shape) {
      int64_t n = 1;
      for (int64_t s : shape) n *= s;
      return SafetensorsEntry{name, "F32", shape, std::vector<uint8_t>(4 * n)};
    };
    const std::string p = "model.layers.0.";
    tensors_ = {f32("model.embed_tokens.weight", {8, 32}),
                f32("model.norm.weight", {32}),
                f32(p + "input_layernorm.weight", {32}),
                f32(p + "self_attn.q_proj.weight", {32, 32}),
                f32(p + "self_attn.k_proj.weight", {16, 32}),
                f32(p + "self_attn.v_proj.weight", {16, 32}),
                f32(p + "self_attn.o_proj.weight", {32, 32}),
                f32(p + "post_attention_layernorm.weight", {32}),
                f32(p + "mlp.gate_proj.weight", {64, 32}),
                f32(p + "mlp.up_proj.weight", {64, 32}),
                f32(p + "mlp.down_proj.weight", {32, 64})};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  absl::Status Load() {
    std::ofstream(dir_ + "/config.json") << config_.dump();
    EXPECT_TRUE(WriteSafetensors(dir_ + "/model.safetensors", tensors_).ok());
    return LoadModel(dir_).status();
  }
  std::string dir_;
  nlohmann::json config_;
  std::vector<SafetensorsEntry> tensors_;
};

TEST_F(HfErrorsTest, ValidCheckpointLoads) { EXPECT_TRUE(Load().ok()) << Load(); }

TEST_F(HfErrorsTest, ConfigProblems) {
  EXPECT_ERROR(LoadModel(dir_).status(), dir_.c_str(), "cannot read config.json");
  config_["architectures"] = {"GPT2LMHeadModel"};
  EXPECT_ERROR(Load(), "config.json", "unsupported architectures[0] \"GPT2LMHeadModel\"");
  config_["architectures"] = {"LlamaForCausalLM"};
  config_.erase("hidden_size");
  EXPECT_ERROR(Load(), "config.json", "missing \"hidden_size\"");
  config_["hidden_size"] = "32";
  EXPECT_ERROR(Load(), "config.json", "\"hidden_size\" is \"32\"");
  config_["hidden_size"] = 32;
  config_["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_ERROR(Load(), "config.json", "unsupported rope_scaling type \"yarn\"");
  config_.erase("rope_scaling");
  std::ofstream(dir_ + "/config.json") << "{not json";
  EXPECT_ERROR(LoadModel(dir_).status(), "config.json", "not a JSON object");
}

TEST_F(HfErrorsTest, TensorProblems) {
  config_["tie_word_embeddings"] = false;
  EXPECT_ERROR(Load(), dir_.c_str(), "missing tensor lm_head.weight");
  config_["tie_word_embeddings"] = true;
  tensors_[4].shape = {32, 16};
  EXPECT_ERROR(Load(), dir_.c_str(),
               "model.layers.0.self_attn.k_proj.weight' has shape [16, 32], expected [32, 16]");
}

TEST_F(HfErrorsTest, MissingTensorAndShardIndexProblems) {
  tensors_.pop_back();
  EXPECT_ERROR(Load(), dir_.c_str(), "missing tensor model.layers.0.mlp.down_proj.weight");
  nlohmann::json index = {{"weight_map", {{"model.norm.weight", "model-2.safetensors"}}}};
  std::ofstream(dir_ + "/model.safetensors.index.json") << index.dump();
  ASSERT_TRUE(WriteSafetensors(dir_ + "/model-2.safetensors", {tensors_[0]}).ok());
  EXPECT_ERROR(LoadModel(dir_).status(), dir_.c_str(),
               "index puts tensor 'model.norm.weight' in model-2.safetensors");
  std::ofstream(dir_ + "/model.safetensors.index.json") << R"({"weight_map": {"a": "../x"}})";
  EXPECT_ERROR(LoadModel(dir_).status(), "index.json", "is not a file name");
  std::ofstream(dir_ + "/model.safetensors.index.json")
      << R"({"weight_map": {"a": "gone.safetensors"}})";
  EXPECT_ERROR(LoadModel(dir_).status(), "gone.safetensors");
}

// ---- llama2.c ----

absl::Status LoadBin(const std::vector<uint8_t>& b) {
  return ModelFromLlama2c(b, "bad.bin").status();
}

TEST(Llama2cErrorsTest, TinyCheckpointsAreValid) {
  absl::StatusOr<std::unique_ptr<Model>> m = ModelFromLlama2c(TinyLlama2c(), "tiny.bin");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE((*m)->config.tied_embeddings);
  absl::StatusOr<std::unique_ptr<Model>> u = ModelFromLlama2c(TinyLlama2c(true), "tiny.bin");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_FALSE((*u)->config.tied_embeddings);
  EXPECT_NE((*u)->weights.output.data, (*u)->weights.tok_embd.data);
  EXPECT_EQ((*u)->config.vocab_size, 10);
}

TEST(Llama2cErrorsTest, HeaderProblems) {
  EXPECT_ERROR(LoadBin({1, 2, 3}), "bad.bin", "too short for its 28-byte header");
  std::vector<uint8_t> b = TinyLlama2c();
  Poke<int32_t>(b, 0, -16);
  EXPECT_ERROR(LoadBin(b), "bad.bin", "implausible header");
  b = TinyLlama2c();
  Poke<int32_t>(b, 12, 3);  // 16 dims over 3 heads
  EXPECT_ERROR(LoadBin(b), "bad.bin", "do not give whole, even heads");
  b = TinyLlama2c();
  std::memcpy(b.data(), "ak42", 4);
  EXPECT_ERROR(LoadBin(b), "bad.bin", "ak42");
  b = TinyLlama2c();
  b.push_back(0);
  EXPECT_ERROR(LoadBin(b), "bad.bin", "trailing data");
  b = TinyLlama2c();
  Poke<int32_t>(b, 0, 0x7ffffff8);
  EXPECT_ERROR(LoadBin(b), "bad.bin", "truncated");
}

TEST(Llama2cErrorsTest, TruncationAtEveryByteIsAnError) {
  for (bool unshared : {false, true}) {
    const std::vector<uint8_t> good = TinyLlama2c(unshared);
    for (size_t n = 0; n < good.size(); ++n) {
      const absl::Status s = LoadBin(std::vector<uint8_t>(good.begin(), good.begin() + n));
      ASSERT_FALSE(s.ok()) << n;
      ASSERT_THAT(std::string(s.message()), HasSubstr("bad.bin"));
    }
  }
}

TEST(Llama2cErrorsTest, LoadModelOnShortFile) {
  const std::string dir = weft::testing::MakeTempDir("model_errors");
  std::ofstream(dir + "/short.bin") << "abc";
  EXPECT_ERROR(LoadModel(dir + "/short.bin").status(), "short.bin", "too short");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weft::model
