// SPDX-License-Identifier: Apache-2.0
// RegexSplitter: the BPE pre-tokenizer. Applies a list of PCRE2 patterns (UTF + Unicode
// properties) one after another; each pattern splits every piece the previous one produced into
// its matches and the unmatched gaps between them (HF "Isolated" split, llama.cpp
// unicode_regex_split). Immutable after Create; Split may run on many threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::tokenizer {

// The regexes llama.cpp uses for a tokenizer.ggml.pre value ("default", "gpt-2", "llama-bpe",
// "qwen2", ...). NotFound for names we do not know.
absl::StatusOr<std::vector<std::string>> PreTokenizerRegexes(std::string_view pre);

class RegexSplitter {
 public:
  // InvalidArgument naming the pattern when one does not compile.
  static absl::StatusOr<std::unique_ptr<RegexSplitter>> Create(std::vector<std::string> patterns);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Splits valid UTF-8 `text` (callers sanitize first) into non-empty consecutive pieces that
  // concatenate back to `text`. The views point into `text`.
  void Split(std::string_view text, std::vector<std::string_view>* pieces) const;

 private:
  struct Compiled;
  RegexSplitter() = default;
  std::vector<std::string> patterns_;
  std::vector<Compiled*> compiled_;
};

}  // namespace weft::tokenizer
