// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/special_tokens.h"

#include <algorithm>
#include <cctype>

namespace weft::tokenizer {

SpecialTokenMatcher::SpecialTokenMatcher(const Vocab& vocab) {
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const uint16_t attr = vocab.attr(id);
    if ((attr & (kAttrControl | kAttrUserDefined | kAttrUnknown)) == 0) continue;
    if (vocab.tokens[id].empty()) continue;
    candidates_.push_back({id, vocab.tokens[id], attr});
    // A USER_DEFINED token that is also CONTROL (an end-of-generation text) is skipped when
    // parse_special is off, as in llama.cpp.
    if ((attr & (kAttrControl | kAttrUnknown)) == 0) any_user_defined_ = true;
  }
  // llama.cpp sorts by length only (std::sort, unstable); ties broken by id here for determinism.
  std::stable_sort(
      candidates_.begin(), candidates_.end(),
      [](const Candidate& a, const Candidate& b) { return a.text.size() > b.text.size(); });
}

void SpecialTokenMatcher::Partition(std::string_view text, bool parse_special,
                                    std::vector<Fragment>* out) const {
  out->clear();
  if (text.empty()) return;
  out->push_back({-1, text});
  if (!parse_special && !any_user_defined_) return;

  // Which bytes and byte pairs occur at all: skips most candidates (e.g. Qwen2's 290 "[PAD...]"
  // tokens) without scanning the text for each of them.
  bool present[256] = {};
  for (char c : text) present[static_cast<uint8_t>(c)] = true;
  std::vector<uint64_t> pairs(65536 / 64, 0);
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    const uint32_t p = static_cast<uint8_t>(text[i]) << 8 | static_cast<uint8_t>(text[i + 1]);
    pairs[p >> 6] |= uint64_t{1} << (p & 63);
  }
  auto may_occur = [&](std::string_view t) {
    if (!present[static_cast<uint8_t>(t[0])]) return false;
    if (t.size() < 2) return true;
    const uint32_t p = static_cast<uint8_t>(t[0]) << 8 | static_cast<uint8_t>(t[1]);
    return (pairs[p >> 6] >> (p & 63) & 1) != 0;
  };

  std::vector<Fragment> next;
  for (const Candidate& cand : candidates_) {
    if (!parse_special && (cand.attr & (kAttrControl | kAttrUnknown))) continue;
    if (!may_occur(cand.text)) continue;
    bool found_any = false;
    next.clear();
    for (const Fragment& frag : *out) {
      if (frag.token >= 0) {
        next.push_back(frag);
        continue;
      }
      std::string_view rest = frag.text;
      while (!rest.empty()) {
        const size_t pos = rest.find(cand.text);
        if (pos == std::string_view::npos) {
          next.push_back({-1, rest});
          break;
        }
        found_any = true;
        std::string_view left = rest.substr(0, pos);
        if (cand.attr & kAttrLstrip) {
          while (!left.empty() && std::isspace(static_cast<unsigned char>(left.back()))) {
            left.remove_suffix(1);
          }
        }
        if (!left.empty()) next.push_back({-1, left});
        next.push_back({cand.id, cand.text});
        rest.remove_prefix(pos + cand.text.size());
        if (cand.attr & kAttrRstrip) {
          while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front()))) {
            rest.remove_prefix(1);
          }
        }
      }
    }
    if (found_any) out->swap(next);
  }
}

}  // namespace weft::tokenizer
