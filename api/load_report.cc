// SPDX-License-Identifier: Apache-2.0
#include "api/load_report.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/json_number.h"

namespace weft::api {

using json = nlohmann::ordered_json;

namespace {

// A replica's number, checked before it is converted: an integer field takes an integer in its
// type's range (or a float with an integral value, as some JSON writers send 2.0), a float field
// any finite number. Anything else (1e300 into an int32_t, NaN or an overflow to inf) is refused
// rather than converted with undefined behavior or written back as null.
template <typename T>
bool ReadNumber(const json& v, T* out) {
  if (!v.is_number()) return false;
  if constexpr (std::is_integral_v<T>) {
    if (v.is_number_integer()) {  // signed or unsigned
      const std::optional<T> i = JsonInteger<T>(v);
      if (i) *out = *i;
      return i.has_value();
    }
    const double d = v.get<double>();
    // The bounds are exact in double for int32_t and int64_t: [min, max + 1).
    constexpr double kLow = static_cast<double>(std::numeric_limits<T>::min());
    constexpr double kHigh = -kLow;
    if (!std::isfinite(d) || d != std::trunc(d) || d < kLow || d >= kHigh) return false;
    *out = static_cast<T>(d);
    return true;
  } else {
    const double d = v.get<double>();
    if (!std::isfinite(d)) return false;
    *out = d;
    return true;
  }
}

}  // namespace

json LoadReportJson(const LoadReport& r) {
  json digest = json::array();
  for (uint64_t d : r.prefix_digest) digest.push_back(absl::StrFormat("%016x", d));
  return {{"model", r.model},
          {"ready", r.ready},
          {"running", r.running},
          {"waiting", r.waiting},
          {"tokens_in_flight", r.tokens_in_flight},
          {"kv_blocks_total", r.kv_blocks_total},
          {"kv_blocks_free", r.kv_blocks_free},
          {"kv_block_size", r.kv_block_size},
          {"prefill_tokens_per_s", r.prefill_tokens_per_s},
          {"decode_tokens_per_s", r.decode_tokens_per_s},
          {"adapters", r.adapters},
          {"prefix_digest", std::move(digest)},
          {"prefix_hit_tokens", r.prefix_hit_tokens},
          {"step_count", r.step_count},
          {"ttft_p95_ms", r.ttft_p95_ms},
          {"ttft_samples", r.ttft_samples}};
}

absl::StatusOr<LoadReport> ParseLoadReport(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("load report: not a JSON object");
  LoadReport r;
  auto bad = [](const char* key) {
    return absl::InvalidArgumentError(absl::StrCat("load report: bad '", key, "'"));
  };
  auto num = [&](const char* key, auto* out) -> bool {
    auto it = j.find(key);
    if (it == j.end()) return true;
    return ReadNumber(*it, out);
  };
  if (auto it = j.find("model"); it != j.end()) {
    if (!it->is_string()) return bad("model");
    r.model = it->get<std::string>();
  }
  if (auto it = j.find("ready"); it != j.end()) {
    if (!it->is_boolean()) return bad("ready");
    r.ready = it->get<bool>();
  }
  if (!num("running", &r.running)) return bad("running");
  if (!num("waiting", &r.waiting)) return bad("waiting");
  if (!num("tokens_in_flight", &r.tokens_in_flight)) return bad("tokens_in_flight");
  if (!num("kv_blocks_total", &r.kv_blocks_total)) return bad("kv_blocks_total");
  if (!num("kv_blocks_free", &r.kv_blocks_free)) return bad("kv_blocks_free");
  if (!num("kv_block_size", &r.kv_block_size)) return bad("kv_block_size");
  if (!num("prefill_tokens_per_s", &r.prefill_tokens_per_s)) return bad("prefill_tokens_per_s");
  if (!num("decode_tokens_per_s", &r.decode_tokens_per_s)) return bad("decode_tokens_per_s");
  if (!num("prefix_hit_tokens", &r.prefix_hit_tokens)) return bad("prefix_hit_tokens");
  if (!num("step_count", &r.step_count)) return bad("step_count");
  if (!num("ttft_p95_ms", &r.ttft_p95_ms)) return bad("ttft_p95_ms");
  if (!num("ttft_samples", &r.ttft_samples)) return bad("ttft_samples");
  if (r.ttft_p95_ms < 0 || r.ttft_samples < 0) return bad("ttft_p95_ms");
  if (auto it = j.find("adapters"); it != j.end()) {
    if (!it->is_array()) return bad("adapters");
    for (const json& a : *it) {
      if (!a.is_string()) return bad("adapters");
      r.adapters.push_back(a.get<std::string>());
    }
  }
  if (auto it = j.find("prefix_digest"); it != j.end()) {
    if (!it->is_array()) return bad("prefix_digest");
    for (const json& d : *it) {
      if (!d.is_string()) return bad("prefix_digest");
      const std::string& s = d.get_ref<const std::string&>();
      uint64_t v = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
      if (ec != std::errc() || ptr != s.data() + s.size()) return bad("prefix_digest");
      r.prefix_digest.push_back(v);
    }
  }
  return r;
}

}  // namespace weft::api
