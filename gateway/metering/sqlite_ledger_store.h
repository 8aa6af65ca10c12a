// SPDX-License-Identifier: Apache-2.0
// SqliteLedgerStore: the ledger in one SQLite file (WAL journal mode, busy timeout so other
// processes such as `weft usage` can read at the same time). Inserts commit with
// synchronous=NORMAL: visible at once and safe from a crash of the process, but not flushed to the
// device; Sync() commits one small transaction with synchronous=FULL, whose fsync of SQLite's WAL
// file makes every earlier commit durable too. The shipper syncs before its checkpoint moves, so a
// power loss loses nothing the usage WAL no longer holds, and the device sees one flush per sync
// instead of one per batch (each flush here delays the usage WAL's group commits). One connection behind a mutex. The
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
  absl::Status Sync() override;

  // The plan SQLite picks for Query(query), one line per step ("SEARCH usage_records USING
  // INDEX ..."): for diagnostics and for the test that one tenant's query uses its index.
  absl::StatusOr<std::string> ExplainQuery(const UsageQuery& query);

 private:
  explicit SqliteLedgerStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  absl::Status Error(std::string_view what) const;

  std::mutex mu_;  // guards every use of db_ (opened NOMUTEX)
  sqlite3* db_;
  bool unsynced_ = false;  // guarded by mu_: a commit since the last Sync
};

}  // namespace weft::gateway
