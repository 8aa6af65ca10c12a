// SPDX-License-Identifier: Apache-2.0
// Invariant checks: WEFT_CHECK is always on, WEFT_DCHECK only in debug builds. For broken
// invariants inside Weft, never for bad input from outside (that is an absl::Status).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace weft::internal {
[[noreturn]] inline void CheckFailed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: WEFT_CHECK failed: %s\n", file, line, expr);
  std::abort();
}
}  // namespace weft::internal

#define WEFT_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) ::weft::internal::CheckFailed(#cond, __FILE__, __LINE__); \
  } while (0)

#ifdef NDEBUG
#define WEFT_DCHECK(cond) \
  do {                    \
  } while (0)
#else
#define WEFT_DCHECK(cond) WEFT_CHECK(cond)
#endif
