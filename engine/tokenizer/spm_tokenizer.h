// SPDX-License-Identifier: Apache-2.0
// SpmTokenizer: SentencePiece-style BPE as llama.cpp runs it (tokenizer.ggml.model = "llama"):
// spaces become U+2581, a space is prefixed at the start and after special tokens
// (add_space_prefix), adjacent pieces merge best-score-first from a priority queue, and text that
// forms no token falls back to <0xNN> byte tokens. Immutable; Encode/Decode are thread-safe.
#pragma once

#include <array>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/tokenizer/vocab_tokenizer.h"

namespace weft::tokenizer {

class SpmTokenizer final : public VocabTokenizer {
 public:
  // InvalidArgument if `vocab` is not an SPM vocabulary.
  static absl::StatusOr<std::unique_ptr<SpmTokenizer>> Create(Vocab vocab);

  // Appends EOS too when options.add_bos is set and the vocabulary says add_eos (llama.cpp's
  // add_special). Bytes that are not valid UTF-8 are kept and encoded as byte tokens.
  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options) const override;
  // Control and unknown tokens decode to "" (read TokenText to show them). With add_space_prefix
  // one leading space is dropped at the start (prev = -1), after BOS and after any special token,
  // mirroring where the encoder added it.
  std::string DecodeToken(int32_t id, int32_t prev) const override;
  std::string_view kind() const override { return "spm"; }

 private:
  explicit SpmTokenizer(Vocab vocab);
  // One raw fragment, already escaped ("▁" for spaces): llama.cpp llm_tokenizer_spm_session.
  void EncodeEscaped(std::string_view text, std::vector<int32_t>* out) const;

  std::array<int32_t, 256> byte_token_;  // <0xNN> (or the 1-byte text) per byte; -1 if none
};

}  // namespace weft::tokenizer
