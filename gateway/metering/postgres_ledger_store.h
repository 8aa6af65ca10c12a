// SPDX-License-Identifier: Apache-2.0
// PostgresLedgerStore: the ledger in PostgreSQL (libpq), for a fleet of gateways sharing one
// store. Built only when PostgreSQL was found (WEFT_HAVE_POSTGRES). One connection behind a mutex,
// re-established once per call if it dropped.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "gateway/metering/ledger_store.h"

typedef struct pg_conn PGconn;

namespace weft::gateway {

class PostgresLedgerStore : public LedgerStore {
 public:
  // Connects with a libpq connection string or URL and creates the schema if needed.
  // Unavailable when the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<PostgresLedgerStore>> Open(const std::string& conninfo);
  ~PostgresLedgerStore() override;

  absl::StatusOr<int64_t> Insert(std::span<const UsageRecord> records) override;
  absl::StatusOr<std::vector<UsageRow>> Query(const UsageQuery& query) override;
  absl::Status Scan(int64_t since_unix_ms,
                    const std::function<void(const UsageRecord&)>& fn) override;

 private:
  explicit PostgresLedgerStore(PGconn* conn) : conn_(conn) {}
  absl::Status EnsureConnected();

  std::mutex mu_;
  PGconn* conn_;
};

}  // namespace weft::gateway
