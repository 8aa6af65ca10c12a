// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/vocab_tokenizer.h"

#include <algorithm>

namespace weft::tokenizer {

VocabTokenizer::VocabTokenizer(Vocab vocab) : vocab_(std::move(vocab)), special_(vocab_) {
  token_to_id_.reserve(vocab_.tokens.size());
  for (int32_t id = 0; id < vocab_.size(); ++id) token_to_id_.try_emplace(vocab_.tokens[id], id);
}

bool VocabTokenizer::IsEndOfGeneration(int32_t id) const {
  return std::binary_search(vocab_.eog_ids.begin(), vocab_.eog_ids.end(), id);
}

std::string_view VocabTokenizer::TokenText(int32_t id) const {
  return InRange(id) ? std::string_view(vocab_.tokens[id]) : std::string_view();
}

int VocabTokenizer::ParseByteToken(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(text[3]), lo = hex(text[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

}  // namespace weft::tokenizer
