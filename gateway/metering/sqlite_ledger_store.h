// SPDX-License-Identifier: Apache-2.0
// SqliteLedgerStore: the ledger in one SQLite file (WAL journal mode, synchronous=FULL so a
// committed batch survives power loss before the shipper's checkpoint moves, busy timeout so other
// processes such as `weft usage` can read at the same time). One connection behind a mutex. The
// table is keyed by request id itself (WITHOUT ROWID: one B-tree fewer per record than a rowid
// table with a unique index); files made before keep their schema and work the same.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "gateway/metering/ledger_store.h"

struct sqlite3;

namespace weft::gateway {

struct SqliteLedgerStoreOptions {
  std::string path{};             // the database file
  bool create_if_missing = true;  // false: NotFound when the file does not exist
  int busy_timeout_ms = 5000;
};

class SqliteLedgerStore : public LedgerStore {
 public:
  // Opens the file and creates the schema if needed.
  static absl::StatusOr<std::unique_ptr<SqliteLedgerStore>> Open(SqliteLedgerStoreOptions options);
  ~SqliteLedgerStore() override;

  absl::StatusOr<int64_t> Insert(std::span<const UsageRecord> records) override;
  absl::StatusOr<std::vector<UsageRow>> Query(const UsageQuery& query) override;
  absl::Status Scan(int64_t since_unix_ms,
                    const std::function<void(const UsageRecord&)>& fn) override;

 private:
  explicit SqliteLedgerStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  absl::Status Error(std::string_view what) const;

  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace weft::gateway
