// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/ledger.h"

#include <cstdio>
#include <unordered_set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace weft::gateway {

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(LedgerOptions options) {
  if (!options.store) return absl::InvalidArgumentError("usage ledger needs a store");
  std::unique_ptr<Ledger> ledger(new Ledger());
  ledger->warn_ = options.warn;
  ledger->store_ = std::move(options.store);
  WalOptions wal_options;
  wal_options.dir = options.dir;
  wal_options.segment_bytes = options.segment_bytes;
  wal_options.warn = options.warn;
  WEFT_ASSIGN_OR_RETURN(ledger->wal_, Wal::Open(std::move(wal_options)));
  WEFT_ASSIGN_OR_RETURN(ledger->shipper_,
                        Shipper::Open(ledger->wal_.get(), ledger->store_.get(),
                                      {.max_batch_records = options.ship_batch_records,
                                       .retry_initial = absl::Milliseconds(50),
                                       .retry_max = absl::Seconds(5),
                                       .min_interval = options.ship_interval,
                                       .warn = options.warn}));
  if (options.ship_in_background) ledger->shipper_->Start();
  return ledger;
}

Ledger::~Ledger() { (void)Close(); }

absl::Status Ledger::Append(const UsageRecord& record) { return wal_->Append(record); }

void Ledger::AppendAsync(const UsageRecord& record, std::function<void(absl::Status)> done) {
  wal_->AppendAsync(record, std::move(done));
}

absl::Status Ledger::Flush(absl::Duration timeout) { return shipper_->Flush(timeout); }

absl::Status Ledger::ScanAll(int64_t since_unix_ms,
                             const std::function<void(const UsageRecord&)>& fn) {
  return shipper_->WithShippingPaused([&](WalPosition shipped) -> absl::Status {
    // Records from `shipped` on are only in the WAL, except that a crash between a store commit
    // and its checkpoint leaves a batch in both: collect the WAL's ids first and skip them in the
    // store's scan. Duplicates inside the WAL count once (the first, as the store keeps).
    std::vector<UsageRecord> unshipped;
    std::unordered_set<std::string> ids;
    const WalPosition end = wal_->DurableEnd();
    WalPosition pos = shipped;
    while (pos < end) {
      WEFT_ASSIGN_OR_RETURN(WalReadResult batch, wal_->Read(pos, 4096));
      if (batch.records.empty() && batch.next == pos) break;
      for (UsageRecord& r : batch.records) {
        if (ids.insert(r.request_id).second) unshipped.push_back(std::move(r));
      }
      pos = batch.next;
    }
    WEFT_RETURN_IF_ERROR(store_->Scan(since_unix_ms, [&](const UsageRecord& r) {
      if (!ids.contains(r.request_id)) fn(r);
    }));
    for (const UsageRecord& r : unshipped) {
      if (r.time_unix_ms >= since_unix_ms) fn(r);
    }
    return absl::OkStatus();
  });
}

absl::Status Ledger::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  if (!shipper_) return wal_ ? wal_->Close() : absl::OkStatus();  // Open failed half-way
  shipper_->Stop();
  // One last catch-up, without retries: a store that is down now gets the records next time.
  while (shipper_->shipped() < wal_->DurableEnd()) {
    const WalPosition before = shipper_->shipped();
    absl::StatusOr<int64_t> n = shipper_->ShipOnce();
    if (!n.ok()) {
      const std::string msg =
          absl::StrCat("usage ledger: records left in the WAL at close ship on the next start: ",
                       n.status().ToString());
      if (warn_) {
        warn_(msg);
      } else {
        std::fprintf(stderr, "weft ledger: warning: %s\n", msg.c_str());
      }
      break;
    }
    if (shipper_->shipped() == before) break;
  }
  return wal_->Close();
}

std::string LedgerWalDir(std::string_view data_dir) {
  return absl::StrCat(std::string(data_dir), "/ledger-wal");
}
std::string LedgerStorePath(std::string_view data_dir) {
  return absl::StrCat(std::string(data_dir), "/ledger.sqlite");
}

}  // namespace weft::gateway
