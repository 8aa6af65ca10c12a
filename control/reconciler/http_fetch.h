// SPDX-License-Identifier: Apache-2.0
// HttpFetch: one blocking HTTP/1.1 request over a new connection with an overall deadline
// (Boost.Beast on a private io_context). For the control loop's load probes (GET /weft/v1/load)
// and the CLI's calls of the control API. Thread-safe (no shared state).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::control {

struct FetchResponse {
  int status = 0;
  std::string body;
};

struct FetchRequest {
  std::string method = "GET";
  std::string url;  // "http://host:port/path?query" (plain HTTP only)
  std::string body;
  std::string content_type = "application/json";  // sent when body is non-empty
  std::string bearer_token;                       // Authorization: Bearer <token> when set
  int timeout_ms = 2000;
};

// InvalidArgument for a malformed url, Unavailable when nothing answers, DeadlineExceeded after
// timeout_ms.
absl::StatusOr<FetchResponse> HttpFetch(const FetchRequest& request);

// Splits "http://host:port/path" into host, port (default 80) and path+query ("/" when none).
absl::Status SplitHttpUrl(const std::string& url, std::string* host, std::string* port,
                          std::string* target);

}  // namespace weft::control
