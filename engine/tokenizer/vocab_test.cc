// SPDX-License-Identifier: Apache-2.0
// Data-driven: every llama.cpp tokenizer test vector in ../shared/vocab must encode to exactly the
// reference ids (no BOS, parse_special off) and decode back to its input, except for the listed
// inputs where decoding cannot be lossless. Also the stories260K GGUF tokenizer vs. run.c goldens.
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_join.h"
#include "engine/model/gguf.h"
#include "engine/tokenizer/decoding.h"
#include "engine/tokenizer/hf_tokenizer_json.h"
#include "engine/tokenizer/loaders.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_data.h"

namespace weft::tokenizer {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// .inp: every input is followed by "\n__ggml_vocab_test__\n" (llama.cpp test-tokenizer-0 splits on
// that separator), so an input may itself be empty or consist of newlines.
std::vector<std::string> ReadInputs(const std::string& path) {
  const std::string text = ReadAll(path);
  constexpr std::string_view kSep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t start = 0;
  while (true) {
    const size_t pos = text.find(kSep, start);
    if (pos == std::string::npos) break;
    inputs.push_back(text.substr(start, pos - start));
    start = pos + kSep.size();
  }
  EXPECT_EQ(start, text.size()) << path << ": trailing text after the last separator";
  return inputs;
}

// .out: one line of space-separated ids per input (an empty line for the empty input).
std::vector<std::vector<int32_t>> ReadOutputs(const std::string& path) {
  std::istringstream in(ReadAll(path));
  std::vector<std::vector<int32_t>> outs;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ls >> id) ids.push_back(id);
    outs.push_back(std::move(ids));
  }
  return outs;
}

std::string Escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      out += "\\x" + std::to_string(c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return "\"" + out + "\"";
}

struct VocabCase {
  std::string name;
  // Inputs (by exact text) whose Decode(Encode(x)) != x, with the reason.
  std::set<std::string> not_lossless;
};

// Every input of these vectors round-trips: BPE decoding is the exact byte concatenation (no
// clean_up_tokenization_spaces), and for SPM the encoder's add_space_prefix "▁" is dropped
// again by Decode (one leading space at the start / after BOS), so even " ", "  Hello" and "\t"
// come back unchanged; the inputs hold no characters that need byte fallback beyond what decodes
// to the same bytes. The sets below are asserted exactly: an input that stops (or starts)
// round-tripping fails the test.
const VocabCase kCases[] = {
    {"llama-spm", {}}, {"phi-3", {}}, {"llama-bpe", {}}, {"gpt-2", {}}, {"qwen2", {}},
};

class VocabVectors : public ::testing::TestWithParam<VocabCase> {};

TEST_P(VocabVectors, EncodeMatchesReferenceAndDecodeRoundTrips) {
  const VocabCase& c = GetParam();
  const std::string base = "vocab/ggml-vocab-" + c.name + ".gguf";
  auto gguf = model::GgufFile::Open(weft::testing::RequireTestData(base));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto tok = LoadGgufTokenizer(**gguf);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const auto inputs = ReadInputs(weft::testing::RequireTestData(base + ".inp"));
  const auto outputs = ReadOutputs(weft::testing::RequireTestData(base + ".out"));
  ASSERT_EQ(inputs.size(), outputs.size()) << base;
  ASSERT_GT(inputs.size(), 40u);

  std::set<std::string> lossy;
  int encode_failures = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<int32_t> ids = (*tok)->Encode(inputs[i], {.add_bos = false});
    if (ids != outputs[i]) {
      ++encode_failures;
      ADD_FAILURE() << c.name << " input #" << i << " " << Escape(inputs[i])
                    << "\n  expected: " << absl::StrJoin(outputs[i], " ")
                    << "\n  actual:   " << absl::StrJoin(ids, " ");
    }
    if ((*tok)->Decode(outputs[i]) != inputs[i]) lossy.insert(inputs[i]);
  }
  EXPECT_EQ(encode_failures, 0);
  for (const std::string& s : lossy) {
    EXPECT_TRUE(c.not_lossless.count(s))
        << c.name << ": decode does not round-trip " << Escape(s) << " -> "
        << Escape((*tok)->Decode((*tok)->Encode(s, {.add_bos = false})));
  }
  for (const std::string& s : c.not_lossless) {
    EXPECT_TRUE(lossy.count(s)) << c.name << ": listed as lossy but round-trips: " << Escape(s);
  }
}

INSTANTIATE_TEST_SUITE_P(Ggml, VocabVectors, ::testing::ValuesIn(kCases), [](const auto& info) {
  std::string n = info.param.name;
  for (char& ch : n) {
    if (ch == '-') ch = '_';
  }
  return n;
});

// The same vectors through the HF tokenizer.json path: each BPE GGUF vocabulary is rewritten as the
// tokenizer.json its model ships (HF's original pre-tokenizer regexes with (?i:...), merges as
// "a b" strings or [a, b] pairs), loaded with ParseHfTokenizerJson, and must give the same ids.
struct HfCase {
  std::string name;
  nlohmann::json pre_tokenizer;
  bool ignore_merges;
  bool pair_merges;
};

nlohmann::json SplitThenByteLevel(const std::string& regex) {
  return {{"type", "Sequence"},
          {"pretokenizers", nlohmann::json::array({{{"type", "Split"},
                                                    {"pattern", {{"Regex", regex}}},
                                                    {"behavior", "Isolated"},
                                                    {"invert", false}},
                                                   {{"type", "ByteLevel"},
                                                    {"add_prefix_space", false},
                                                    {"trim_offsets", true},
                                                    {"use_regex", false}}})}};
}

std::vector<HfCase> HfCases() {
  return {
      {"llama-bpe",
       SplitThenByteLevel(
           R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
       true, false},
      {"qwen2",
       SplitThenByteLevel(
           R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
       false, true},
      {"gpt-2",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", true}},
       false,
       false},
  };
}

std::string ToTokenizerJson(const Vocab& v, const HfCase& c) {
  nlohmann::json vocab = nlohmann::json::object();
  nlohmann::json added = nlohmann::json::array();
  for (int32_t id = 0; id < v.size(); ++id) {
    const uint16_t attr = v.attr(id);
    if (attr & (kAttrControl | kAttrUserDefined)) {
      added.push_back({{"id", id},
                       {"content", v.tokens[id]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", (attr & kAttrControl) != 0}});
    } else {
      vocab[v.tokens[id]] = id;
    }
  }
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& [a, b] : v.merges) {
    merges.push_back(c.pair_merges ? nlohmann::json::array({a, b}) : nlohmann::json(a + " " + b));
  }
  nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", c.pre_tokenizer},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", c.ignore_merges},
        {"vocab", vocab},
        {"merges", merges}}},
  };
  return j.dump();
}

class HfJsonVectors : public ::testing::TestWithParam<HfCase> {};

TEST_P(HfJsonVectors, SameIdsAsTheGgufVocab) {
  const HfCase& c = GetParam();
  const std::string base = "vocab/ggml-vocab-" + c.name + ".gguf";
  auto gguf = model::GgufFile::Open(weft::testing::RequireTestData(base));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto gguf_vocab = VocabFromGguf(**gguf);
  ASSERT_TRUE(gguf_vocab.ok()) << gguf_vocab.status();
  auto vocab = ParseHfTokenizerJson(ToTokenizerJson(*gguf_vocab, c), "", "", c.name + ".json");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  auto tok = TokenizerFromVocab(*std::move(vocab));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), gguf_vocab->size());
  const auto inputs = ReadInputs(weft::testing::RequireTestData(base + ".inp"));
  const auto outputs = ReadOutputs(weft::testing::RequireTestData(base + ".out"));
  ASSERT_EQ(inputs.size(), outputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<int32_t> ids = (*tok)->Encode(inputs[i], {.add_bos = false});
    EXPECT_EQ(ids, outputs[i]) << c.name << " input #" << i << " " << Escape(inputs[i])
                               << "\n  expected: " << absl::StrJoin(outputs[i], " ")
                               << "\n  actual:   " << absl::StrJoin(ids, " ");
    EXPECT_EQ((*tok)->Decode(ids), inputs[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(Ggml, HfJsonVectors, ::testing::ValuesIn(HfCases()), [](const auto& info) {
  std::string n = info.param.name;
  for (char& ch : n) {
    if (ch == '-') ch = '_';
  }
  return n;
});

struct SpecialCase {
  std::string name;
  bool add_bos;
  int32_t bos;
  int32_t eos;
  std::vector<int32_t> eog;
};

class VocabSpecials : public ::testing::TestWithParam<SpecialCase> {};

TEST_P(VocabSpecials, IdsFlagsAndEndOfGeneration) {
  const SpecialCase& c = GetParam();
  auto gguf =
      model::GgufFile::Open(weft::testing::RequireTestData("vocab/ggml-vocab-" + c.name + ".gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto tok = LoadGgufTokenizer(**gguf);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->add_bos_default(), c.add_bos);
  EXPECT_EQ((*tok)->bos_id(), c.bos);
  EXPECT_EQ((*tok)->eos_id(), c.eos);
  EXPECT_EQ(EndOfGenerationIds(**tok), c.eog);
}

INSTANTIATE_TEST_SUITE_P(
    Ggml, VocabSpecials,
    ::testing::Values(SpecialCase{"llama-spm", true, 1, 2, {2}},
                      SpecialCase{"phi-3", true, 1, 32000, {2, 32000, 32007}},
                      SpecialCase{"llama-bpe", true, 128000, 128001, {128001, 128009}},
                      SpecialCase{"gpt-2", false, 50256, 50256, {50256}},
                      SpecialCase{"qwen2", false, 151643, 151643, {151643, 151645}}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (char& ch : n) {
        if (ch == '-') ch = '_';
      }
      return n;
    });

// parse_special: chat-template control tokens become their ids and split the text around them;
// with it off the same text is plain text.
TEST(VocabSpecialParsing, Llama3ChatHeader) {
  auto gguf =
      model::GgufFile::Open(weft::testing::RequireTestData("vocab/ggml-vocab-llama-bpe.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto tok = LoadGgufTokenizer(**gguf);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Tokenizer& t = **tok;
  const std::string text = "<|start_header_id|>user<|end_header_id|>\n\nhi there<|eot_id|>";
  std::vector<int32_t> expected = {128000, 128006};
  for (int32_t id : t.Encode("user", {})) expected.push_back(id);
  expected.push_back(128007);
  for (int32_t id : t.Encode("\n\nhi there", {})) expected.push_back(id);
  expected.push_back(128009);
  EXPECT_EQ(t.Encode(text, {.add_bos = true, .parse_special = true}), expected);
  const std::vector<int32_t> plain = t.Encode(text, {});
  for (int32_t id : plain) EXPECT_LT(id, 128000);
  EXPECT_EQ(t.Decode(plain), text);
  EXPECT_EQ(t.Decode(expected), "user\n\nhi there");  // control tokens decode to ""
  EXPECT_EQ(t.TokenText(128009), "<|eot_id|>");
}

TEST(VocabSpecialParsing, Phi3SpecialTokensStripSpacesOnTheirRight) {
  auto gguf = model::GgufFile::Open(weft::testing::RequireTestData("vocab/ggml-vocab-phi-3.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto tok = LoadGgufTokenizer(**gguf);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Tokenizer& t = **tok;
  // llama.cpp: phi-3 special tokens have rstrip, so "\n" after <|user|> is dropped, and the text
  // after a special token gets the SPM space prefix.
  EXPECT_EQ(t.Encode("<|user|>\nHi<|end|>", {.parse_special = true}),
            t.Encode("<|user|>Hi<|end|>", {.parse_special = true}));
  const std::vector<int32_t> ids = t.Encode("<|user|>\nHi<|end|>", {.parse_special = true});
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 32010);
  EXPECT_EQ(ids.back(), 32007);
  EXPECT_EQ(t.Decode(ids), "Hi");
}

}  // namespace
}  // namespace weft::tokenizer
