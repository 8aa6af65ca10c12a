// SPDX-License-Identifier: Apache-2.0
// SqliteControlStore: the control store in one SQLite file (WAL journal, synchronous=FULL, busy
// timeout so `weft` CLI processes can use the same file). One connection behind a mutex, held for
// each whole transaction; write transactions are BEGIN IMMEDIATE so processes serialise cleanly.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "control/store/control_store.h"
#include "control/store/row_store.h"

struct sqlite3;

namespace weft::control {

struct SqliteControlStoreOptions {
  std::string path{};           // the database file; its directory must exist
  int busy_timeout_ms = 10000;  // how long to wait for another process's write transaction
  ControlStoreOptions store{};
};

class SqliteControlStore : public ControlStore {
 public:
  // Opens (creating if needed) the file and its schema. Unavailable when it cannot be opened.
  static absl::StatusOr<std::unique_ptr<SqliteControlStore>> Open(
      SqliteControlStoreOptions options);
  ~SqliteControlStore() override;

  absl::Status Transaction(const TxnFn& fn) override;
  absl::StatusOr<int64_t> Revision() override;
  absl::StatusOr<int64_t> WaitForRevision(int64_t after, int64_t timeout_ms) override;
  absl::StatusOr<std::vector<EventRecord>> ListEvents(const EventQuery& query) override;

 private:
  class RowTxn;
  SqliteControlStore(sqlite3* db, SqliteControlStoreOptions options)
      : db_(db), options_(std::move(options)) {}
  absl::Status Exec(const char* sql);
  absl::Status Error(std::string_view what) const;

  std::mutex mu_;
  sqlite3* db_;
  const SqliteControlStoreOptions options_;
  internal::RevisionWaiter waiter_;
};

}  // namespace weft::control
