// SPDX-License-Identifier: Apache-2.0
#include "gateway/request_scan.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "gateway/answer_scan.h"

namespace weft::gateway {
namespace {

// The members ParseFields reads for /v1/completions (api/openai.cc), in no particular order.
enum Field : int {
  kModel, kPrompt, kMaxTokens, kMaxCompletionTokens, kTemperature, kTopP, kTopK, kMinP,
  kFrequencyPenalty, kPresencePenalty, kRepetitionPenalty, kLogitBias, kSeed, kStop, kN,
  kLogprobs, kStream, kStreamOptions, kUser, kIgnoreEos, kReturnTokenIds, kMinTokens, kPriority,
  kWeftResume, kFieldCount, kUnread = kFieldCount
};

constexpr std::array<std::string_view, kFieldCount> kNames = {
    "model", "prompt", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
    "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty", "logit_bias", "seed",
    "stop", "n", "logprobs", "stream", "stream_options", "user", "ignore_eos",
    "return_token_ids", "min_tokens", "priority", "weft_resume"};

Field FieldOf(std::string_view key) {
  for (int f = 0; f < kFieldCount; ++f) {
    if (kNames[f] == key) return static_cast<Field>(f);
  }
  return kUnread;
}

enum class Kind { kAbsent, kNull, kString, kNumber, kTrue, kFalse, kContainer };

struct Value {
  Kind kind = Kind::kAbsent;
  std::string_view raw;  // a string's contents between its quotes, or a number's text
  bool escaped = false;  // the string holds a backslash
};

// Walks the top-level members of a body that IsJsonObject() accepted: no validation here, only
// the boundaries of keys and values.
class Walker {
 public:
  explicit Walker(std::string_view body) : p_(body.data()), end_(body.data() + body.size()) {}

  // Fills `values` (the last occurrence of each field wins); false only if the walk went wrong.
  bool Run(std::array<Value, kFieldCount>* values) {
    if (end_ - p_ >= 3 && static_cast<unsigned char>(p_[0]) == 0xEF &&
        static_cast<unsigned char>(p_[1]) == 0xBB && static_cast<unsigned char>(p_[2]) == 0xBF) {
      p_ += 3;
    }
    SkipWs();
    if (!Eat('{')) return false;
    SkipWs();
    if (Eat('}')) return true;
    for (;;) {
      SkipWs();
      std::string_view key;
      bool escaped;
      if (!String(&key, &escaped)) return false;
      const Field f = FieldOf(escaped ? std::string_view(UnescapeJsonString(key)) : key);
      SkipWs();
      if (!Eat(':')) return false;
      SkipWs();
      Value v;
      if (!ReadValue(&v)) return false;
      if (f != kUnread) (*values)[f] = v;
      SkipWs();
      if (Eat(',')) continue;
      return Eat('}');
    }
  }

 private:
  void SkipWs() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool Eat(char c) {
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  // At an opening quote: the contents up to the closing one.
  bool String(std::string_view* raw, bool* escaped) {
    if (!Eat('"')) return false;
    const char* start = p_;
    *escaped = false;
    while (p_ != end_ && *p_ != '"') {
      if (*p_ == '\\') {
        *escaped = true;
        ++p_;
        if (p_ == end_) return false;
      }
      ++p_;
    }
    if (p_ == end_) return false;
    *raw = std::string_view(start, static_cast<size_t>(p_ - start));
    ++p_;
    return true;
  }
  bool ReadValue(Value* v) {
    if (p_ == end_) return false;
    const char c = *p_;
    if (c == '"') {
      v->kind = Kind::kString;
      return String(&v->raw, &v->escaped);
    }
    if (c == '{' || c == '[') {
      v->kind = Kind::kContainer;
      return SkipContainer();
    }
    if (c == 't' || c == 'f' || c == 'n') {
      v->kind = c == 't' ? Kind::kTrue : c == 'f' ? Kind::kFalse : Kind::kNull;
      p_ += c == 'f' ? 5 : 4;
      return p_ <= end_;
    }
    const char* start = p_;
    while (p_ != end_ && (*p_ == '-' || *p_ == '+' || *p_ == '.' || *p_ == 'e' || *p_ == 'E' ||
                          (*p_ >= '0' && *p_ <= '9'))) {
      ++p_;
    }
    v->kind = Kind::kNumber;
    v->raw = std::string_view(start, static_cast<size_t>(p_ - start));
    return p_ != start;
  }
  bool SkipContainer() {
    int depth = 0;
    while (p_ != end_) {
      const char c = *p_;
      if (c == '"') {
        std::string_view ignored;
        bool escaped;
        if (!String(&ignored, &escaped)) return false;
        continue;
      }
      ++p_;
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) return true;
    }
    return false;
  }

  const char* p_;
  const char* const end_;
};

bool IsPlainInteger(std::string_view text) {
  return text.find_first_of(".eE") == std::string_view::npos;
}

// An integer the parser's JsonInteger<int64_t> accepts: written without fraction or exponent,
// within int64 (a larger one is unsigned or a float to nlohmann, out of int64 either way).
std::optional<int64_t> Int64Of(const Value& v) {
  if (v.kind != Kind::kNumber || !IsPlainInteger(v.raw)) return std::nullopt;
  int64_t x;
  auto [ptr, ec] = std::from_chars(v.raw.data(), v.raw.data() + v.raw.size(), x);
  if (ec != std::errc() || ptr != v.raw.data() + v.raw.size()) return std::nullopt;
  return x;
}

// GetInt: absent or null is fine; in [lo, hi] sets `out`; anything else declines.
bool IntField(const Value& v, int64_t lo, int64_t hi, std::optional<int32_t>* out) {
  if (v.kind == Kind::kAbsent || v.kind == Kind::kNull) return true;
  const std::optional<int64_t> x = Int64Of(v);
  if (!x || *x < lo || *x > hi) return false;
  *out = static_cast<int32_t>(*x);
  return true;
}

// GetFloat: any finite number, as nlohmann reads it: an integer that fits 64 bits is converted
// (so "-0" is 0, not -0), anything else read as strtod would (from_chars rounds the same way,
// without the locale; where it reports a range error this declines).
bool FloatField(const Value& v, std::optional<float>* out) {
  if (v.kind == Kind::kAbsent || v.kind == Kind::kNull) return true;
  if (v.kind != Kind::kNumber) return false;
  const char* first = v.raw.data();
  const char* last = first + v.raw.size();
  double d;
  if (IsPlainInteger(v.raw)) {
    int64_t i;
    uint64_t u;
    if (auto [p, ec] = std::from_chars(first, last, i); ec == std::errc() && p == last) {
      *out = static_cast<float>(static_cast<double>(i));
      return true;
    }
    if (auto [p, ec] = std::from_chars(first, last, u); ec == std::errc() && p == last) {
      *out = static_cast<float>(static_cast<double>(u));
      return true;
    }
  }
  auto [ptr, ec] = std::from_chars(first, last, d);
  if (ec != std::errc() || ptr != last || !std::isfinite(d)) return false;
  *out = static_cast<float>(d);
  return true;
}

bool BoolField(const Value& v, bool* out) {
  if (v.kind == Kind::kAbsent || v.kind == Kind::kNull) return true;
  if (v.kind != Kind::kTrue && v.kind != Kind::kFalse) return false;
  *out = v.kind == Kind::kTrue;
  return true;
}

bool StringField(const Value& v, std::string* out) {
  if (v.kind == Kind::kAbsent || v.kind == Kind::kNull) return true;
  if (v.kind != Kind::kString) return false;
  *out = v.escaped ? UnescapeJsonString(v.raw) : std::string(v.raw);
  return true;
}

bool Absent(const Value& v) { return v.kind == Kind::kAbsent || v.kind == Kind::kNull; }

}  // namespace

std::optional<api::CompletionRequest> ScanCompletionRequest(std::string_view body) {
  if (!IsJsonObject(body)) return std::nullopt;
  std::array<Value, kFieldCount> v;
  if (!Walker(body).Run(&v)) return std::nullopt;

  // The same reads, in the same order, as ParseFields; every error declines.
  api::CompletionRequest req;
  req.endpoint = api::Endpoint::kCompletions;
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  if (!StringField(v[kModel], &req.model)) return std::nullopt;
  if (v[kPrompt].kind != Kind::kString) return std::nullopt;  // missing, or an array
  if (!StringField(v[kPrompt], &req.prompt)) return std::nullopt;
  if (!IntField(v[kMaxTokens], 1, kIntMax, &req.max_tokens)) return std::nullopt;
  if (!IntField(v[kMaxCompletionTokens], 1, kIntMax, &req.max_tokens)) return std::nullopt;
  if (!FloatField(v[kTemperature], &req.temperature)) return std::nullopt;
  if (req.temperature && *req.temperature < 0) return std::nullopt;
  if (!FloatField(v[kTopP], &req.top_p)) return std::nullopt;
  if (!IntField(v[kTopK], -1, kIntMax, &req.top_k)) return std::nullopt;
  if (!FloatField(v[kMinP], &req.min_p)) return std::nullopt;
  if (!FloatField(v[kFrequencyPenalty], &req.frequency_penalty)) return std::nullopt;
  if (!FloatField(v[kPresencePenalty], &req.presence_penalty)) return std::nullopt;
  if (!FloatField(v[kRepetitionPenalty], &req.repetition_penalty)) return std::nullopt;
  if (!Absent(v[kLogitBias])) return std::nullopt;
  if (!Absent(v[kSeed])) {
    // A non-negative integer is unsigned to nlohmann (any up to 2^64 - 1), a negative one signed.
    const Value& s = v[kSeed];
    if (s.kind != Kind::kNumber || !IsPlainInteger(s.raw)) return std::nullopt;
    if (!s.raw.empty() && s.raw[0] == '-') {
      const std::optional<int64_t> x = Int64Of(s);
      if (!x) return std::nullopt;
      req.seed = static_cast<uint64_t>(*x);
    } else {
      uint64_t u;
      auto [ptr, ec] = std::from_chars(s.raw.data(), s.raw.data() + s.raw.size(), u);
      if (ec != std::errc() || ptr != s.raw.data() + s.raw.size()) return std::nullopt;
      req.seed = u;
    }
  }
  if (!Absent(v[kStop])) {
    std::string stop;
    if (v[kStop].kind != Kind::kString || !StringField(v[kStop], &stop) || stop.empty()) {
      return std::nullopt;
    }
    req.stop.push_back(std::move(stop));
  }
  std::optional<int32_t> n;
  if (!IntField(v[kN], 1, api::kMaxN, &n)) return std::nullopt;
  if (n) req.n = *n;
  std::optional<int32_t> lp;
  if (!IntField(v[kLogprobs], 0, api::kMaxTopLogprobs, &lp)) return std::nullopt;
  if (lp) {
    req.logprobs = true;
    req.top_logprobs = *lp;
  }
  if (!BoolField(v[kStream], &req.stream)) return std::nullopt;
  if (!Absent(v[kStreamOptions])) return std::nullopt;
  if (!StringField(v[kUser], &req.user)) return std::nullopt;
  if (!BoolField(v[kIgnoreEos], &req.ignore_eos)) return std::nullopt;
  if (!BoolField(v[kReturnTokenIds], &req.return_token_ids)) return std::nullopt;
  std::optional<int32_t> min_tokens;
  if (!IntField(v[kMinTokens], 0, kIntMax, &min_tokens)) return std::nullopt;
  if (min_tokens) req.min_tokens = *min_tokens;
  if (!Absent(v[kPriority])) {
    const Value& p = v[kPriority];
    if (p.kind == Kind::kString && !p.escaped && (p.raw == "interactive" || p.raw == "batch")) {
      req.batch_priority = p.raw == "batch";
    } else if (const std::optional<int64_t> x = Int64Of(p)) {
      req.batch_priority = *x > 0;
    } else {
      return std::nullopt;
    }
  }
  if (!Absent(v[kWeftResume])) return std::nullopt;
  return req;
}

}  // namespace weft::gateway
