// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/shipper.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "gateway/metering/memory_ledger_store.h"
#include "gateway/metering/metering_testing.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

using testing::ScopedTempDir;
using testing::SegmentFiles;
using testing::TestRecord;

// Wraps a store: can fail the next N inserts before (down) or after (commit, then lose the
// reply) the commit, or its syncs; counts what it was asked to insert and sync; and can lose
// power, forgetting every record inserted since its last successful sync.
class FaultyStore : public LedgerStore {
 public:
  absl::StatusOr<int64_t> Insert(std::span<const UsageRecord> records) override {
    inserted_total += static_cast<int64_t>(records.size());
    if (fail_before > 0) {
      fail_before--;
      return absl::UnavailableError("store down");
    }
    auto added = inner->Insert(records);
    if (fail_after > 0) {
      fail_after--;
      return absl::UnavailableError("connection lost after commit");
    }
    return added;
  }
  absl::StatusOr<std::vector<UsageRow>> Query(const UsageQuery& q) override {
    return inner->Query(q);
  }
  absl::Status Scan(int64_t since, const std::function<void(const UsageRecord&)>& fn) override {
    return inner->Scan(since, fn);
  }
  absl::Status Sync() override {
    if (fail_sync) return absl::UnavailableError("sync failed");
    std::lock_guard lock(mu);
    synced.clear();
    EXPECT_TRUE(inner->Scan(INT64_MIN, [&](const UsageRecord& r) { synced.push_back(r); }).ok());
    syncs++;
    return absl::OkStatus();
  }
  void LosePower() {
    std::lock_guard lock(mu);
    inner = std::make_unique<MemoryLedgerStore>();
    EXPECT_TRUE(inner->Insert(synced).ok());
  }

  std::unique_ptr<MemoryLedgerStore> inner = std::make_unique<MemoryLedgerStore>();
  std::atomic<int> fail_before{0};
  std::atomic<int> fail_after{0};
  std::atomic<bool> fail_sync{false};
  std::atomic<int64_t> inserted_total{0};
  std::atomic<int> syncs{0};
  std::mutex mu;
  std::vector<UsageRecord> synced;  // guarded by mu: the records as of the last sync
};

struct Fixture {
  explicit Fixture(uint64_t segment_bytes = 2048) {
    wal = Wal::Open({.dir = dir.path(), .segment_bytes = segment_bytes}).value();
  }
  std::unique_ptr<Shipper> OpenShipper(size_t batch = 16,
                                       absl::Duration sync_interval = absl::Seconds(1)) {
    auto s = Shipper::Open(wal.get(), &store,
                           {.max_batch_records = batch,
                            .retry_initial = absl::Milliseconds(1),
                            .retry_max = absl::Milliseconds(10),
                            .min_interval = absl::ZeroDuration(),
                            .warn = [this](std::string_view w) {
                              std::lock_guard lock(warnings_mu);
                              warnings.emplace_back(w);
                            },
                            .sync_interval = sync_interval});
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  void Append(int from, int to) {
    for (int i = from; i < to; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
  }
  // Every record 0..n-1 is in the store exactly once.
  void ExpectStoreHolds(int n) {
    std::map<std::string, int> seen;
    ASSERT_TRUE(store.Scan(INT64_MIN, [&](const UsageRecord& r) { seen[r.request_id]++; }).ok());
    EXPECT_EQ(seen.size(), static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) EXPECT_EQ(seen[TestRecord(i).request_id], 1) << i;
  }
  std::string Checkpoint() const {
    std::ifstream in(dir / "shipped.checkpoint");
    return {std::istreambuf_iterator<char>(in), {}};
  }

  ScopedTempDir dir;
  FaultyStore store;
  std::unique_ptr<Wal> wal;
  std::mutex warnings_mu;
  std::vector<std::string> warnings;  // read once the shipper thread has stopped or is idle
};

TEST(ShipperTest, ShipsInBatchesCheckpointsAndDeletesShippedSegments) {
  Fixture f;
  f.Append(0, 100);
  const size_t segments_before = SegmentFiles(f.dir.path()).size();
  ASSERT_GT(segments_before, 3u);
  auto shipper = f.OpenShipper(/*batch=*/16);
  EXPECT_EQ(shipper->ShipOnce().value(), 16);
  EXPECT_NE(f.Checkpoint().find("weft-ledger-checkpoint v1 "), std::string::npos);
  ASSERT_TRUE(shipper->Flush().ok());
  f.ExpectStoreHolds(100);
  EXPECT_EQ(shipper->shipped(), f.wal->DurableEnd());
  EXPECT_EQ(SegmentFiles(f.dir.path()).size(), 1u);  // only the active segment is left
  EXPECT_EQ(shipper->ShipOnce().value(), 0);
}

// After the first checkpoint of a process (written whole: temp file, rename), later ones rewrite
// the same fixed-width file in place (one data block to flush, no rename or folder fsync).
TEST(ShipperTest, CheckpointsAfterTheFirstRewriteTheFileInPlace) {
  Fixture f;
  std::ofstream(f.dir / "shipped.checkpoint") << "weft-ledger-checkpoint v1 0 0\n";  // older style
  f.Append(0, 40);
  auto shipper = f.OpenShipper(/*batch=*/8);
  auto inode = [&] {
    struct stat st {};
    EXPECT_EQ(::stat((f.dir / "shipped.checkpoint").c_str(), &st), 0);
    return std::pair<ino_t, off_t>(st.st_ino, st.st_size);
  };
  ASSERT_EQ(shipper->ShipOnce().value(), 8);
  const auto first = inode();
  EXPECT_EQ(first.second, static_cast<off_t>(f.Checkpoint().size()));
  ASSERT_TRUE(shipper->Flush().ok());
  EXPECT_EQ(inode(), first) << "same file, same size";
  f.ExpectStoreHolds(40);
  // A restart reads it (fixed-width numbers parse like any others) and ships nothing twice.
  shipper.reset();
  f.Append(40, 50);
  const int64_t inserted = f.store.inserted_total.load();
  shipper = f.OpenShipper();
  ASSERT_TRUE(shipper->Flush().ok());
  EXPECT_EQ(f.store.inserted_total.load() - inserted, 10);
  f.ExpectStoreHolds(50);
}

TEST(ShipperTest, BackgroundThreadFollowsAppendsAndFlushWaits) {
  Fixture f(64 << 10);
  auto shipper = f.OpenShipper(50);
  shipper->Start();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * 100; i < (t + 1) * 100; ++i) EXPECT_TRUE(f.wal->Append(TestRecord(i)).ok());
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(shipper->Flush().ok());
  f.ExpectStoreHolds(400);
  EXPECT_EQ(shipper->checkpointed(), f.wal->DurableEnd()) << "Flush waits for the sync";
  EXPECT_GE(f.store.syncs.load(), 1);
  shipper->Stop();
  shipper->Stop();  // idempotent
}

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Background rounds commit to the store at once but sync it (and move the checkpoint, and delete
// segments) at most every sync_interval; an idle shipper still syncs when the interval is up.
TEST(ShipperTest, BackgroundRoundsSyncTheStoreOncePerInterval) {
  Fixture f;
  f.Append(0, 100);
  const size_t segments = SegmentFiles(f.dir.path()).size();
  auto shipper = f.OpenShipper(/*batch=*/16, /*sync_interval=*/absl::Milliseconds(700));
  shipper->Start();
  ASSERT_TRUE(WaitFor([&] { return shipper->shipped() == f.wal->DurableEnd(); }));
  f.ExpectStoreHolds(100);
  const int syncs_while_shipping = f.store.syncs.load();
  EXPECT_LE(syncs_while_shipping, 1) << "7 rounds, one sync at most (the interval is not up)";
  if (syncs_while_shipping == 0) {
    EXPECT_EQ(shipper->checkpointed(), f.wal->Start());
    EXPECT_EQ(SegmentFiles(f.dir.path()).size(), segments) << "no segment goes before the sync";
  }
  ASSERT_TRUE(WaitFor([&] {
    return shipper->checkpointed() == f.wal->DurableEnd() &&
           SegmentFiles(f.dir.path()).size() == 1u;  // they go right after the checkpoint
  })) << "an idle shipper syncs when the interval is up";
  EXPECT_NE(f.Checkpoint().find("weft-ledger-checkpoint v1 "), std::string::npos);
  const int syncs = f.store.syncs.load();
  EXPECT_GE(syncs, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  EXPECT_EQ(f.store.syncs.load(), syncs) << "nothing new: no more syncs";
}

// Power fails after the store committed batches it had not synced: the store forgets them, the
// checkpoint had not moved past them and their segments were kept, so the next start re-ships them.
TEST(ShipperTest, PowerLossBeforeTheStoreSyncLosesNoRecord) {
  Fixture f;
  f.Append(0, 100);
  {
    auto shipper = f.OpenShipper(/*batch=*/16, /*sync_interval=*/absl::Hours(1));
    shipper->Start();
    ASSERT_TRUE(WaitFor([&] { return shipper->shipped() == f.wal->DurableEnd(); }));
    f.ExpectStoreHolds(100);
    EXPECT_EQ(f.store.syncs.load(), 0);
    f.store.fail_sync = true;  // the power goes before the shipper's stop could sync
  }
  f.store.LosePower();
  EXPECT_EQ(f.store.inner->size(), 0u);
  f.store.fail_sync = false;
  f.wal.reset();
  f.wal = Wal::Open({.dir = f.dir.path(), .segment_bytes = 2048}).value();
  auto shipper = f.OpenShipper();
  ASSERT_TRUE(shipper->Flush().ok());
  f.ExpectStoreHolds(100);
  EXPECT_EQ(shipper->checkpointed(), f.wal->DurableEnd());
}

// The shipper thread's scheduling policy (Linux), found by its name; -1 if there is no such thread.
int ShipperThreadPolicy() {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name == "weft-shipper") {
      return sched_getscheduler(static_cast<pid_t>(std::stol(task.path().filename().string())));
    }
  }
  return -1;
}

TEST(ShipperTest, KeepingUpTheThreadYieldsToEveryOtherAndStillShipsABacklog) {
  Fixture f(64 << 10);
  f.Append(0, 50);  // a backlog of 25 full batches: shipped at SCHED_OTHER, then idle
  auto shipper = f.OpenShipper(/*batch=*/2);
  shipper->Start();
  ASSERT_TRUE(shipper->Flush().ok());
  f.Append(50, 51);  // one record: a round that keeps up
  ASSERT_TRUE(shipper->Flush().ok());
  f.ExpectStoreHolds(51);
  // Whether a thread at the shipper's nice value (+10) may go SCHED_IDLE and back here (root,
  // CAP_SYS_NICE or RLIMIT_NICE >= 10); where it may not, the shipper keeps to nice alone.
  bool reversible = false;
  std::thread([&reversible] {
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
    sched_param param{};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0) return;
    reversible = pthread_setschedparam(pthread_self(), SCHED_OTHER, &param) == 0;
  }).join();
  const int want = reversible ? SCHED_IDLE : SCHED_OTHER;
  int policy = -1;
  for (int i = 0; i < 500 && (policy = ShipperThreadPolicy()) != want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(policy, want) << (reversible
                                  ? "a shipper that keeps up runs only when nothing else would"
                                  : "a shipper that could not leave SCHED_IDLE stays out of it");
  shipper->Stop();
}

TEST(ShipperTest, StoreOutageRetriesWithBackoffAndFlushTimesOut) {
  Fixture f;
  f.Append(0, 20);
  f.store.fail_before = 1 << 30;  // down
  auto shipper = f.OpenShipper();
  shipper->Start();
  const absl::Status flush = shipper->Flush(absl::Milliseconds(100));
  EXPECT_EQ(flush.code(), absl::StatusCode::kDeadlineExceeded) << flush;
  EXPECT_NE(flush.message().find("store down"), std::string::npos) << flush;
  EXPECT_EQ(shipper->last_error().code(), absl::StatusCode::kUnavailable);
  {
    std::lock_guard lock(f.warnings_mu);
    ASSERT_EQ(f.warnings.size(), 1u) << "one warning per distinct error, not per retry";
  }
  EXPECT_GT(f.store.inserted_total.load(), 20) << "it retried";
  f.store.fail_before = 0;  // back up
  ASSERT_TRUE(shipper->Flush(absl::Seconds(20)).ok());
  f.ExpectStoreHolds(20);
  EXPECT_TRUE(shipper->last_error().ok());
}

// The crash window: the store committed, the checkpoint did not move. Shipping again inserts
// the same batch, which the store absorbs by request id.
TEST(ShipperTest, ReshippingAfterCommitWithoutCheckpointCreatesNoDuplicates) {
  Fixture f;
  f.Append(0, 30);
  auto shipper = f.OpenShipper(/*batch=*/10);
  f.store.fail_after = 1;
  EXPECT_FALSE(shipper->ShipOnce().ok());
  EXPECT_EQ(f.store.inner->size(), 10u);           // committed
  EXPECT_EQ(shipper->shipped(), f.wal->Start());  // but not checkpointed
  ASSERT_TRUE(shipper->Flush().ok());
  f.ExpectStoreHolds(30);
  EXPECT_EQ(f.store.inserted_total.load(), 40);  // one batch twice
}

TEST(ShipperTest, StaleMissingOrDamagedCheckpointsReshipWithoutDuplicates) {
  Fixture f;
  f.Append(0, 40);
  std::string stale;
  {
    auto shipper = f.OpenShipper(/*batch=*/8);
    ASSERT_TRUE(shipper->ShipOnce().ok());
    stale = f.Checkpoint();
    ASSERT_TRUE(shipper->Flush().ok());
  }
  f.Append(40, 60);
  for (const std::string& checkpoint : {stale, std::string(), std::string("garbage\n"),
                                        std::string("weft-ledger-checkpoint v1 999 0\n")}) {
    SCOPED_TRACE(checkpoint);
    if (checkpoint.empty()) {
      std::filesystem::remove(f.dir / "shipped.checkpoint");
    } else {
      std::ofstream(f.dir / "shipped.checkpoint", std::ios::trunc) << checkpoint;
    }
    auto shipper = f.OpenShipper();
    ASSERT_TRUE(shipper->Flush().ok());
    f.ExpectStoreHolds(60);
  }
  // Unreadable and out-of-range checkpoints say so.
  ASSERT_GE(f.warnings.size(), 2u);
  EXPECT_NE(f.warnings[0].find("unreadable"), std::string::npos) << f.warnings[0];
  EXPECT_NE(f.warnings[1].find("past the WAL's end"), std::string::npos) << f.warnings[1];
}

TEST(ShipperTest, PausedShippingHoldsStill) {
  Fixture f;
  f.Append(0, 10);
  auto shipper = f.OpenShipper();
  shipper->Start();
  ASSERT_TRUE(shipper
                  ->WithShippingPaused([&](WalPosition shipped) {
                    const size_t before = f.store.inner->size();
                    f.Append(10, 20);
                    std::this_thread::sleep_for(std::chrono::milliseconds(30));
                    EXPECT_EQ(f.store.inner->size(), before);
                    EXPECT_EQ(shipper->shipped(), shipped);
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(shipper->Flush().ok());
  f.ExpectStoreHolds(20);
}

}  // namespace
}  // namespace weft::gateway
