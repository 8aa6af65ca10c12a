// SPDX-License-Identifier: Apache-2.0
// ScanCompletionRequest: the gateway's fast path for the common /v1/completions body, read in one
// validating pass plus one walk over its top-level members, without building a JSON document
// (nlohmann's parse and the parser's lookups were the largest part of a proxied request's own
// work). It gives exactly what api::ParseCompletionRequestJson gives for the same bytes, or
// nullopt where it declines, and then the caller parses as before:
//   - a body that is not one valid JSON object (the parser's error is the one to give);
//   - a member the parser reads holding an array or object (an array prompt, stop, logit_bias,
//     stream_options, weft_resume), or a value the parser would reject (wrong type, out of range,
//     a missing prompt);
//   - a number the parser reads that is not a plain integer where it wants one.
// Members the parser does not read are validated and skipped, whatever they hold; a member given
// twice counts with its last value, as in a parsed document. Checked against the parser by
// request_scan_test.cc and gateway_request_fuzzer. Pure; thread-safe.
#pragma once

#include <optional>
#include <string_view>

#include "api/openai.h"

namespace weft::gateway {

// For the /v1/completions endpoint (chat requests always decline: their messages are arrays).
std::optional<api::CompletionRequest> ScanCompletionRequest(std::string_view body);

}  // namespace weft::gateway
