// SPDX-License-Identifier: Apache-2.0
// VocabTokenizer: the part shared by the SPM, BPE and llama2.c tokenizers: it owns the Vocab, the
// text -> id map and the special-token matcher, and answers the id questions of Tokenizer.
// Immutable after construction (not copyable: maps hold views into the vocab); thread-safe reads.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "engine/tokenizer/special_tokens.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/vocab.h"

namespace weft::tokenizer {

class VocabTokenizer : public Tokenizer {
 public:
  // `vocab` must have passed FinalizeSpecialTokens. Duplicate texts map to the lowest id.
  explicit VocabTokenizer(Vocab vocab);
  VocabTokenizer(const VocabTokenizer&) = delete;
  VocabTokenizer& operator=(const VocabTokenizer&) = delete;

  int32_t vocab_size() const override { return vocab_.size(); }
  int32_t bos_id() const override { return vocab_.bos_id; }
  int32_t eos_id() const override { return vocab_.eos_id; }
  bool add_bos_default() const override { return vocab_.add_bos; }
  bool IsEndOfGeneration(int32_t id) const override;
  std::string_view TokenText(int32_t id) const override;

  const Vocab& vocab() const { return vocab_; }
  // The id whose raw text is `text`, or -1.
  int32_t Find(std::string_view text) const {
    auto it = token_to_id_.find(text);
    return it == token_to_id_.end() ? -1 : it->second;
  }

 protected:
  bool InRange(int32_t id) const { return id >= 0 && id < vocab_.size(); }
  // The byte a "<0xNN>" token stands for, or -1.
  static int ParseByteToken(std::string_view text);

  const Vocab vocab_;
  absl::flat_hash_map<std::string_view, int32_t> token_to_id_;  // views into vocab_.tokens
  const SpecialTokenMatcher special_;
};

}  // namespace weft::tokenizer
