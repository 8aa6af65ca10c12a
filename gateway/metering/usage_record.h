// SPDX-License-Identifier: Apache-2.0
// UsageRecord: what the gateway bills for one request. One record per request id, written to the
// ledger (WAL, then the store) when the request ends. Plain value type; no threads, no I/O.
#pragma once

#include <cstdint>
#include <string>

namespace weft::gateway {

struct UsageRecord {
  std::string request_id;   // unique per client request (the idempotency key in the store)
  std::string tenant;       // tenant id
  std::string key_id;       // API key id (never the key itself)
  std::string deployment;   // deployment name the client asked for
  std::string adapter;      // "" for the base model
  std::string replica;      // replica id that produced the last token ("" if none was reached)
  std::string provider;     // provider of that replica
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;      // of prompt_tokens, served from the prefix cache
  int64_t completion_tokens = 0;  // generated and sent to the client (a cut stream: what was sent)
  int status = 200;               // HTTP status the client saw (499: client went away)
  double ttft_ms = 0;             // gateway receive -> first token sent; 0 if none
  double duration_ms = 0;         // gateway receive -> end
  int64_t time_unix_ms = 0;       // when the request ended (UTC, ms since the epoch)

  friend bool operator==(const UsageRecord&, const UsageRecord&) = default;
};

}  // namespace weft::gateway
