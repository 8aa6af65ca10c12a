// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/bpe_tokenizer.h"

#include <queue>

#include "engine/tokenizer/unicode.h"

namespace weft::tokenizer {
namespace {

struct Symbol {
  int32_t prev;
  int32_t next;
  int32_t id;  // symbol id; -1 once merged into its left neighbour
};

struct Bigram {
  int32_t rank;
  int32_t left;
  int32_t right;
  int32_t left_id;  // ids when queued: a change since means the entry is stale
  int32_t right_id;
  int32_t result;
};

// Lowest rank first; among equal ranks the leftmost pair (llama.cpp llm_bigram_bpe).
struct BigramGreater {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(Vocab vocab) {
  if (vocab.kind != Vocab::Kind::kBpe) {
    return absl::InvalidArgumentError("BpeTokenizer needs a BPE vocabulary");
  }
  std::vector<std::string> patterns = vocab.pre_regexes;
  std::unique_ptr<BpeTokenizer> t(new BpeTokenizer(std::move(vocab)));
  auto splitter = RegexSplitter::Create(std::move(patterns));
  if (!splitter.ok()) return splitter.status();
  t->splitter_ = *std::move(splitter);
  return t;
}

BpeTokenizer::BpeTokenizer(Vocab vocab) : VocabTokenizer(std::move(vocab)) {
  for (int b = 0; b < 256; ++b) {
    byte_symbol_[b] = SymbolId(std::string(ByteToUnicode(static_cast<uint8_t>(b))));
  }
  merges_.reserve(vocab_.merges.size());
  const auto& merges = vocab_.merges;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    if (a.empty() || b.empty()) continue;
    const int32_t left = SymbolId(a);
    const int32_t right = SymbolId(b);
    const int32_t result = SymbolId(a + b);
    // The first (lowest-rank) occurrence of a pair wins, as llama.cpp's emplace.
    merges_.try_emplace(PairKey(left, right), Merge{static_cast<int32_t>(rank), result});
  }
}

int32_t BpeTokenizer::SymbolId(const std::string& text) {
  const int32_t id = Find(text);
  if (id >= 0) return id;
  auto [it, inserted] =
      extra_ids_.try_emplace(text, vocab_.size() + static_cast<int32_t>(extra_symbols_.size()));
  if (inserted) extra_symbols_.push_back(text);
  return it->second;
}

std::string_view BpeTokenizer::SymbolText(int32_t sym) const {
  return sym < vocab_.size() ? std::string_view(vocab_.tokens[sym])
                             : std::string_view(extra_symbols_[sym - vocab_.size()]);
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text,
                                          const EncodeOptions& options) const {
  std::vector<int32_t> out;
  if (options.add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  std::string clean;
  if (!IsValidUtf8(text)) {
    clean = SanitizeUtf8(text);
    text = clean;
  }
  std::vector<Fragment> fragments;
  special_.Partition(text, options.parse_special, &fragments);
  std::vector<std::string_view> words;
  std::string prefixed;
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      continue;
    }
    std::string_view fragment = f.text;
    if (vocab_.byte_level_prefix_space && fragment[0] != ' ') {
      prefixed.assign(1, ' ');
      prefixed.append(fragment.data(), fragment.size());
      fragment = prefixed;
    }
    splitter_->Split(fragment, &words);
    for (std::string_view w : words) EncodeWord(w, &out);
  }
  if (options.add_bos && vocab_.add_eos && vocab_.eos_id >= 0) out.push_back(vocab_.eos_id);
  return out;
}

void BpeTokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(absl::string_view(word.data(), word.size()));
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out->size();
  EncodeWordUncached(word, out);
  std::vector<int32_t> ids(out->begin() + static_cast<ptrdiff_t>(before), out->end());
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.try_emplace(std::string(word), std::move(ids));
}

void BpeTokenizer::EncodeWordUncached(std::string_view word, std::vector<int32_t>* out) const {
  if (vocab_.ignore_merges) {
    const int32_t id = Find(ByteLevelEncode(word));
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  // One symbol per byte: each byte is one character of the byte-level text.
  std::vector<Symbol> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    symbols[i] = {static_cast<int32_t>(i) - 1,
                  i + 1 == word.size() ? -1 : static_cast<int32_t>(i) + 1,
                  byte_symbol_[static_cast<uint8_t>(word[i])]};
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramGreater> queue;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    auto it = merges_.find(PairKey(symbols[left].id, symbols[right].id));
    if (it == merges_.end()) return;
    queue.push(
        {it->second.rank, left, right, symbols[left].id, symbols[right].id, it->second.result});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.id != b.left_id || right.id != b.right_id || left.next != b.right) continue;
    left.id = b.result;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }
  for (int32_t i = 0; i != -1 && !symbols.empty(); i = symbols[i].next) {
    const int32_t sym = symbols[i].id;
    if (sym < vocab_.size()) {
      out->push_back(sym);
      continue;
    }
    // Not a token: llama.cpp looks each byte of the symbol's text up as a 1-byte token.
    for (char c : SymbolText(sym)) {
      const int32_t id = Find(std::string_view(&c, 1));
      if (id >= 0) out->push_back(id);
    }
  }
}

std::string BpeTokenizer::DecodeToken(int32_t id, int32_t /*prev*/) const {
  if (!InRange(id)) return "";
  const uint16_t attr = vocab_.attr(id);
  const std::string& text = vocab_.tokens[id];
  if (attr & (kAttrUnknown | kAttrControl)) return "";
  if (attr & kAttrUserDefined) return text;
  if (attr & kAttrNormal) return ByteLevelDecode(text);
  if (attr & kAttrByte) {
    const int b = ParseByteToken(text);
    return b >= 0 ? std::string(1, static_cast<char>(b)) : std::string();
  }
  return "";
}

}  // namespace weft::tokenizer
