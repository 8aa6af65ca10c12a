// SPDX-License-Identifier: Apache-2.0
// absl::Status helpers: propagation macros used across Weft. Failures from the outside world are
// values (absl::Status / absl::StatusOr); see STYLE.md rule 2.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define WEFT_CONCAT_INNER_(a, b) a##b
#define WEFT_CONCAT_(a, b) WEFT_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define WEFT_RETURN_IF_ERROR(expr)                                    \
  do {                                                                \
    if (absl::Status weft_s_ = (expr); !weft_s_.ok()) return weft_s_; \
  } while (0)

// `WEFT_ASSIGN_OR_RETURN(auto x, F());` declares x from a StatusOr or returns its error.
#define WEFT_ASSIGN_OR_RETURN(lhs, rexpr) \
  WEFT_ASSIGN_OR_RETURN_IMPL_(WEFT_CONCAT_(weft_sor_, __LINE__), lhs, rexpr)
#define WEFT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()
