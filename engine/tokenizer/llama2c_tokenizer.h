// SPDX-License-Identifier: Apache-2.0
// Llama2cTokenizer: karpathy/llama2.c tokenizer.bin (int32 max_token_length, then per token f32
// score, int32 length, bytes) encoded and decoded exactly as run.c encode()/decode() do.
// Immutable; Encode/Decode are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "engine/tokenizer/vocab_tokenizer.h"

namespace weft::tokenizer {

// Parses tokenizer.bin bytes. `vocab_size` > 0 reads exactly that many tokens (run.c takes it from
// the checkpoint); 0 reads tokens until the end. `source` names the file in errors.
// BOS = 1, EOS = 2 (control), <0xNN> tokens are bytes, 0 is unknown; add_bos is on.
absl::StatusOr<Vocab> ParseLlama2cTokenizer(std::span<const uint8_t> bytes, int32_t vocab_size,
                                            const std::string& source);

class Llama2cTokenizer final : public VocabTokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Create(Vocab vocab);

  // run.c encode(): a " " token first when the text is non-empty, then one token per UTF-8
  // character (bytes + 3 when the character is no token), then repeatedly merges the adjacent
  // pair whose concatenated texts form the best-scoring token (leftmost on ties). EOS is added
  // when options.add_bos and add_eos (never for tokenizer.bin). parse_special is ignored. Unlike
  // run.c's C string, an embedded NUL byte is encoded (as byte token 3) instead of ending the text.
  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options) const override;
  // run.c decode(): the raw text, a leading space dropped after BOS (and at prev = -1, where the
  // encoder's " " prefix sits), "<0xNN>" as the raw byte. BOS/EOS decode to "" (run.c stops at
  // BOS and would print "\n</s>\n" for EOS).
  std::string DecodeToken(int32_t id, int32_t prev) const override;
  std::string_view kind() const override { return "llama2c"; }

 private:
  explicit Llama2cTokenizer(Vocab vocab) : VocabTokenizer(std::move(vocab)) {}
};

}  // namespace weft::tokenizer
