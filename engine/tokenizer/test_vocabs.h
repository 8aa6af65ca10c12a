// SPDX-License-Identifier: Apache-2.0
// Small hand-made vocabularies for unit tests and the fuzzer (no files needed).
#pragma once

#include <string>

#include "absl/strings/str_format.h"
#include "engine/tokenizer/unicode.h"
#include "engine/tokenizer/vocab.h"

namespace weft::tokenizer::testing {

// SPM: <unk> <s> </s>, 256 byte tokens (ids 3..258), then pieces with scores.
inline Vocab SmallSpmVocab() {
  Vocab v;
  v.kind = Vocab::Kind::kSpm;
  auto add = [&](std::string text, float score, uint16_t attr) {
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.attrs.push_back(attr);
  };
  add("<unk>", 0, kAttrUnknown);
  add("<s>", 0, kAttrControl);
  add("</s>", 0, kAttrControl);
  for (int b = 0; b < 256; ++b) add(absl::StrFormat("<0x%02X>", b), 0, kAttrByte);
  const std::string sp(kSpmSpace);
  // id 259.. : pieces. Higher score merges first.
  add(sp, -1, kAttrNormal);            // 259
  add("a", -2, kAttrNormal);           // 260
  add("b", -3, kAttrNormal);           // 261
  add("c", -4, kAttrNormal);           // 262
  add("ab", -5, kAttrNormal);          // 263
  add(sp + "a", -6, kAttrNormal);      // 264
  add(sp + "ab", -7, kAttrNormal);     // 265
  add("bc", -0.5f, kAttrNormal);       // 266: beats "ab"
  add(sp + "abc", -8, kAttrNormal);    // 267 (unreachable: needs ▁a + bc)
  add("<user>", 0, kAttrUserDefined);  // 268
  add("<|turn|>", 0, kAttrControl);    // 269
  add("h", -9, kAttrNormal);           // 270
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

// Byte-level BPE: ids 0..255 are the byte-level characters in byte order, then merges' results.
inline Vocab SmallBpeVocab() {
  Vocab v;
  v.kind = Vocab::Kind::kBpe;
  for (int b = 0; b < 256; ++b) v.tokens.emplace_back(ByteToUnicode(static_cast<uint8_t>(b)));
  v.attrs.assign(256, kAttrNormal);
  const std::string G(ByteToUnicode(' '));
  const std::pair<std::string, std::string> merges[] = {
      {"h", "e"},      {"l", "l"}, {"he", "ll"},      {"hell", "o"}, {G, "w"},         {"o", "r"},
      {G + "w", "or"}, {"l", "d"}, {G + "wor", "ld"}, {G, "h"},      {G + "h", "ello"}};
  for (const auto& [a, b] : merges) {
    v.merges.emplace_back(a, b);
    v.tokens.push_back(a + b);
    v.attrs.push_back(kAttrNormal);
  }
  v.tokens.push_back("<|endoftext|>");
  v.attrs.push_back(kAttrControl);
  v.tokens.push_back("[EXTRA]");
  v.attrs.push_back(kAttrUserDefined);
  v.pre_regexes = {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"};
  v.pre_name = "gpt-2";
  v.bos_id = v.eos_id = static_cast<int32_t>(v.tokens.size()) - 2;
  return v;
}

}  // namespace weft::tokenizer::testing
