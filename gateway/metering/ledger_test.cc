// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/ledger.h"

#include <atomic>
#include <map>
#include <thread>

#include "gateway/metering/memory_ledger_store.h"
#include "gateway/metering/metering_testing.h"
#include "gateway/metering/sqlite_ledger_store.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

using testing::ScopedTempDir;
using testing::TestRecord;

std::unique_ptr<LedgerStore> Sqlite(const std::string& path) {
  return SqliteLedgerStore::Open({.path = path}).value();
}

std::unique_ptr<Ledger> OpenLedger(const std::string& data, bool background = true) {
  auto ledger = Ledger::Open({.dir = LedgerWalDir(data),
                              .store = Sqlite(LedgerStorePath(data)),
                              .segment_bytes = 4096,
                              .ship_batch_records = 64,
                              .ship_in_background = background});
  EXPECT_TRUE(ledger.ok()) << ledger.status();
  return ledger.ok() ? *std::move(ledger) : nullptr;
}

std::map<std::string, int> ScanAllIds(Ledger& ledger, int64_t since = INT64_MIN) {
  std::map<std::string, int> seen;
  EXPECT_TRUE(ledger.ScanAll(since, [&](const UsageRecord& r) { seen[r.request_id]++; }).ok());
  return seen;
}

TEST(LedgerTest, AppendFlushQueryAcrossRestarts) {
  ScopedTempDir data;
  {
    auto ledger = OpenLedger(data.path());
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(ledger->Append(TestRecord(i)).ok());
    ASSERT_TRUE(ledger->Flush().ok());
    auto rows = ledger->store().Query({.group_by = UsageGroupBy::kTenant});
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 3u);
    EXPECT_EQ((*rows)[0].requests + (*rows)[1].requests + (*rows)[2].requests, 50);
    for (int i = 50; i < 60; ++i) ASSERT_TRUE(ledger->Append(TestRecord(i)).ok());
    ASSERT_TRUE(ledger->Close().ok());  // ships the rest
    EXPECT_EQ(ledger->Append(TestRecord(99)).code(), absl::StatusCode::kFailedPrecondition);
  }
  auto ledger = OpenLedger(data.path());
  const auto seen = ScanAllIds(*ledger);
  EXPECT_EQ(seen.size(), 60u);
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
}

TEST(LedgerTest, ConcurrentAppendersWithBackgroundShipping) {
  ScopedTempDir data;
  auto ledger = OpenLedger(data.path());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) EXPECT_TRUE(ledger->Append(TestRecord(t * 50 + i)).ok());
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(ledger->Flush(absl::Seconds(20)).ok());
  auto rows = ledger->store().Query({.group_by = UsageGroupBy::kDeployment});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].requests, 200);
  EXPECT_EQ((*rows)[1].requests, 200);
}

// Quota counters are rebuilt from ScanAll: records in the store, records only in the WAL, and
// records in both (a crash between store commit and checkpoint) each come exactly once.
TEST(LedgerTest, ScanAllSeesShippedAndUnshippedRecordsOnce) {
  ScopedTempDir data;
  auto ledger = OpenLedger(data.path(), /*background=*/false);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(ledger->Append(TestRecord(i)).ok());
  ASSERT_TRUE(ledger->Flush().ok());  // 0..29 in the store
  for (int i = 30; i < 60; ++i) ASSERT_TRUE(ledger->Append(TestRecord(i)).ok());  // WAL only
  // 30..39 also reached the store, but the checkpoint never moved.
  std::vector<UsageRecord> both;
  for (int i = 30; i < 40; ++i) both.push_back(TestRecord(i));
  ASSERT_TRUE(ledger->store().Insert(both).ok());
  // A duplicate id inside the WAL (a retried append) counts once too.
  ASSERT_TRUE(ledger->Append(TestRecord(45)).ok());

  auto seen = ScanAllIds(*ledger);
  ASSERT_EQ(seen.size(), 60u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(seen[TestRecord(i).request_id], 1) << i;

  // `since` filters both halves.
  seen = ScanAllIds(*ledger, TestRecord(25).time_unix_ms);
  EXPECT_EQ(seen.size(), 35u);
  EXPECT_EQ(seen.count(TestRecord(24).request_id), 0u);

  ASSERT_TRUE(ledger->Flush().ok());
  seen = ScanAllIds(*ledger);
  EXPECT_EQ(seen.size(), 60u);
  int64_t rows = 0;
  ASSERT_TRUE(ledger->store().Scan(INT64_MIN, [&](const UsageRecord&) { rows++; }).ok());
  EXPECT_EQ(rows, 60);
}

TEST(LedgerTest, OpenErrors) {
  ScopedTempDir data;
  EXPECT_EQ(Ledger::Open({.dir = data.path()}).status().code(), absl::StatusCode::kInvalidArgument);
  auto ledger = OpenLedger(data.path());
  auto second = Ledger::Open(
      {.dir = LedgerWalDir(data.path()), .store = std::make_unique<MemoryLedgerStore>()});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
}

TEST(LedgerTest, CloseWithTheStoreDownKeepsRecordsForNextTime) {
  ScopedTempDir data;
  class DownStore : public MemoryLedgerStore {
   public:
    absl::StatusOr<int64_t> Insert(std::span<const UsageRecord>) override {
      return absl::UnavailableError("down");
    }
  };
  std::vector<std::string> warnings;
  {
    auto ledger = Ledger::Open({.dir = LedgerWalDir(data.path()),
                                .store = std::make_unique<DownStore>(),
                                .ship_in_background = false,
                                .warn = [&](std::string_view w) { warnings.emplace_back(w); }})
                      .value();
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(ledger->Append(TestRecord(i)).ok());
    EXPECT_TRUE(ledger->Close().ok());
  }
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("next start"), std::string::npos) << warnings[0];
  auto ledger = OpenLedger(data.path());
  ASSERT_TRUE(ledger->Flush().ok());
  EXPECT_EQ(ledger->store().Query({}).value().at(0).requests, 5);
}

TEST(LedgerTest, DataDirLayout) {
  EXPECT_EQ(LedgerWalDir("/var/weft"), "/var/weft/ledger-wal");
  EXPECT_EQ(LedgerStorePath("./weft-data"), "./weft-data/ledger.sqlite");
}

}  // namespace
}  // namespace weft::gateway
