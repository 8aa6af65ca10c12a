// SPDX-License-Identifier: Apache-2.0
// Vocab: everything a tokenizer needs, independent of where it came from (GGUF tokenizer.ggml.*
// metadata, llama2.c tokenizer.bin, HF tokenizer.json). Built once by a loader, then moved into a
// tokenizer that owns it; a plain value, not thread-safe to mutate.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace weft::tokenizer {

// GGUF tokenizer.ggml.token_type values (llama.cpp LLAMA_TOKEN_TYPE_*).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Per-token attribute bits (llama.cpp llama_token_attr). A token may carry several: llama.cpp
// marks an end-of-generation token that was typed USER_DEFINED as CONTROL too.
enum TokenAttr : uint16_t {
  kAttrNormal = 1 << 0,
  kAttrUnknown = 1 << 1,
  kAttrControl = 1 << 2,
  kAttrUserDefined = 1 << 3,
  kAttrUnused = 1 << 4,
  kAttrByte = 1 << 5,
  kAttrLstrip = 1 << 6,  // when matched as a special token, eat whitespace on its left
  kAttrRstrip = 1 << 7,  // ... and on its right
};
uint16_t AttrFromType(TokenType type);

struct Vocab {
  enum class Kind { kSpm, kBpe, kLlama2c };
  Kind kind = Kind::kSpm;

  std::vector<std::string> tokens;  // [n_vocab] raw entries ("▁the", "Ġthe", "<0x0A>", ...)
  std::vector<float> scores;        // [n_vocab] SPM/llama2c merge scores; empty means all 0
  std::vector<uint16_t> attrs;      // [n_vocab] TokenAttr bits; empty means all normal

  // BPE only.
  std::vector<std::pair<std::string, std::string>> merges;  // rank = index
  std::vector<std::string> pre_regexes;  // pre-tokenizer splits, applied one after another
  std::string pre_name;                  // tokenizer.ggml.pre or "hf-json"
  bool ignore_merges = false;            // a word that is itself a token skips merging (Llama 3)
  bool byte_level_prefix_space = false;  // HF ByteLevel add_prefix_space

  // SPM only: prepend " " to text at the start and after each special token.
  bool add_space_prefix = false;

  bool add_bos = false;
  bool add_eos = false;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t eot_id = -1;
  int32_t eom_id = -1;
  int32_t pad_id = -1;
  std::vector<int32_t> eog_ids;  // sorted, unique; completed by FinalizeSpecialTokens

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  uint16_t attr(int32_t id) const {
    return attrs.empty() ? static_cast<uint16_t>(kAttrNormal) : attrs[id];
  }
  float score(int32_t id) const { return scores.empty() ? 0.0f : scores[id]; }
};

// Validates sizes and ids (InvalidArgument naming `source` on mismatch), then derives what
// llama.cpp derives from token texts: EOT when unset ("<|eot_id|>", "<|im_end|>", ...), the
// end-of-generation set (EOS, EOT, EOM and the known end-of-turn texts, each forced to CONTROL),
// and the phi-3 rule that special tokens strip whitespace on their right.
absl::Status FinalizeSpecialTokens(Vocab& vocab, const std::string& model_name,
                                   const std::string& source);

}  // namespace weft::tokenizer
