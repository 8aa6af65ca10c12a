// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/spm_tokenizer.h"

#include <queue>

#include "absl/strings/str_format.h"
#include "engine/tokenizer/unicode.h"

namespace weft::tokenizer {
namespace {

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t start;  // byte offset into the escaped text
  uint32_t n;      // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  uint32_t size;  // bytes of left + right when queued; a mismatch later means it is stale
};

// Highest score first; among equal scores the leftmost pair (llama.cpp llm_bigram_spm).
struct BigramLess {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

void AppendEscaped(std::string_view text, std::string* out) {
  for (char c : text) {
    if (c == ' ') {
      out->append(kSpmSpace);
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SpmTokenizer>> SpmTokenizer::Create(Vocab vocab) {
  if (vocab.kind != Vocab::Kind::kSpm) {
    return absl::InvalidArgumentError("SpmTokenizer needs an SPM vocabulary");
  }
  return std::unique_ptr<SpmTokenizer>(new SpmTokenizer(std::move(vocab)));
}

SpmTokenizer::SpmTokenizer(Vocab vocab) : VocabTokenizer(std::move(vocab)) {
  for (int b = 0; b < 256; ++b) {
    int32_t id = Find(absl::StrFormat("<0x%02X>", b));
    if (id < 0) id = Find(std::string(1, static_cast<char>(b)));
    byte_token_[b] = id >= 0 ? id : vocab_.unk_id;
  }
}

std::vector<int32_t> SpmTokenizer::Encode(std::string_view text,
                                          const EncodeOptions& options) const {
  std::vector<int32_t> out;
  if (options.add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  std::vector<Fragment> fragments;
  special_.Partition(text, options.parse_special, &fragments);
  bool prev_special = true;  // the first fragment gets the space prefix too
  std::string escaped;
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    escaped.clear();
    if (vocab_.add_space_prefix && prev_special) escaped.append(kSpmSpace);
    AppendEscaped(f.text, &escaped);
    EncodeEscaped(escaped, &out);
    prev_special = false;
  }
  if (options.add_bos && vocab_.add_eos && vocab_.eos_id >= 0) out.push_back(vocab_.eos_id);
  return out;
}

void SpmTokenizer::EncodeEscaped(std::string_view text, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  // Symbols are UTF-8 characters as judged by the lead byte (llama.cpp unicode_len_utf8), so
  // invalid bytes become 1-byte symbols that end as byte tokens.
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t offs = 0; offs < text.size();) {
    const size_t len =
        std::min<size_t>(Utf8SeqLen(static_cast<uint8_t>(text[offs])), text.size() - offs);
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, offs + len == text.size() ? -1 : index + 1,
                       static_cast<uint32_t>(offs), static_cast<uint32_t>(len)});
    offs += len;
  }

  std::vector<Bigram> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue(BigramLess(),
                                                                     std::move(storage));
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const std::string_view pair =
        text.substr(symbols[left].start, symbols[left].n + symbols[right].n);
    const int32_t id = Find(pair);
    if (id < 0) return;
    queue.push({vocab_.score(id), left, right, static_cast<uint32_t>(pair.size())});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;  // stale
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  // Every merged symbol is a token (only token texts are queued), so llama.cpp's rev_merge
  // re-segmentation never applies; a symbol that is no token is a single character: bytes.
  for (int32_t i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = text.substr(s.start, s.n);
    const int32_t id = Find(piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (char c : piece) {
      const int32_t bt = byte_token_[static_cast<uint8_t>(c)];
      if (bt >= 0) out->push_back(bt);
    }
  }
}

std::string SpmTokenizer::DecodeToken(int32_t id, int32_t prev) const {
  if (!InRange(id)) return "";
  const uint16_t attr = vocab_.attr(id);
  const std::string& text = vocab_.tokens[id];
  std::string piece;
  if (attr & (kAttrUnknown | kAttrControl)) return "";
  if (attr & kAttrUserDefined) {
    piece = text;
  } else if (attr & kAttrNormal) {
    piece.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      if (text.compare(pos, kSpmSpace.size(), kSpmSpace) == 0) {
        piece.push_back(' ');
        pos += kSpmSpace.size();
      } else {
        piece.push_back(text[pos++]);
      }
    }
  } else if (attr & kAttrByte) {
    const int b = ParseByteToken(text);
    if (b >= 0) piece.push_back(static_cast<char>(b));
  }
  if (vocab_.add_space_prefix && !piece.empty() && piece[0] == ' ') {
    const bool at_start =
        prev < 0 || prev == vocab_.bos_id ||
        (InRange(prev) && (vocab_.attr(prev) & (kAttrControl | kAttrUserDefined | kAttrUnknown)));
    if (at_start) piece.erase(0, 1);
  }
  return piece;
}

}  // namespace weft::tokenizer
