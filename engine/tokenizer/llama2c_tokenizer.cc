// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/llama2c_tokenizer.h"

#include <cstring>
#include <queue>

#include "absl/strings/str_cat.h"

namespace weft::tokenizer {
namespace {

constexpr int32_t kBos = 1;
constexpr int32_t kEos = 2;
constexpr float kNoMerge = -1e10f;  // run.c's initial best_score: pairs at or below never merge

struct Node {
  int32_t prev;
  int32_t next;
  int32_t id;        // token id; -1 once merged away
  uint32_t version;  // bumped whenever id changes
};

struct Pair {
  float score;
  int32_t left;  // node index; nodes keep their order, so a smaller index is further left
  int32_t right;
  uint32_t left_version;
  uint32_t right_version;
  int32_t result;
};

// Best score first; among equal scores the leftmost, as run.c's strict '>' scan picks.
struct PairLess {
  bool operator()(const Pair& a, const Pair& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

absl::StatusOr<Vocab> ParseLlama2cTokenizer(std::span<const uint8_t> bytes, int32_t vocab_size,
                                            const std::string& source) {
  auto fail = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": llama2.c tokenizer: ", what));
  };
  size_t pos = 0;
  auto read_i32 = [&](int32_t* v) {
    if (bytes.size() - pos < 4) return false;
    std::memcpy(v, bytes.data() + pos, 4);
    pos += 4;
    return true;
  };
  int32_t max_token_length = 0;
  if (!read_i32(&max_token_length)) return fail("file shorter than its 4-byte header");
  if (max_token_length <= 0 || max_token_length > (1 << 20)) {
    return fail(absl::StrCat("implausible max_token_length ", max_token_length));
  }
  Vocab v;
  v.kind = Vocab::Kind::kLlama2c;
  while (vocab_size > 0 ? v.size() < vocab_size : pos < bytes.size()) {
    const int32_t index = v.size();
    int32_t score_bits = 0;
    int32_t len = 0;
    if (!read_i32(&score_bits) || !read_i32(&len)) {
      return fail(absl::StrCat("truncated at token ", index, " (offset ", pos, ")"));
    }
    float score;
    std::memcpy(&score, &score_bits, sizeof(score));
    if (len < 0 || len > max_token_length || static_cast<size_t>(len) > bytes.size() - pos) {
      return fail(absl::StrCat("token ", index, " has bad length ", len, " (offset ", pos, ")"));
    }
    v.tokens.emplace_back(reinterpret_cast<const char*>(bytes.data() + pos), len);
    v.scores.push_back(score);
    pos += static_cast<size_t>(len);
  }
  if (pos != bytes.size()) {
    return fail(absl::StrCat(bytes.size() - pos, " bytes left after ", v.size(), " tokens"));
  }
  if (v.size() < 3) return fail(absl::StrCat("only ", v.size(), " tokens"));
  v.attrs.assign(v.tokens.size(), kAttrNormal);
  v.attrs[0] = kAttrUnknown;
  v.attrs[kBos] = kAttrControl;
  v.attrs[kEos] = kAttrControl;
  for (int32_t id = 3; id < v.size(); ++id) {
    const std::string& t = v.tokens[id];
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') v.attrs[id] = kAttrByte;
  }
  v.unk_id = 0;
  v.bos_id = kBos;
  v.eos_id = kEos;
  v.add_bos = true;
  v.eog_ids = {kBos, kEos};  // run.c stops when the model emits BOS
  return v;
}

absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Llama2cTokenizer::Create(Vocab vocab) {
  if (vocab.kind != Vocab::Kind::kLlama2c || vocab.size() < 3 ||
      vocab.scores.size() != vocab.tokens.size()) {
    return absl::InvalidArgumentError("Llama2cTokenizer needs a llama2.c vocabulary with scores");
  }
  if (vocab.attrs.empty()) vocab.attrs.assign(vocab.tokens.size(), kAttrNormal);
  return std::unique_ptr<Llama2cTokenizer>(new Llama2cTokenizer(std::move(vocab)));
}

std::vector<int32_t> Llama2cTokenizer::Encode(std::string_view text,
                                              const EncodeOptions& options) const {
  std::vector<int32_t> out;
  if (options.add_bos) out.push_back(vocab_.bos_id);
  std::vector<int32_t> ids;
  ids.reserve(text.size() + 1);
  if (!text.empty()) {
    const int32_t dummy_prefix = Find(" ");
    if (dummy_prefix >= 0) ids.push_back(dummy_prefix);  // run.c would push -1 (a bug) if absent
  }
  // run.c's byte loop: collect a lead byte and up to 3 following continuation bytes.
  const size_t n = text.size();
  char buf[8];
  size_t buf_len = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
    if ((c & 0xC0) != 0x80) buf_len = 0;
    buf[buf_len++] = static_cast<char>(c);
    const bool next_is_cont = i + 1 < n && (static_cast<uint8_t>(text[i + 1]) & 0xC0) == 0x80;
    if (next_is_cont && buf_len < 4) continue;
    const int32_t id = Find(std::string_view(buf, buf_len));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t k = 0; k < buf_len; ++k) ids.push_back(static_cast<uint8_t>(buf[k]) + 3);
    }
    buf_len = 0;
  }

  // Greedy best-score merging. run.c rescans all pairs each round (O(n^2)); a priority queue
  // over the current adjacent pairs picks the same pair each round.
  std::vector<Node> nodes(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    nodes[i] = {static_cast<int32_t>(i) - 1, i + 1 == ids.size() ? -1 : static_cast<int32_t>(i) + 1,
                ids[i], 0};
  }
  std::priority_queue<Pair, std::vector<Pair>, PairLess> queue;
  std::string joined;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t a = nodes[left].id, b = nodes[right].id;
    if (!InRange(a) || !InRange(b)) return;
    joined = vocab_.tokens[a];
    joined += vocab_.tokens[b];
    const int32_t id = Find(joined);
    if (id < 0 || !(vocab_.scores[id] > kNoMerge)) return;
    queue.push({vocab_.scores[id], left, right, nodes[left].version, nodes[right].version, id});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(nodes.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Pair p = queue.top();
    queue.pop();
    Node& left = nodes[p.left];
    Node& right = nodes[p.right];
    if (left.id < 0 || right.id < 0 || left.version != p.left_version ||
        right.version != p.right_version || left.next != p.right) {
      continue;
    }
    left.id = p.result;
    ++left.version;
    right.id = -1;
    ++right.version;
    left.next = right.next;
    if (right.next >= 0) nodes[right.next].prev = p.left;
    try_add(left.prev, p.left);
    try_add(p.left, left.next);
  }
  for (int32_t i = nodes.empty() ? -1 : 0; i != -1; i = nodes[i].next) out.push_back(nodes[i].id);
  if (options.add_bos && vocab_.add_eos) out.push_back(vocab_.eos_id);
  return out;
}

std::string Llama2cTokenizer::DecodeToken(int32_t id, int32_t prev) const {
  if (!InRange(id) || (vocab_.attr(id) & kAttrControl)) return "";
  std::string_view piece = vocab_.tokens[id];
  if ((prev == kBos || prev < 0) && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
  // run.c: sscanf(piece, "<0x%02hhX>", &byte) -- "<0x" then one or two hex digits.
  if (piece.size() >= 4 && piece.substr(0, 3) == "<0x") {
    auto hex = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int value = hex(piece[3]);
    if (value >= 0) {
      if (piece.size() >= 5 && hex(piece[4]) >= 0) value = value * 16 + hex(piece[4]);
      return std::string(1, static_cast<char>(value));
    }
  }
  return std::string(piece);
}

}  // namespace weft::tokenizer
