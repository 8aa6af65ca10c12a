// SPDX-License-Identifier: Apache-2.0
// Cat(...): absl::StrCat that also takes std::string_view (Debian's Abseil keeps its own
// absl::string_view, which std::string_view does not convert to). Internal to engine/model.
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace weft::model {

inline absl::string_view CatArg(std::string_view s) { return {s.data(), s.size()}; }
template <typename T>
const T& CatArg(const T& v) {
  return v;
}
template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(CatArg(args)...);
}

}  // namespace weft::model
