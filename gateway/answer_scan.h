// SPDX-License-Identifier: Apache-2.0
// ScanAnswer: what the gateway needs from a replica's non-streaming JSON answer (its "model" and
// its "usage"), read in one pass that also validates the bytes, without building a document or
// copying strings. It accepts exactly what nlohmann's strict parser accepts (the reference, checked
// by answer_scan_test.cc and gateway_sse_fuzzer) at about a tenth of its cost
// (answer_scan_benchmark). A replica is untrusted: any bytes give an answer or nullopt, never an
// exception; fields of the wrong type count as absent. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace weft::gateway {

struct AnswerFacts {
  // "model" is absent or is the string `client_model`: the bytes can go to the client as they are.
  bool model_matches = true;
  bool has_usage = false;         // "usage" is an object
  int64_t prompt_tokens = 0;      // usage.prompt_tokens
  int64_t completion_tokens = 0;  // usage.completion_tokens
  int64_t cached_tokens = 0;      // usage.prompt_tokens_details.cached_tokens
};

// nullopt when `body` is not one JSON object (invalid JSON included). Numbers that are not
// non-negative integers (floats, negatives, strings) read as 0; a top-level key given twice: the
// last one counts (as in a parsed document).
std::optional<AnswerFacts> ScanAnswer(std::string_view body, std::string_view client_model);

// True when `body` is one JSON object by the same rules (what nlohmann's strict parser accepts).
bool IsJsonObject(std::string_view body);

// The decoded text of a JSON string's contents (between its quotes) that a scan here validated:
// escapes resolved, \u pairs joined into UTF-8.
std::string UnescapeJsonString(std::string_view raw);

// The same rule for an answer already parsed (the streaming path parses each event to rewrite
// it): `obj[key]` when it is a non-negative integer (clamped to int64), else 0.
int64_t CountField(const nlohmann::ordered_json& obj, std::string_view key);

}  // namespace weft::gateway
