// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/decoding.h"

#include "engine/tokenizer/unicode.h"

namespace weft::tokenizer {

std::string StreamingDecoder::Push(int32_t id) {
  pending_ += tokenizer_.DecodeToken(id, prev_);
  prev_ = id;
  const size_t hold = IncompleteUtf8Tail(pending_);
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StreamingDecoder::Flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

std::vector<int32_t> EndOfGenerationIds(const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (tokenizer.IsEndOfGeneration(id)) ids.push_back(id);
  }
  return ids;
}

}  // namespace weft::tokenizer
