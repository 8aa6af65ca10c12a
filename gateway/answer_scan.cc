// SPDX-License-Identifier: Apache-2.0
#include "gateway/answer_scan.h"

#include <algorithm>
#include <array>
#include <limits>
#include <string>

#include "nlohmann/json.hpp"

namespace weft::gateway {
namespace {

using json = nlohmann::json;

int64_t Clamp(uint64_t v) {
  return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
             ? std::numeric_limits<int64_t>::max()
             : static_cast<int64_t>(v);
}

// Tracks the path of the current value down to depth 3 (top object -> usage ->
// prompt_tokens_details); deeper values only move the depth.
class Sax {
 public:
  explicit Sax(std::string_view client_model) : client_model_(client_model) {}

  bool null() { return Scalar(Kind::kOther, 0, {}); }
  bool boolean(bool) { return Scalar(Kind::kOther, 0, {}); }
  bool number_integer(json::number_integer_t v) {
    return v >= 0 ? Scalar(Kind::kCount, static_cast<uint64_t>(v), {})
                  : Scalar(Kind::kOther, 0, {});
  }
  bool number_unsigned(json::number_unsigned_t v) { return Scalar(Kind::kCount, v, {}); }
  bool number_float(json::number_float_t, const std::string&) {
    return Scalar(Kind::kOther, 0, {});
  }
  bool string(std::string& s) { return Scalar(Kind::kString, 0, s); }
  bool binary(json::binary_t&) { return Scalar(Kind::kOther, 0, {}); }

  bool start_object(std::size_t) {
    if (depth_ == 0) {
      top_is_object_ = true;
    } else {
      OnValue(Kind::kObject, 0, {});
    }
    return Enter(true);
  }
  bool end_object() { return Leave(); }
  bool start_array(std::size_t) {
    if (depth_ > 0) OnValue(Kind::kOther, 0, {});
    return Enter(false);
  }
  bool end_array() { return Leave(); }
  bool key(std::string& k) {
    if (depth_ <= kTracked) key_[depth_] = Key(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

  bool ok() const { return top_is_object_; }
  const AnswerFacts& facts() const { return facts_; }

 private:
  static constexpr int kTracked = 3;
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

  bool Scalar(Kind kind, uint64_t v, std::string_view s) {
    if (depth_ == 0) return true;  // a top-level scalar: not an object (ok() stays false)
    OnValue(kind, v, s);
    return true;
  }

  // A value at depth_ (inside the container entered last), under key_[depth_] when that
  // container is an object on the tracked path.
  void OnValue(Kind kind, uint64_t v, std::string_view s) {
    pending_usage_ = false;
    pending_details_ = false;
    if (depth_ > kTracked || !is_object_[depth_] || !on_path_[depth_]) return;
    const K k = key_[depth_];
    if (depth_ == 1) {
      if (k == K::kModel) facts_.model_matches = kind == Kind::kString && s == client_model_;
      if (k == K::kUsage) {
        // A later "usage" replaces an earlier one, as in a parsed document.
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

  bool Enter(bool object) {
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
    return true;
  }
  bool Leave() {
    --depth_;
    return true;
  }

  std::string_view client_model_;
  int depth_ = 0;
  std::array<K, kTracked + 1> key_{};
  std::array<bool, kTracked + 1> is_object_{};
  std::array<bool, kTracked + 1> on_path_{};
  bool pending_usage_ = false;    // the value just begun is the top object's "usage" object
  bool pending_details_ = false;  // ... usage's "prompt_tokens_details" object
  bool top_is_object_ = false;
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
  Sax sax(client_model);
  const bool parsed = json::sax_parse(body.begin(), body.end(), &sax, json::input_format_t::json,
                                      /*strict=*/true);
  if (!parsed || !sax.ok()) return std::nullopt;
  return sax.facts();
}

}  // namespace weft::gateway
