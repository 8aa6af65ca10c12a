// SPDX-License-Identifier: Apache-2.0
// Integers read from JSON bodies (untrusted input), range-checked before any conversion:
// nlohmann's get<T>() silently wraps a value outside T, and converting a float outside T is
// undefined behavior. Works with nlohmann::json and nlohmann::ordered_json. Header-only.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>

namespace weft::api {

// A JSON integer (not a float, not even 2.0) that fits T; nullopt for anything else.
template <typename T, typename Json>
std::optional<T> JsonInteger(const Json& v) {
  static_assert(std::is_integral_v<T> && std::is_signed_v<T>);
  if (v.is_number_unsigned()) {
    const auto u = v.template get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return std::nullopt;
    return static_cast<T>(u);
  }
  if (!v.is_number_integer()) return std::nullopt;
  const auto i = v.template get<int64_t>();
  if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) return std::nullopt;
  return static_cast<T>(i);
}

}  // namespace weft::api
