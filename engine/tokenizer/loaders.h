// SPDX-License-Identifier: Apache-2.0
// Tokenizer factories for each source, below LoadTokenizer(model): a Vocab from any loader, a
// llama2.c tokenizer.bin, an HF tokenizer.json (+ its directory's configs), a GGUF's
// tokenizer.ggml.* metadata. Each returns a Status naming the file on malformed input.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/vocab.h"

namespace weft::model {
class GgufFile;
}

namespace weft::tokenizer {

// The tokenizer for `vocab.kind` (SPM, BPE or llama2.c).
absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFromVocab(Vocab vocab);

// `vocab_size` > 0 (from the checkpoint header) reads exactly that many entries; 0 reads to EOF.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(const std::string& path,
                                                                int32_t vocab_size = 0);

// `config_dir` holds tokenizer_config.json / generation_config.json (either may be absent);
// empty means the directory of `json_path`.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& json_path,
                                                           const std::string& config_dir = "");

// From GGUF metadata (tokenizer.ggml.model "llama" = SPM, "gpt2" = BPE), with llama.cpp's
// defaults for absent keys. Defined in weft_tokenizer (needs weft_model).
absl::StatusOr<Vocab> VocabFromGguf(const model::GgufFile& gguf);
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const model::GgufFile& gguf);

}  // namespace weft::tokenizer
