// SPDX-License-Identifier: Apache-2.0
// Usage report output: an aligned text table and JSON, from LedgerStore::Query rows. Pure.
#pragma once

#include <span>
#include <string>

#include "gateway/metering/ledger_store.h"

namespace weft::gateway {

// Columns: the group (headed DAY, DEPLOYMENT, KEY or TENANT), REQUESTS, PROMPT_TOKENS,
// CACHED_TOKENS, COMPLETION_TOKENS; numbers right-aligned; a TOTAL line last.
std::string FormatUsageTable(std::span<const UsageRow> rows, UsageGroupBy group_by);

// {"group_by": "day", "rows": [{"group", "requests", "prompt_tokens", "cached_tokens",
//  "completion_tokens"}...], "total": {...same counters}}
std::string FormatUsageJson(std::span<const UsageRow> rows, UsageGroupBy group_by);

}  // namespace weft::gateway
