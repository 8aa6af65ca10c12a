// SPDX-License-Identifier: Apache-2.0
// DownloadFile: one blocking HTTP(S) GET of a model file into a `.partial` file with libcurl,
// resuming a partial left by an earlier try (Range: bytes=N-; a 206 appends, a 200 starts over),
// then verifying its SHA-256 against the expected one (given, or the X-Linked-Etag / ETag header
// that Hugging Face sends for LFS files). Timeouts on connect and on a stalled transfer, a size
// limit, and errors that say what went wrong (cannot reach the host, 401, 404, cut, mismatch).
// Stateless; safe from any thread (each call has its own curl handle). Blocks for the transfer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace weft::control {

struct DownloadOptions {
  std::string url;
  std::string partial_path;     // bytes accumulate here; resumed when it exists
  std::string bearer_token;     // "" = no Authorization header (HF_TOKEN for gated repos)
  std::string expected_sha256;  // 64 lowercase hex; "" = from the response headers if they say
  int64_t connect_timeout_ms = 10000;  // name resolution + TCP (+ TLS) connect
  int64_t low_speed_bytes_per_s = 1024;
  int64_t low_speed_time_s = 30;         // slower than the above for this long: abort (resumable)
  int64_t max_bytes = int64_t{1} << 40;  // 1 TiB: a sanity limit on the file size
  // Called as bytes arrive: (bytes in the partial file, full size or -1). Return false to cancel.
  std::function<bool(int64_t done, int64_t total)> progress;
};

struct DownloadResult {
  std::string sha256;  // of the whole file, 64 lowercase hex
  int64_t bytes = 0;
  bool verified = false;     // sha256 matched an expected value (given or from the headers)
  int64_t resumed_from = 0;  // bytes that were already in the partial file and kept (206)
};

// On OK the partial file holds the complete, verified file (the caller renames it). Errors:
// Unavailable (host unreachable, timeout, transfer cut: the partial is kept for a resume),
// PermissionDenied (401/403), NotFound (404), DataLoss (checksum mismatch: the partial is deleted),
// ResourceExhausted (larger than max_bytes), Cancelled (progress returned false), Internal.
absl::StatusOr<DownloadResult> DownloadFile(const DownloadOptions& options);

// The SHA-256 named by an ETag-like header value ("\"<64 hex>\"", W/"...", bare), lowercase;
// nullopt when it is not one (a git blob id, an opaque tag). Headers are untrusted input.
std::optional<std::string> Sha256FromEtag(std::string_view value);

// SHA-256 of a file's bytes, 64 lowercase hex; NotFound/Internal when it cannot be read.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

// "https://huggingface.co/{org}/{repo}/resolve/{revision}/{path}", each path segment
// percent-encoded; `endpoint` without a trailing slash is fine either way.
std::string HfResolveUrl(std::string_view endpoint, std::string_view org, std::string_view repo,
                         std::string_view revision, std::string_view path);

}  // namespace weft::control
