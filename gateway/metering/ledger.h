// SPDX-License-Identifier: Apache-2.0
// Ledger: the gateway's usage ledger. Append() makes a record durable in the local WAL (group
// commit); a background Shipper moves records to the LedgerStore, exactly once per request id.
// The Ledger owns the WAL, the shipper and the store. Thread-safe; one Ledger per WAL directory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/metering/ledger_store.h"
#include "gateway/metering/shipper.h"
#include "gateway/metering/usage_record.h"
#include "gateway/metering/wal.h"

namespace weft::gateway {

struct LedgerOptions {
  std::string dir{};                     // the WAL directory (created if missing)
  std::unique_ptr<LedgerStore> store{};  // where records are shipped (required)
  uint64_t segment_bytes = 64 << 20;     // WAL segment size
  size_t ship_batch_records = 2000;      // records per store transaction
  bool ship_in_background = true;        // false: records move only on Flush() (tests, tools)
  // Background shipping runs at most this often (store commit + checkpoint fsync per round), so
  // a busy gateway ships in few large batches; Flush() does not wait for it.
  absl::Duration ship_interval = absl::Milliseconds(200);
  std::function<void(std::string_view)> warn{};  // recovery and shipping warnings; default stderr
};

class Ledger {
 public:
  // Opens the WAL (recovering a torn tail with a warning; DataLoss for damage elsewhere), reads
  // the shipping checkpoint and starts shipping.
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(LedgerOptions options);
  ~Ledger();  // Close()
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Appends one record; returns once it is durable on local disk. Blocks about one fdatasync,
  // shared with concurrent callers. Call before acknowledging the request's final chunk.
  absl::Status Append(const UsageRecord& record);
  // The same without blocking: `done` runs once the record is durable (or with the error), on the
  // WAL's writer thread; see Wal::AppendAsync. For event loops (the gateway's finish step).
  void AppendAsync(const UsageRecord& record, std::function<void(absl::Status)> done);

  // Waits until everything appended so far is in the store. DeadlineExceeded on timeout (the
  // records stay durable in the WAL and ship later).
  absl::Status Flush(absl::Duration timeout = absl::InfiniteDuration());

  // Calls `fn` once per request id for every record with time_unix_ms >= since_unix_ms, whether
  // it is already in the store or still only in the WAL (for rebuilding quota counters after a
  // restart). Shipping pauses meanwhile; records appended during the scan may be left out.
  absl::Status ScanAll(int64_t since_unix_ms, const std::function<void(const UsageRecord&)>& fn);

  // Stops shipping after one last attempt to catch up (records that do not make it stay in the
  // WAL for the next Open) and closes the WAL. Appends afterwards fail. Idempotent.
  absl::Status Close();

  LedgerStore& store() { return *store_; }
  const WalRecoveryReport& recovery() const { return wal_->recovery(); }

 private:
  Ledger() = default;

  std::function<void(std::string_view)> warn_;
  std::unique_ptr<LedgerStore> store_;
  std::unique_ptr<Wal> wal_;
  std::unique_ptr<Shipper> shipper_;
  bool closed_ = false;
};

// The data directory layout `weft gateway --data DIR` and `weft usage --data DIR` share.
std::string LedgerWalDir(std::string_view data_dir);     // DIR/ledger-wal
std::string LedgerStorePath(std::string_view data_dir);  // DIR/ledger.sqlite

}  // namespace weft::gateway
