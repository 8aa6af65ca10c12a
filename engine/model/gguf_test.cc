// SPDX-License-Identifier: Apache-2.0
// GGUF reader/writer round trips: every metadata value type (nested arrays too), every tensor
// type, versions 2 and 3, custom alignment, typed getters.
#include "engine/model/gguf.h"

#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "engine/model/gguf_writer.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::model {
namespace {

using kernels::DType;

GgufValue ArrayValue(GgufType elem, uint64_t n) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = elem;
  v.n = n;
  return v;
}

std::unique_ptr<GgufFile> ParseOrDie(const std::vector<uint8_t>& bytes) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Parse(bytes, "test.gguf");
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? std::move(*f) : nullptr;
}

class GgufVersionTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(GgufVersionTest, MetadataOfEveryTypeRoundTrips) {
  GgufWriter w(GetParam());
  w.SetU8("u8", 200);
  w.SetI8("i8", -100);
  w.SetU16("u16", 60000);
  w.SetI16("i16", -30000);
  w.SetU32("u32", 4000000000u);
  w.SetI32("i32", -2000000000);
  w.SetU64("u64", 18000000000000000000ull);
  w.SetI64("i64", -9000000000000000000ll);
  w.SetF32("f32", 1.5f);
  w.SetF64("f64", -2.25);
  w.SetBool("bool_t", true);
  w.SetBool("bool_f", false);
  w.SetString("str", "héllo");
  w.SetString("empty", "");
  const std::vector<std::string> strs = {"a", "", "ccc"};
  w.SetStringArray("arr.str", strs);
  const uint8_t u8s[] = {1, 2, 255};
  const int8_t i8s[] = {-1, 2};
  const uint16_t u16s[] = {65535, 1};
  const int16_t i16s[] = {-32768, 7};
  const uint32_t u32s[] = {0, 4294967295u};
  const int32_t i32s[] = {-5, 6, 7};
  const uint64_t u64s[] = {1ull << 63};
  const int64_t i64s[] = {-(1ll << 62), 3};
  const float f32s[] = {0.5f, -1.0f};
  const double f64s[] = {0.25, 1e300};
  const uint8_t bools[] = {1, 0, 1};
  w.SetArray("arr.u8", GgufType::kUint8, u8s, 3);
  w.SetArray("arr.i8", GgufType::kInt8, i8s, 2);
  w.SetArray("arr.u16", GgufType::kUint16, u16s, 2);
  w.SetArray("arr.i16", GgufType::kInt16, i16s, 2);
  w.SetArray("arr.u32", GgufType::kUint32, u32s, 2);
  w.SetArray("arr.i32", GgufType::kInt32, i32s, 3);
  w.SetArray("arr.u64", GgufType::kUint64, u64s, 1);
  w.SetArray("arr.i64", GgufType::kInt64, i64s, 2);
  w.SetArray("arr.f32", GgufType::kFloat32, f32s, 2);
  w.SetArray("arr.f64", GgufType::kFloat64, f64s, 2);
  w.SetArray("arr.bool", GgufType::kBool, bools, 3);
  w.SetArray("arr.empty", GgufType::kInt32, nullptr, 0);
  // Nested: [[1, 2], [3]] and [["x"], []].
  GgufValue inner1 = ArrayValue(GgufType::kInt32, 2);
  const int32_t a12[] = {1, 2}, a3[] = {3};
  inner1.raw = reinterpret_cast<const uint8_t*>(a12);
  GgufValue inner2 = ArrayValue(GgufType::kInt32, 1);
  inner2.raw = reinterpret_cast<const uint8_t*>(a3);
  GgufValue nested = ArrayValue(GgufType::kArray, 2);
  nested.nested = {inner1, inner2};
  w.SetValue("arr.nested", nested);
  GgufValue s1 = ArrayValue(GgufType::kString, 1);
  s1.strs = {"x"};
  GgufValue s2 = ArrayValue(GgufType::kString, 0);
  GgufValue nested_s = ArrayValue(GgufType::kArray, 2);
  nested_s.nested = {s1, s2};
  w.SetValue("arr.nested_str", nested_s);
  w.SetU32("overwritten", 1);
  w.SetU32("overwritten", 2);

  absl::StatusOr<std::vector<uint8_t>> bytes = w.WriteToBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  std::unique_ptr<GgufFile> f = ParseOrDie(*bytes);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->version(), GetParam());
  EXPECT_EQ(f->metadata().size(), 30u);
  EXPECT_EQ(f->Find("u8")->type, GgufType::kUint8);
  EXPECT_EQ(f->Find("u8")->u, 200u);
  EXPECT_EQ(f->Find("i8")->i, -100);
  EXPECT_EQ(f->Find("u16")->u, 60000u);
  EXPECT_EQ(f->Find("i16")->i, -30000);
  EXPECT_EQ(*f->GetU32("u32"), 4000000000u);
  EXPECT_EQ(*f->GetI64("i32"), -2000000000);
  EXPECT_EQ(f->Find("u64")->u, 18000000000000000000ull);
  EXPECT_EQ(*f->GetI64("i64"), -9000000000000000000ll);
  EXPECT_EQ(*f->GetF32("f32"), 1.5f);
  EXPECT_EQ(f->Find("f64")->type, GgufType::kFloat64);
  EXPECT_EQ(f->Find("f64")->f, -2.25);
  EXPECT_EQ(*f->GetBool("bool_t"), true);
  EXPECT_EQ(*f->GetBool("bool_f"), false);
  EXPECT_EQ(*f->GetString("str"), "héllo");
  EXPECT_EQ(*f->GetString("empty"), "");
  EXPECT_EQ(*f->GetU32("overwritten"), 2u);
  EXPECT_EQ(*f->GetU32("u8"), 200u);  // integer getters widen

  std::vector<std::string_view> got_strs = *f->GetStringArray("arr.str");
  EXPECT_EQ(got_strs, (std::vector<std::string_view>{"a", "", "ccc"}));
  EXPECT_EQ(*f->GetI32Array("arr.i32"), (std::vector<int32_t>{-5, 6, 7}));
  EXPECT_EQ(*f->GetI32Array("arr.u8"), (std::vector<int32_t>{1, 2, 255}));
  EXPECT_EQ(*f->GetI32Array("arr.i16"), (std::vector<int32_t>{-32768, 7}));
  EXPECT_EQ(*f->GetI32Array("arr.u16"), (std::vector<int32_t>{65535, 1}));
  EXPECT_EQ(*f->GetI32Array("arr.i8"), (std::vector<int32_t>{-1, 2}));
  EXPECT_EQ(*f->GetF32Array("arr.f32"), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ((*f->GetF32Array("arr.f64"))[0], 0.25f);
  EXPECT_TRUE(f->GetI32Array("arr.empty")->empty());
  const GgufValue* arr_u64 = f->Find("arr.u64");
  ASSERT_EQ(arr_u64->n, 1u);
  EXPECT_EQ(std::memcmp(arr_u64->raw, u64s, 8), 0);
  EXPECT_EQ(std::memcmp(f->Find("arr.i64")->raw, i64s, 16), 0);
  EXPECT_EQ(std::memcmp(f->Find("arr.u32")->raw, u32s, 8), 0);
  EXPECT_EQ(std::memcmp(f->Find("arr.f64")->raw, f64s, 16), 0);
  EXPECT_EQ(std::memcmp(f->Find("arr.bool")->raw, bools, 3), 0);
  EXPECT_EQ(f->Find("arr.bool")->elem_type, GgufType::kBool);
  // Out-of-range conversions are errors, not truncations.
  EXPECT_FALSE(f->GetI32Array("arr.u32").ok());
  EXPECT_FALSE(f->GetU32("i8").ok());
  EXPECT_FALSE(f->GetI64("u64").ok());

  const GgufValue* n = f->Find("arr.nested");
  ASSERT_EQ(n->elem_type, GgufType::kArray);
  ASSERT_EQ(n->nested.size(), 2u);
  EXPECT_EQ(n->nested[0].n, 2u);
  EXPECT_EQ(std::memcmp(n->nested[0].raw, a12, 8), 0);
  EXPECT_EQ(n->nested[1].n, 1u);
  EXPECT_EQ(std::memcmp(n->nested[1].raw, a3, 4), 0);
  const GgufValue* ns = f->Find("arr.nested_str");
  ASSERT_EQ(ns->nested.size(), 2u);
  EXPECT_EQ(ns->nested[0].strs, (std::vector<std::string_view>{"x"}));
  EXPECT_TRUE(ns->nested[1].strs.empty());

  // Writing the parsed values again gives the same bytes (SetValue covers every type).
  GgufWriter copy(GetParam());
  std::vector<std::string> keys;
  // Re-add in file order: the parser's map is sorted, so compare parsed values instead.
  for (const auto& [k, v] : f->metadata()) copy.SetValue(k, v);
  absl::StatusOr<std::vector<uint8_t>> copy_bytes = copy.WriteToBytes();
  ASSERT_TRUE(copy_bytes.ok());
  std::unique_ptr<GgufFile> g = ParseOrDie(*copy_bytes);
  ASSERT_NE(g, nullptr);
  for (const auto& [k, v] : f->metadata()) {
    const GgufValue* gv = g->Find(k);
    ASSERT_NE(gv, nullptr) << k;
    EXPECT_EQ(gv->type, v.type) << k;
    EXPECT_EQ(gv->u, v.u) << k;
    EXPECT_EQ(gv->i, v.i) << k;
    EXPECT_EQ(gv->str, v.str) << k;
    EXPECT_EQ(gv->n, v.n) << k;
    EXPECT_EQ(gv->strs, v.strs) << k;
    EXPECT_EQ(gv->nested.size(), v.nested.size()) << k;
  }
}

TEST_P(GgufVersionTest, EveryTensorTypeRoundTripsAligned) {
  struct Case {
    DType type;
    std::vector<int64_t> ne;
  };
  const std::vector<Case> cases = {
      {DType::kF32, {7}},        {DType::kF32, {3, 5}},    {DType::kF16, {5, 3}},
      {DType::kBF16, {4, 2, 3}}, {DType::kQ8_0, {64, 3}},  {DType::kQ4_0, {32, 5}},
      {DType::kQ4_K, {256, 3}},  {DType::kQ6_K, {512, 2}}, {DType::kF32, {2, 1, 2, 2}},
  };
  for (uint32_t alignment : {32u, 64u, 1u}) {
    GgufWriter w(GetParam());
    if (alignment != 32) w.SetAlignment(alignment);
    std::mt19937 rng(alignment);
    std::vector<std::vector<uint8_t>> datas;
    for (size_t k = 0; k < cases.size(); ++k) {
      int64_t rows = 1;
      for (size_t d = 1; d < cases[k].ne.size(); ++d) rows *= cases[k].ne[d];
      std::vector<uint8_t> data(kernels::RowBytes(cases[k].type, cases[k].ne[0]) * rows);
      for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
      ASSERT_TRUE(w.AddTensor(absl::StrCat("t", k), cases[k].type, cases[k].ne, data).ok());
      datas.push_back(std::move(data));
    }
    absl::StatusOr<std::vector<uint8_t>> bytes = w.WriteToBytes();
    ASSERT_TRUE(bytes.ok());
    std::unique_ptr<GgufFile> f = ParseOrDie(*bytes);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->alignment(), alignment);
    ASSERT_EQ(f->tensors().size(), cases.size());
    for (size_t k = 0; k < cases.size(); ++k) {
      const GgufTensorInfo* t = f->FindTensor(absl::StrCat("t", k));
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->type, cases[k].type);
      EXPECT_EQ(t->n_dims, static_cast<int>(cases[k].ne.size()));
      for (size_t d = 0; d < 4; ++d) {
        EXPECT_EQ(t->ne[d], d < cases[k].ne.size() ? cases[k].ne[d] : 1);
      }
      EXPECT_EQ(t->nbytes, datas[k].size());
      EXPECT_EQ((t->data - bytes->data()) % alignment, 0u);
      EXPECT_EQ(std::memcmp(t->data, datas[k].data(), t->nbytes), 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, GgufVersionTest, ::testing::Values(2u, 3u));

TEST(GgufTest, GettersReportMissingAndWrongTypes) {
  GgufWriter w;
  w.SetString("s", "x");
  w.SetF32("f", 1.0f);
  std::unique_ptr<GgufFile> f = ParseOrDie(*w.WriteToBytes());
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(absl::IsNotFound(f->GetU32("nope").status()));
  absl::Status s = f->GetU32("s").status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("'s'"), std::string::npos) << s;
  EXPECT_NE(s.message().find("string"), std::string::npos) << s;
  EXPECT_FALSE(f->GetString("f").ok());
  EXPECT_FALSE(f->GetBool("f").ok());
  EXPECT_FALSE(f->GetStringArray("s").ok());
}

TEST(GgufTest, WriterRejectsBadTensors) {
  GgufWriter w;
  const std::vector<uint8_t> data(34);
  EXPECT_FALSE(w.AddTensor("q", DType::kQ8_0, {16}, data).ok());  // not a block multiple
  EXPECT_FALSE(w.AddTensor("q", DType::kQ8_0, {32}, {data.data(), 33}).ok());  // wrong size
  EXPECT_FALSE(w.AddTensor("q", DType::kF32, {1, 1, 1, 1, 1}, data).ok());     // 5 dims
  EXPECT_TRUE(w.AddTensor("q", DType::kQ8_0, {32}, data).ok());
}

TEST(GgufTest, OpensFileAndCopiesRealMetadata) {
  const std::string src = weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(src);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ((*f)->tensors().size(), 48u);
  EXPECT_EQ(*(*f)->GetString("general.architecture"), "llama");
  EXPECT_EQ((*f)->GetStringArray("tokenizer.ggml.tokens")->size(), 512u);
  // Copy every key through the writer into a file, reopen, and compare.
  GgufWriter w;
  for (const auto& [k, v] : (*f)->metadata()) w.SetValue(k, v);
  const std::string dir = weft::testing::MakeTempDir("gguf_test");
  const std::string out = dir + "/copy.gguf";
  ASSERT_TRUE(w.WriteFile(out).ok());
  absl::StatusOr<std::unique_ptr<GgufFile>> g = GgufFile::Open(out);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ((*g)->metadata().size(), (*f)->metadata().size());
  EXPECT_EQ(*(*g)->GetStringArray("tokenizer.ggml.tokens"),
            *(*f)->GetStringArray("tokenizer.ggml.tokens"));
  EXPECT_EQ(*(*g)->GetF32Array("tokenizer.ggml.scores"),
            *(*f)->GetF32Array("tokenizer.ggml.scores"));
  EXPECT_EQ(*(*g)->GetI32Array("tokenizer.ggml.token_type"),
            *(*f)->GetI32Array("tokenizer.ggml.token_type"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weft::model
