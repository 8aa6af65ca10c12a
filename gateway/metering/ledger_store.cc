// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/ledger_store.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gateway/metering/sqlite_ledger_store.h"
#ifdef WEFT_HAVE_POSTGRES
#include "gateway/metering/postgres_ledger_store.h"
#endif

namespace weft::gateway {

absl::StatusOr<std::unique_ptr<LedgerStore>> OpenLedgerStore(std::string_view spec) {
  if (spec.starts_with("postgres://") || spec.starts_with("postgresql://")) {
#ifdef WEFT_HAVE_POSTGRES
    auto store = PostgresLedgerStore::Open(std::string(spec));
    if (!store.ok()) return store.status();
    return std::unique_ptr<LedgerStore>(*std::move(store));
#else
    return absl::UnimplementedError("this weft was built without PostgreSQL (libpq)");
#endif
  }
  if (spec.starts_with("sqlite:")) spec.remove_prefix(7);
  if (spec.empty()) return absl::InvalidArgumentError("empty usage ledger store path");
  auto store = SqliteLedgerStore::Open({.path = std::string(spec)});
  if (!store.ok()) return store.status();
  return std::unique_ptr<LedgerStore>(*std::move(store));
}

std::string UsageGroupOf(const UsageRecord& record, UsageGroupBy group_by) {
  switch (group_by) {
    case UsageGroupBy::kDay:
      // Whole seconds truncated toward zero, as SQLite's `time_unix_ms / 1000` does.
      return absl::FormatTime("%Y-%m-%d", absl::FromUnixSeconds(record.time_unix_ms / 1000),
                              absl::UTCTimeZone());
    case UsageGroupBy::kDeployment:
      return record.deployment;
    case UsageGroupBy::kKey:
      return record.key_id;
    case UsageGroupBy::kTenant:
      return record.tenant;
  }
  return "";
}

std::string_view UsageGroupByName(UsageGroupBy group_by) {
  switch (group_by) {
    case UsageGroupBy::kDay:
      return "day";
    case UsageGroupBy::kDeployment:
      return "deployment";
    case UsageGroupBy::kKey:
      return "key";
    case UsageGroupBy::kTenant:
      return "tenant";
  }
  return "";
}

bool ParseUsageGroupBy(std::string_view name, UsageGroupBy* out) {
  for (UsageGroupBy by :
       {UsageGroupBy::kDay, UsageGroupBy::kDeployment, UsageGroupBy::kKey, UsageGroupBy::kTenant}) {
    if (name == UsageGroupByName(by)) {
      *out = by;
      return true;
    }
  }
  return false;
}

}  // namespace weft::gateway
