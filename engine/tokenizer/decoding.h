// SPDX-License-Identifier: Apache-2.0
// Helpers for turning generated ids into text: StreamingDecoder (token-by-token text that never
// splits a UTF-8 character across chunks) and EndOfGenerationIds. A StreamingDecoder belongs to
// one stream and one thread; the Tokenizer it reads must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace weft::tokenizer {

class StreamingDecoder {
 public:
  // `prev` is the token before the first one pushed (the last prompt token, or -1): it decides
  // whether the first piece drops its leading space (SPM / llama2.c after BOS).
  explicit StreamingDecoder(const Tokenizer& tokenizer, int32_t prev = -1)
      : tokenizer_(tokenizer), prev_(prev) {}

  // Appends token `id` and returns the text that is now complete: everything decoded so far
  // except a trailing UTF-8 sequence still missing bytes (held until a later Push or Flush).
  // Bytes that can never become valid UTF-8 are passed through as they are.
  std::string Push(int32_t id);
  // Returns what is still held back (an incomplete sequence at the end of the stream, as raw
  // bytes) and clears it.
  std::string Flush();
  // Bytes held back right now.
  size_t pending() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  int32_t prev_;
  std::string pending_;
};

// Every id for which tokenizer.IsEndOfGeneration is true, ascending (scans the vocabulary).
std::vector<int32_t> EndOfGenerationIds(const Tokenizer& tokenizer);

}  // namespace weft::tokenizer
