// SPDX-License-Identifier: Apache-2.0
// Reads a Hugging Face tokenizer.json (model.type BPE, byte-level) into a Vocab: vocab and merges
// ("a b" strings or [a, b] pairs), added_tokens (special -> CONTROL, else USER_DEFINED, with
// lstrip/rstrip), the pre-tokenizer (Split regexes, Digits, ByteLevel, Sequence of them) and
// BOS/EOS from tokenizer_config.json / generation_config.json / the TemplateProcessing
// post-processor. Pure function of its inputs; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/tokenizer/vocab.h"

namespace weft::tokenizer {

// `tokenizer_config_json` and `generation_config_json` may be empty (absent files).
// InvalidArgument for malformed JSON or inconsistent content, Unimplemented for tokenizers that
// are not byte-level BPE (e.g. SentencePiece-style BPE with byte_fallback, WordPiece, Unigram) or
// use pre-tokenizer/normalizer features we do not implement. The NFC normalizer is accepted and
// not applied (as llama.cpp). Errors name `source`.
absl::StatusOr<Vocab> ParseHfTokenizerJson(std::string_view tokenizer_json,
                                           std::string_view tokenizer_config_json,
                                           std::string_view generation_config_json,
                                           const std::string& source);

}  // namespace weft::tokenizer
