// SPDX-License-Identifier: Apache-2.0
// BpeTokenizer: byte-level BPE (GPT-2, Llama 3, Qwen2; tokenizer.ggml.model = "gpt2" or an HF
// tokenizer.json): special-token partition, regex pre-tokenization, GPT-2 byte -> unicode mapping,
// then lowest-rank-first merges from a priority queue over a (left, right) -> rank hash map.
// Immutable apart from an internal, mutex-guarded word cache; Encode/Decode are thread-safe.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/vocab_tokenizer.h"

namespace weft::tokenizer {

class BpeTokenizer final : public VocabTokenizer {
 public:
  // InvalidArgument if `vocab` is not BPE or a pre-tokenizer regex does not compile.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(Vocab vocab);

  // Text that is not valid UTF-8 is pre-tokenized with each offending byte replaced by U+FFFD
  // (as llama.cpp does), so it encodes to the tokens of "\xEF\xBF\xBD" per such byte.
  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options) const override;
  // Control/unknown -> "", user-defined -> raw text, normal -> bytes via the byte-level table.
  // No clean_up_tokenization_spaces: decoding is the exact byte concatenation.
  std::string DecodeToken(int32_t id, int32_t prev) const override;
  std::string_view kind() const override { return "bpe"; }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;  // symbol id of left + right
  };
  explicit BpeTokenizer(Vocab vocab);
  // Symbol ids: [0, n_vocab) are tokens, above are strings used by merges that are no token.
  int32_t SymbolId(const std::string& text);
  std::string_view SymbolText(int32_t sym) const;
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;
  void EncodeWordUncached(std::string_view word, std::vector<int32_t>* out) const;

  std::unique_ptr<RegexSplitter> splitter_;
  std::vector<std::string> extra_symbols_;
  absl::flat_hash_map<std::string, int32_t> extra_ids_;
  std::array<int32_t, 256> byte_symbol_;
  absl::flat_hash_map<uint64_t, Merge> merges_;  // key: left << 32 | right

  static constexpr size_t kMaxCacheEntries = 1 << 16;
  mutable std::mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_;  // guarded by cache_mu_
};

}  // namespace weft::tokenizer
