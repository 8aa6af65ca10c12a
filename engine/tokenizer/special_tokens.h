// SPDX-License-Identifier: Apache-2.0
// SpecialTokenMatcher: splits text into raw-text fragments and special-token fragments the way
// llama.cpp's tokenizer_st_partition does (longest special text first, every occurrence, with the
// token's lstrip/rstrip). Immutable after construction; Partition may run on many threads at once.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/tokenizer/vocab.h"

namespace weft::tokenizer {

struct Fragment {
  int32_t token = -1;     // >= 0: a special token; -1: raw text in `text`
  std::string_view text;  // points into the text given to Partition
};

class SpecialTokenMatcher {
 public:
  // Candidates: tokens with CONTROL, USER_DEFINED or UNKNOWN attributes (non-empty text).
  explicit SpecialTokenMatcher(const Vocab& vocab);

  // USER_DEFINED tokens are always matched; CONTROL and UNKNOWN only when `parse_special`.
  void Partition(std::string_view text, bool parse_special, std::vector<Fragment>* out) const;

 private:
  struct Candidate {
    int32_t id;
    std::string_view text;  // into the Vocab, which outlives the matcher
    uint16_t attr;
  };
  std::vector<Candidate> candidates_;  // longest text first, then lowest id
  bool any_user_defined_ = false;
};

}  // namespace weft::tokenizer
