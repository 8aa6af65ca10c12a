// SPDX-License-Identifier: Apache-2.0
// The replica load report on the wire (GET /weft/v1/load): what an engine publishes and what a
// gateway's balancer reads. A plain value with JSON serialization and a tolerant parser (unknown
// fields ignored, missing ones default). Prefix digests travel as 16-digit hex strings so that no
// JSON reader rounds them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace weft::api {

struct LoadReport {
  std::string model;  // the served model id
  bool ready = false;
  int32_t running = 0;
  int32_t waiting = 0;
  int64_t tokens_in_flight = 0;
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_free = 0;
  int32_t kv_block_size = 0;  // tokens per block
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;
  std::vector<std::string> adapters;
  std::vector<uint64_t> prefix_digest;
  int64_t prefix_hit_tokens = 0;
  int64_t step_count = 0;
  // Time to first token of recent requests (the engine's window: the last 60 s, at most 256
  // requests), measured from arrival at the engine. 0 / 0 when there were none.
  double ttft_p95_ms = 0;
  int32_t ttft_samples = 0;
};

nlohmann::ordered_json LoadReportJson(const LoadReport& report);
// InvalidArgument for a body that is not a JSON object or has a field of the wrong type.
absl::StatusOr<LoadReport> ParseLoadReport(std::string_view body);

}  // namespace weft::api
