// SPDX-License-Identifier: Apache-2.0
// Durable appends per second through the usage ledger, with 1 and 32 appending threads: the WAL
// alone (every Append waits for its fdatasync, shared by group commit) and the whole Ledger with
// the shipper moving records into SQLite meanwhile. Runs in $TMPDIR (put it on the disk you mean
// to measure; on tmpfs fdatasync is free). Counters: records_per_fsync = records / group commits.
#include <atomic>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "gateway/metering/ledger.h"
#include "gateway/metering/metering_testing.h"
#include "gateway/metering/sqlite_ledger_store.h"
#include "gateway/metering/wal.h"

namespace weft::gateway {
namespace {

std::unique_ptr<testing::ScopedTempDir> g_dir;
std::unique_ptr<Wal> g_wal;
std::unique_ptr<Ledger> g_ledger;
std::atomic<int64_t> g_next_id{0};

UsageRecord NextRecord() {
  UsageRecord r = testing::TestRecord(g_next_id.fetch_add(1));
  r.request_id = absl::StrCat("chatcmpl-bench-", r.request_id);
  return r;
}

void BM_WalAppend(benchmark::State& state) {
  // Thread 0 sets up before the loop's start barrier and tears down after its end barrier.
  if (state.thread_index() == 0) {
    g_dir = std::make_unique<testing::ScopedTempDir>("weft-metering-bench-");
    g_wal = Wal::Open({.dir = g_dir->path()}).value();
  }
  for (auto _ : state) {
    if (!g_wal->Append(NextRecord()).ok()) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const WalStats stats = g_wal->stats();
    state.counters["records_per_fsync"] = static_cast<double>(stats.records) /
                                          static_cast<double>(std::max<int64_t>(1, stats.batches));
    g_wal.reset();
    g_dir.reset();
  }
}
BENCHMARK(BM_WalAppend)->Threads(1)->Threads(32)->UseRealTime()->MinTime(2.0);

void BM_LedgerAppendWithShipping(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_dir = std::make_unique<testing::ScopedTempDir>("weft-metering-bench-");
    g_ledger =
        Ledger::Open(
            {.dir = LedgerWalDir(g_dir->path()),
             .store = SqliteLedgerStore::Open({.path = LedgerStorePath(g_dir->path())}).value()})
            .value();
  }
  for (auto _ : state) {
    if (!g_ledger->Append(NextRecord()).ok()) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    if (!g_ledger->Flush().ok()) state.SkipWithError("flush failed");
    g_ledger.reset();
    g_dir.reset();
  }
}
BENCHMARK(BM_LedgerAppendWithShipping)->Threads(1)->Threads(32)->UseRealTime()->MinTime(2.0);

// The shipper's side alone: records per second into the SQLite store in batches of 200 (about one
// shipper round at 1k req/s) and 2000, the database growing as it runs.
void BM_SqliteStoreInsert(benchmark::State& state) {
  testing::ScopedTempDir dir("weft-metering-bench-");
  auto store = SqliteLedgerStore::Open({.path = LedgerStorePath(dir.path())}).value();
  std::vector<UsageRecord> batch(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    for (UsageRecord& r : batch) r = NextRecord();
    if (!store->Insert(batch).ok()) state.SkipWithError("insert failed");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch.size()));
}
BENCHMARK(BM_SqliteStoreInsert)->ArgName("batch")->Arg(200)->Arg(2000)->MinTime(2.0);

}  // namespace
}  // namespace weft::gateway

BENCHMARK_MAIN();
