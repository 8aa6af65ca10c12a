// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/tokenizer.h"

namespace weft::tokenizer {

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string text;
  int32_t prev = -1;
  for (int32_t id : ids) {
    text += DecodeToken(id, prev);
    prev = id;
  }
  return text;
}

}  // namespace weft::tokenizer
