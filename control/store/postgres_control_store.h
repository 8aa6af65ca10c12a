// SPDX-License-Identifier: Apache-2.0
// PostgresControlStore: the control store in PostgreSQL (libpq), shared by several `weft control`
// instances (one leader, see leader_elector.h). Built only when PostgreSQL was found
// (WEFT_HAVE_POSTGRES). One connection behind a mutex, held for each whole transaction and
// re-established once per call if it dropped. Writers serialise on one revision row.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "control/store/control_store.h"
#include "control/store/row_store.h"

typedef struct pg_conn PGconn;

namespace weft::control {

class PostgresControlStore : public ControlStore {
 public:
  // Connects with a libpq connection string or URL ("postgres://user@host/db") and creates the
  // schema if needed. Unavailable when the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<PostgresControlStore>> Open(
      const std::string& conninfo, ControlStoreOptions options = {});
  ~PostgresControlStore() override;

  absl::Status Transaction(const TxnFn& fn) override;
  absl::StatusOr<int64_t> Revision() override;
  absl::StatusOr<int64_t> WaitForRevision(int64_t after, int64_t timeout_ms) override;
  absl::StatusOr<std::vector<EventRecord>> ListEvents(const EventQuery& query) override;

 private:
  class RowTxn;
  PostgresControlStore(PGconn* conn, ControlStoreOptions options)
      : conn_(conn), options_(std::move(options)) {}
  absl::Status EnsureConnected();

  std::mutex mu_;
  PGconn* conn_;
  const ControlStoreOptions options_;
  internal::RevisionWaiter waiter_;
};

}  // namespace weft::control
