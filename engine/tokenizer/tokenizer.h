// SPDX-License-Identifier: Apache-2.0
// Tokenizer: text <-> token ids. Implementations: SentencePiece-style (SPM, byte fallback),
// byte-level BPE with pre-tokenizer regexes, llama2.c tokenizer.bin. Immutable after construction;
// Encode and Decode may be called from any thread at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::model {
class Model;
}

namespace weft::tokenizer {

struct EncodeOptions {
  bool add_bos = false;        // prepend BOS (callers usually pass Tokenizer::add_bos_default())
  bool parse_special = false;  // text such as "<|eot_id|>" becomes its special id; else plain text
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<int32_t> Encode(std::string_view text,
                                      const EncodeOptions& options) const = 0;
  // The bytes one token stands for in running text (SPM: "▁" becomes " ", <0x0A> becomes "\n").
  // `prev` is the preceding token or -1 at the start (SPM drops the leading space after BOS).
  virtual std::string DecodeToken(int32_t id, int32_t prev) const = 0;
  // Whole sequence; may strip a leading space the encoder added (SPM add_space_prefix).
  virtual std::string Decode(std::span<const int32_t> ids) const;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
  virtual bool add_bos_default() const = 0;
  // End-of-generation tokens (EOS, EOT, <|im_end|>, ...).
  virtual bool IsEndOfGeneration(int32_t id) const = 0;
  virtual std::string_view TokenText(int32_t id) const = 0;  // raw vocab entry
  virtual std::string_view kind() const = 0;                 // "spm", "bpe", "llama2c"
};

// The tokenizer of a loaded model (GGUF metadata, llama2.c tokenizer.bin, HF tokenizer.json).
// `override_path` (tokenizer.bin or tokenizer.json) wins when given.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const model::Model& model,
                                                         const std::string& override_path = "");

}  // namespace weft::tokenizer
