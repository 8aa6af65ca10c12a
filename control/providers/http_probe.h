// SPDX-License-Identifier: Apache-2.0
// HttpProbe: one blocking HTTP/1.1 GET with an overall deadline, for readiness checks of engines
// (GET /health) by providers. New connection per call, reads only the status line. Thread-safe
// (no shared state).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace weft::control {

// The HTTP status code of GET `path` on host:port (host: an IP literal or a name). Unavailable when
// nothing answers, DeadlineExceeded after timeout_ms, Internal on a malformed reply. Blocks up to
// timeout_ms.
absl::StatusOr<int> HttpGetStatus(const std::string& host, uint16_t port, const std::string& path,
                                  int timeout_ms);

}  // namespace weft::control
