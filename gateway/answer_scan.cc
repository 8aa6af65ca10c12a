// SPDX-License-Identifier: Apache-2.0
#include "gateway/answer_scan.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "base/utf8.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {
namespace {

int64_t Clamp(uint64_t v) {
  return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
             ? std::numeric_limits<int64_t>::max()
             : static_cast<int64_t>(v);
}

int HexDigit(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Four hex digits at `p` (the caller checked there are four bytes): the code unit, or -1.
int32_t Hex4(const unsigned char* p) {
  int32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    const int d = HexDigit(p[i]);
    if (d < 0) return -1;
    v = (v << 4) | d;
  }
  return v;
}

// Bytes that stand for themselves inside a string: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

// The decoded text of a string's contents that ScanString already validated (escapes included).
std::string Unescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  const unsigned char* end = p + raw.size();
  while (p < end) {
    if (*p != '\\') {
      out.push_back(static_cast<char>(*p++));
      continue;
    }
    const unsigned char e = p[1];
    p += 2;
    switch (e) {
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        uint32_t cp = static_cast<uint32_t>(Hex4(p));
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // validated: a low surrogate follows
          const uint32_t lo = static_cast<uint32_t>(Hex4(p + 2));
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        AppendUtf8(cp, &out);
        break;
      }
      default: out.push_back(static_cast<char>(e)); break;  // '"', '\\', '/'
    }
  }
  return out;
}

// One pass over the bytes that validates them as JSON (RFC 8259, as nlohmann's strict parser
// does: UTF-8 checked, paired surrogates, no trailing content) and reads the few values the
// gateway needs on the way. Iterative, so nesting depth costs heap, not stack.
class Scanner {
 public:
  Scanner(std::string_view body, std::string_view client_model)
      : p_(reinterpret_cast<const unsigned char*>(body.data())),
        end_(p_ + body.size()),
        client_model_(client_model) {}

  std::optional<AnswerFacts> Run() {
    if (end_ - p_ >= 3 && p_[0] == 0xEF && p_[1] == 0xBB && p_[2] == 0xBF) p_ += 3;  // a BOM
    SkipWs();
    if (p_ == end_ || *p_ != '{') return std::nullopt;  // not an object (valid or not)
    ++p_;
    Enter(true);
    Next next = Next::kKeyOrClose;
    for (;;) {
      SkipWs();
      if (p_ == end_) return std::nullopt;
      const unsigned char c = *p_;
      switch (next) {
        case Next::kKeyOrClose:
        case Next::kKey:
          if (c == '}' && next == Next::kKeyOrClose) {
            ++p_;
            if (Leave()) return Done();
            next = Next::kCommaOrClose;
            break;
          }
          if (c != '"' || !ReadKey()) return std::nullopt;
          SkipWs();
          if (p_ == end_ || *p_ != ':') return std::nullopt;
          ++p_;
          next = Next::kValue;
          break;
        case Next::kValueOrClose:
        case Next::kValue:
          if (c == ']' && next == Next::kValueOrClose) {
            ++p_;
            if (Leave()) return Done();
            next = Next::kCommaOrClose;
            break;
          }
          if (c == '{') {
            ++p_;
            OnValue(Kind::kObject, 0, false);
            Enter(true);
            next = Next::kKeyOrClose;
          } else if (c == '[') {
            ++p_;
            OnValue(Kind::kOther, 0, false);
            Enter(false);
            next = Next::kValueOrClose;
          } else {
            if (!ReadScalar()) return std::nullopt;
            next = Next::kCommaOrClose;
          }
          break;
        case Next::kCommaOrClose: {
          const bool object = stack_.back() != 0;
          if (c == ',') {
            ++p_;
            next = object ? Next::kKey : Next::kValue;
          } else if (c == (object ? '}' : ']')) {
            ++p_;
            if (Leave()) return Done();
          } else {
            return std::nullopt;
          }
          break;
        }
      }
    }
  }

 private:
  static constexpr int kTracked = 3;
  enum class Next { kKeyOrClose, kKey, kValueOrClose, kValue, kCommaOrClose };
  enum class Kind { kString, kCount, kObject, kOther };
  enum class K { kOther, kModel, kUsage, kPrompt, kCompletion, kDetails, kCached };

  static K Key(std::string_view k) {
    if (k == "model") return K::kModel;
    if (k == "usage") return K::kUsage;
    if (k == "prompt_tokens") return K::kPrompt;
    if (k == "completion_tokens") return K::kCompletion;
    if (k == "prompt_tokens_details") return K::kDetails;
    if (k == "cached_tokens") return K::kCached;
    return K::kOther;
  }
  static int64_t Count(Kind kind, uint64_t v) { return kind == Kind::kCount ? Clamp(v) : 0; }

  std::optional<AnswerFacts> Done() {
    SkipWs();
    // Trailing content fails; a NUL byte ends the input as it does for nlohmann (a C string's end).
    if (p_ != end_ && *p_ != 0) return std::nullopt;
    return facts_;
  }

  void SkipWs() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  // At an opening quote: validates the string and leaves p_ past its closing quote. `raw` gets
  // the contents as written, `escaped` whether they hold a backslash.
  bool ScanString(std::string_view* raw, bool* escaped) {
    ++p_;
    const unsigned char* start = p_;
    *escaped = false;
    for (;;) {
      // The common case first: a run of printable ASCII.
      while (p_ != end_ && kPlain[*p_]) ++p_;
      if (p_ == end_) return false;
      const unsigned char c = *p_;
      if (c == '"') {
        *raw = std::string_view(reinterpret_cast<const char*>(start),
                                static_cast<size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c == '\\') {
        *escaped = true;
        if (end_ - p_ < 2) return false;
        const unsigned char e = p_[1];
        p_ += 2;
        switch (e) {
          case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            break;
          case 'u': {
            if (end_ - p_ < 4) return false;
            const int32_t cp = Hex4(p_);
            if (cp < 0) return false;
            p_ += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u') return false;
              const int32_t lo = Hex4(p_ + 2);
              if (lo < 0xDC00 || lo > 0xDFFF) return false;
              p_ += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              return false;  // a low surrogate alone
            }
            break;
          }
          default:
            return false;
        }
        continue;
      }
      if (c < 0x20) return false;  // control characters must be escaped
      // A multi-byte UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF).
      const size_t len = Utf8SeqLen(
          std::string_view(reinterpret_cast<const char*>(p_), static_cast<size_t>(end_ - p_)), 0);
      if (len == 0) return false;
      p_ += len;
    }
  }

  // At a key's opening quote.
  bool ReadKey() {
    std::string_view raw;
    bool escaped;
    if (!ScanString(&raw, &escaped)) return false;
    if (depth_ <= kTracked && on_path_[depth_]) {
      key_[depth_] = escaped ? Key(Unescape(raw)) : Key(raw);
    }
    return true;
  }

  // A string, number or literal (anything else fails).
  bool ReadScalar() {
    const unsigned char c = *p_;
    if (c == '"') {
      std::string_view raw;
      bool escaped;
      if (!ScanString(&raw, &escaped)) return false;
      bool model_equal = false;
      if (depth_ == 1 && key_[1] == K::kModel) {
        model_equal = escaped ? Unescape(raw) == client_model_ : raw == client_model_;
      }
      OnValue(Kind::kString, 0, model_equal);
      return true;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber();
    if (Literal("true") || Literal("false") || Literal("null")) {
      OnValue(Kind::kOther, 0, false);
      return true;
    }
    return false;
  }

  bool Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; a count only when it is a non-negative
  // integer that fits 64 bits unsigned (anything else is a float or negative to nlohmann: 0). As
  // for nlohmann, a number whose double value overflows (1e400, or 400 digits) is invalid JSON.
  bool ReadNumber() {
    const unsigned char* start = p_;
    bool count = true;
    if (*p_ == '-') {
      count = false;
      ++p_;
    }
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    uint64_t v = 0;
    bool overflow = false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
        const uint64_t d = *p_ - '0';
        if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) overflow = true;
        v = v * 10 + d;
        ++p_;
      }
    }
    const ptrdiff_t int_digits = p_ - start;
    if (p_ != end_ && *p_ == '.') {
      count = false;
      ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    bool exponent = false;
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      count = false;
      exponent = true;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (overflow) count = false;
    // Only an exponent or more than 300 integer digits can reach DBL_MAX (~1.8e308).
    if (exponent || int_digits > 300) {
      const std::string text(reinterpret_cast<const char*>(start), static_cast<size_t>(p_ - start));
      if (std::isinf(std::strtod(text.c_str(), nullptr))) return false;
    }
    OnValue(count ? Kind::kCount : Kind::kOther, count ? v : 0, false);
    return true;
  }

  // A value at depth_ (inside the container entered last), under key_[depth_] when that
  // container is an object on the tracked path. The same rules as a parsed document: a later
  // duplicate key replaces an earlier one.
  void OnValue(Kind kind, uint64_t v, bool model_equal) {
    pending_usage_ = false;
    pending_details_ = false;
    if (depth_ > kTracked || !is_object_[depth_] || !on_path_[depth_]) return;
    const K k = key_[depth_];
    if (depth_ == 1) {
      if (k == K::kModel) facts_.model_matches = kind == Kind::kString && model_equal;
      if (k == K::kUsage) {
        facts_.has_usage = kind == Kind::kObject;
        facts_.prompt_tokens = facts_.completion_tokens = facts_.cached_tokens = 0;
        pending_usage_ = kind == Kind::kObject;
      }
    } else if (depth_ == 2) {
      if (k == K::kPrompt) facts_.prompt_tokens = Count(kind, v);
      if (k == K::kCompletion) facts_.completion_tokens = Count(kind, v);
      if (k == K::kDetails) {
        facts_.cached_tokens = 0;
        pending_details_ = kind == Kind::kObject;
      }
    } else if (depth_ == 3) {
      if (k == K::kCached) facts_.cached_tokens = Count(kind, v);
    }
  }

  void Enter(bool object) {
    stack_.push_back(object ? 1 : 0);
    ++depth_;
    if (depth_ <= kTracked) {
      is_object_[depth_] = object;
      key_[depth_] = K::kOther;
      // Depth 1 is the top object; depth 2 is on the path only as "usage", depth 3 only as its
      // "prompt_tokens_details".
      on_path_[depth_] = depth_ == 1 || (depth_ == 2 && pending_usage_) ||
                         (depth_ == 3 && on_path_[2] && pending_details_);
    }
    pending_usage_ = false;
    pending_details_ = false;
  }
  // Closes the innermost container; true when that was the top object.
  bool Leave() {
    stack_.pop_back();
    --depth_;
    return depth_ == 0;
  }

  const unsigned char* p_;
  const unsigned char* const end_;
  std::string_view client_model_;
  // 1 = object, 0 = array, innermost last: the first levels inline, deeper ones on the heap.
  struct Stack {
    void push_back(uint8_t v) {
      if (size < kInline) {
        inline_[size] = v;
      } else {
        deep.push_back(v);
      }
      ++size;
    }
    void pop_back() {
      --size;
      if (size >= kInline) deep.pop_back();
    }
    uint8_t back() const { return size <= kInline ? inline_[size - 1] : deep.back(); }
    static constexpr size_t kInline = 64;
    std::array<uint8_t, kInline> inline_;
    std::vector<uint8_t> deep;
    size_t size = 0;
  } stack_;
  int depth_ = 0;
  std::array<K, kTracked + 1> key_{};
  std::array<bool, kTracked + 1> is_object_{};
  std::array<bool, kTracked + 1> on_path_{};
  bool pending_usage_ = false;    // the value just begun is the top object's "usage" object
  bool pending_details_ = false;  // ... usage's "prompt_tokens_details" object
  AnswerFacts facts_;
};

}  // namespace

int64_t CountField(const nlohmann::ordered_json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end()) return 0;
  if (it->is_number_unsigned()) return Clamp(it->get<uint64_t>());
  if (it->is_number_integer()) return std::max<int64_t>(0, it->get<int64_t>());
  return 0;
}

std::optional<AnswerFacts> ScanAnswer(std::string_view body, std::string_view client_model) {
  return Scanner(body, client_model).Run();
}

bool IsJsonObject(std::string_view body) { return Scanner(body, {}).Run().has_value(); }

std::string UnescapeJsonString(std::string_view raw) { return Unescape(raw); }

}  // namespace weft::gateway
