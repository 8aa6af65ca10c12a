// SPDX-License-Identifier: Apache-2.0
// MemoryLedgerStore: the in-memory LedgerStore, for tests and as the oracle the SQL stores are
// checked against. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "gateway/metering/ledger_store.h"

namespace weft::gateway {

class MemoryLedgerStore : public LedgerStore {
 public:
  absl::StatusOr<int64_t> Insert(std::span<const UsageRecord> records) override;
  absl::StatusOr<std::vector<UsageRow>> Query(const UsageQuery& query) override;
  absl::Status Scan(int64_t since_unix_ms,
                    const std::function<void(const UsageRecord&)>& fn) override;

  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, UsageRecord> records_;  // by request_id
};

}  // namespace weft::gateway
