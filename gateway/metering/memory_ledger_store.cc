// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/memory_ledger_store.h"

#include <algorithm>
#include <tuple>

namespace weft::gateway {

absl::StatusOr<int64_t> MemoryLedgerStore::Insert(std::span<const UsageRecord> records) {
  std::lock_guard lock(mu_);
  int64_t added = 0;
  for (const UsageRecord& r : records) added += records_.emplace(r.request_id, r).second ? 1 : 0;
  return added;
}

absl::StatusOr<std::vector<UsageRow>> MemoryLedgerStore::Query(const UsageQuery& query) {
  std::lock_guard lock(mu_);
  std::map<std::string, UsageRow> groups;
  for (const auto& [id, r] : records_) {
    if (r.time_unix_ms < query.since_unix_ms || r.time_unix_ms >= query.until_unix_ms) continue;
    if (!query.tenant.empty() && r.tenant != query.tenant) continue;
    if (!query.deployment.empty() && r.deployment != query.deployment) continue;
    const std::string group = UsageGroupOf(r, query.group_by);
    UsageRow& row = groups[group];
    row.group = group;
    row.requests += 1;
    row.prompt_tokens += r.prompt_tokens;
    row.cached_tokens += r.cached_tokens;
    row.completion_tokens += r.completion_tokens;
  }
  std::vector<UsageRow> rows;
  for (auto& [group, row] : groups) rows.push_back(std::move(row));
  return rows;
}

absl::Status MemoryLedgerStore::Scan(int64_t since_unix_ms,
                                     const std::function<void(const UsageRecord&)>& fn) {
  std::vector<const UsageRecord*> matching;
  std::lock_guard lock(mu_);
  for (const auto& [id, r] : records_) {
    if (r.time_unix_ms >= since_unix_ms) matching.push_back(&r);
  }
  std::sort(matching.begin(), matching.end(), [](const UsageRecord* a, const UsageRecord* b) {
    return std::tie(a->time_unix_ms, a->request_id) < std::tie(b->time_unix_ms, b->request_id);
  });
  for (const UsageRecord* r : matching) fn(*r);
  return absl::OkStatus();
}

size_t MemoryLedgerStore::size() const {
  std::lock_guard lock(mu_);
  return records_.size();
}

}  // namespace weft::gateway
