// SPDX-License-Identifier: Apache-2.0
// LedgerStore: where usage records end up (SQLite on one machine, PostgreSQL in a fleet), keyed
// by request_id so that shipping the same record twice stores it once. Implementations own their
// connection and are thread-safe; every method blocks on the database.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gateway/metering/usage_record.h"

namespace weft::gateway {

enum class UsageGroupBy { kDay, kDeployment, kKey, kTenant };

// A usage report: records with since_unix_ms <= time_unix_ms < until_unix_ms, optionally of one
// tenant and/or deployment, summed per group (a UTC day "YYYY-MM-DD", a deployment, a key id or a
// tenant).
struct UsageQuery {
  std::string tenant{};      // "" = every tenant
  std::string deployment{};  // "" = every deployment
  int64_t since_unix_ms = 0;
  int64_t until_unix_ms = std::numeric_limits<int64_t>::max();
  UsageGroupBy group_by = UsageGroupBy::kDay;
};

struct UsageRow {
  std::string group{};
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t completion_tokens = 0;
  friend bool operator==(const UsageRow&, const UsageRow&) = default;
};

class LedgerStore {
 public:
  virtual ~LedgerStore() = default;

  // Stores `records` in one transaction, skipping any whose request_id is already stored (the
  // first version wins: INSERT ... ON CONFLICT DO NOTHING). Returns how many were new. On error
  // nothing of this call is stored. Once it returns, the records are visible to every reader and
  // survive a crash of this process; a store may defer making them survive a power loss until
  // Sync().
  virtual absl::StatusOr<int64_t> Insert(std::span<const UsageRecord> records) = 0;

  // Makes every Insert that has returned durable (it survives a power loss). The default is for
  // stores whose commits are durable already (PostgreSQL with synchronous_commit on, memory).
  virtual absl::Status Sync() { return absl::OkStatus(); }

  // Sums matching records per group, ordered by group (bytewise).
  virtual absl::StatusOr<std::vector<UsageRow>> Query(const UsageQuery& query) = 0;

  // Calls `fn` for every record with time_unix_ms >= since_unix_ms, in time order (for rebuilding
  // quota counters). `fn` must not call back into the store.
  virtual absl::Status Scan(int64_t since_unix_ms,
                            const std::function<void(const UsageRecord&)>& fn) = 0;
};

// Opens a store from a spec: "postgres://..." or "postgresql://..." (a libpq URL; Unimplemented
// when built without PostgreSQL), else a SQLite file path (an optional "sqlite:" prefix).
absl::StatusOr<std::unique_ptr<LedgerStore>> OpenLedgerStore(std::string_view spec);

// The group a record falls in (what the SQL stores compute), and the names of the groupings.
std::string UsageGroupOf(const UsageRecord& record, UsageGroupBy group_by);
std::string_view UsageGroupByName(UsageGroupBy group_by);  // "day", "deployment", "key", "tenant"
bool ParseUsageGroupBy(std::string_view name, UsageGroupBy* out);

}  // namespace weft::gateway
