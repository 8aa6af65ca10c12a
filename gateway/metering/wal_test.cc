// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/wal.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "gateway/metering/metering_testing.h"
#include "gateway/metering/wal_format.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

using testing::ScopedTempDir;
using testing::SegmentFiles;
using testing::TestRecord;

struct Warnings {
  std::vector<std::string> lines;
  std::function<void(std::string_view)> sink() {
    return [this](std::string_view s) { lines.emplace_back(s); };
  }
};

std::unique_ptr<Wal> OpenWal(const std::string& dir, Warnings* warnings = nullptr,
                             uint64_t segment_bytes = 64 << 20) {
  auto wal = Wal::Open(
      {.dir = dir, .segment_bytes = segment_bytes, .warn = warnings ? warnings->sink() : nullptr});
  EXPECT_TRUE(wal.ok()) << wal.status();
  return wal.ok() ? *std::move(wal) : nullptr;
}

std::vector<UsageRecord> ReadAll(const Wal& wal, WalPosition from = {}) {
  std::vector<UsageRecord> all;
  while (true) {
    auto batch = wal.Read(from, 7);  // small batches: exercise positions
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok()) return all;
    for (auto& r : batch->records) all.push_back(std::move(r));
    if (batch->records.empty()) return all;
    from = batch->next;
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

TEST(WalTest, RoundTripAndReopen) {
  ScopedTempDir dir;
  {
    auto wal = OpenWal(dir.path());
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
    const auto all = ReadAll(*wal);
    ASSERT_EQ(all.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(all[i], TestRecord(i));
    EXPECT_EQ(wal->stats().records, 100);
    ASSERT_TRUE(wal->Close().ok());
  }
  auto wal = OpenWal(dir.path());
  EXPECT_EQ(wal->recovery().records, 100);
  EXPECT_EQ(wal->recovery().truncated_bytes, 0u);
  ASSERT_TRUE(wal->Append(TestRecord(100)).ok());
  const auto all = ReadAll(*wal);
  ASSERT_EQ(all.size(), 101u);
  EXPECT_EQ(all.back(), TestRecord(100));
}

TEST(WalTest, RotatesSegmentsAndReadsAcrossThem) {
  ScopedTempDir dir;
  auto wal = OpenWal(dir.path(), nullptr, /*segment_bytes=*/1024);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
  const auto files = SegmentFiles(dir.path());
  ASSERT_GT(files.size(), 10u);
  for (const auto& f : files) EXPECT_LE(std::filesystem::file_size(f), 1024u) << f;
  auto all = ReadAll(*wal);
  ASSERT_EQ(all.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(all[i], TestRecord(i));

  // A read that ends a sealed segment points at the next segment's start.
  auto first = wal->Read({}, 1000);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->next, wal->DurableEnd());

  // Deleting shipped segments keeps the newest and everything from the given one.
  auto part = wal->Read({}, 50);
  ASSERT_TRUE(part.ok());
  ASSERT_TRUE(wal->RemoveSegmentsBefore(part->next.segment).ok());
  EXPECT_EQ(wal->Start().segment, part->next.segment);
  EXPECT_LT(SegmentFiles(dir.path()).size(), files.size());
  all = ReadAll(*wal, part->next);
  ASSERT_EQ(all.size(), 150u);
  EXPECT_EQ(all.front(), TestRecord(50));
  ASSERT_TRUE(wal->RemoveSegmentsBefore(UINT64_MAX).ok());
  EXPECT_EQ(SegmentFiles(dir.path()).size(), 1u);  // never the active segment
  ASSERT_TRUE(wal->Append(TestRecord(999)).ok());
  ASSERT_TRUE(wal->Close().ok());
  wal = OpenWal(dir.path(), nullptr, 1024);
  EXPECT_EQ(wal->recovery().segments, 1);
}

TEST(WalTest, GroupCommitFrom32ThreadsKeepsEveryRecordOnce) {
  ScopedTempDir dir;
  auto wal = OpenWal(dir.path(), nullptr, /*segment_bytes=*/16 << 10);
  constexpr int kThreads = 32, kPerThread = 100;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!wal->Append(TestRecord(t * kPerThread + i, "g")).ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const WalStats stats = wal->stats();
  EXPECT_EQ(stats.records, kThreads * kPerThread);
  EXPECT_LT(stats.batches, stats.records) << "no fdatasync was shared";
  std::printf("32 threads: %lld records in %lld group commits\n",
              static_cast<long long>(stats.records), static_cast<long long>(stats.batches));

  ASSERT_TRUE(wal->Close().ok());
  wal = OpenWal(dir.path(), nullptr, 16 << 10);
  std::set<std::string> ids;
  for (const auto& r : ReadAll(*wal)) {
    EXPECT_TRUE(ids.insert(r.request_id).second) << "duplicate " << r.request_id;
    const int64_t n = std::stoll(r.request_id.substr(2));
    EXPECT_EQ(r, TestRecord(n, "g"));
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kPerThread));
}

// The active segment is preallocated with zeros ahead of its data. A process that dies leaves that
// tail behind: reopening treats it as free space (no warning, nothing truncated), appends continue
// right after the data, and a clean close trims the file to its data.
TEST(WalTest, PreallocatedTailIsFreeSpaceAfterACrash) {
  ScopedTempDir dir;
  ScopedTempDir crashed;
  auto wal = OpenWal(dir.path());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
  const std::string segment = SegmentFiles(dir.path()).at(0);
  const std::string bytes = ReadFile(segment);  // what a crash now would leave on disk
  const SegmentScan scan = ScanSegment(bytes);
  ASSERT_EQ(scan.frames.size(), 20u);
  EXPECT_EQ(bytes.size(), uint64_t{1} << 20) << "preallocated to preallocate_bytes";
  EXPECT_EQ(EndWithoutZeroTail(bytes, scan.valid_end), scan.valid_end);
  ASSERT_TRUE(wal->Close().ok());
  EXPECT_EQ(std::filesystem::file_size(segment), scan.valid_end) << "a clean close trims";

  const std::string copy = crashed.path() + "/" + std::filesystem::path(segment).filename().string();
  WriteFile(copy, bytes);
  Warnings warnings;
  wal = OpenWal(crashed.path(), &warnings);
  ASSERT_NE(wal, nullptr);
  EXPECT_TRUE(warnings.lines.empty()) << warnings.lines[0];
  EXPECT_EQ(wal->recovery().records, 20);
  EXPECT_EQ(wal->recovery().truncated_bytes, 0u);
  EXPECT_EQ(wal->DurableEnd().offset, scan.valid_end);
  for (int i = 20; i < 25; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
  const auto all = ReadAll(*wal);
  ASSERT_EQ(all.size(), 25u);
  for (int i = 0; i < 25; ++i) EXPECT_EQ(all[i], TestRecord(i));
  // The new records sit right after the old ones: a fresh scan of the file finds all 25.
  EXPECT_EQ(ScanSegment(ReadFile(copy)).frames.size(), 25u);
}

// A torn batch inside preallocated space (a later page of it reached the disk, an earlier one did
// not) with valid-looking frames after the damage: still a torn tail, decided on the bytes before
// the zeros, not on the preallocated file size.
TEST(WalTest, TornBatchInsidePreallocatedSpaceIsTruncated) {
  ScopedTempDir dir;
  std::string bytes;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(AppendWalFrame(TestRecord(i), bytes).ok());
  const SegmentScan whole = ScanSegment(bytes);
  const uint64_t damage_at = whole.frames[3].offset;
  bytes[damage_at + kWalFrameHeaderBytes + 2] ^= 0x5a;  // frame 3 damaged, 4 and 5 intact
  bytes.resize(1 << 20, '\0');                          // then preallocated zeros
  WriteFile(dir.path() + "/wal-0000000000000001.log", bytes);
  Warnings warnings;
  auto wal = OpenWal(dir.path(), &warnings);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(wal->recovery().records, 3);
  ASSERT_EQ(warnings.lines.size(), 1u);
  EXPECT_NE(warnings.lines[0].find("torn tail"), std::string::npos) << warnings.lines[0];
  ASSERT_TRUE(wal->Append(TestRecord(9)).ok());
  const auto all = ReadAll(*wal);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[3], TestRecord(9));
}

// Truncates the (single) segment at every byte offset inside its last record: reopening always
// succeeds, cuts the torn record and keeps the earlier ones, and the WAL accepts appends again.
TEST(WalTest, TornTailTruncationSweep) {
  ScopedTempDir dir;
  {
    auto wal = OpenWal(dir.path());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
  }
  const std::string segment = SegmentFiles(dir.path()).at(0);
  const std::string whole = ReadFile(segment);
  const SegmentScan scan = ScanSegment(whole);
  ASSERT_EQ(scan.frames.size(), 5u);
  const uint64_t last_start = scan.frames.back().offset;
  for (uint64_t cut = last_start; cut < whole.size(); ++cut) {
    SCOPED_TRACE(cut);
    WriteFile(segment, whole.substr(0, cut));
    Warnings warnings;
    auto wal = OpenWal(dir.path(), &warnings);
    ASSERT_NE(wal, nullptr);
    EXPECT_EQ(wal->recovery().records, 4);
    EXPECT_EQ(wal->recovery().truncated_bytes, cut - last_start);
    EXPECT_EQ(std::filesystem::file_size(segment), last_start);
    if (cut > last_start) {
      ASSERT_EQ(warnings.lines.size(), 1u);
      EXPECT_NE(warnings.lines[0].find("torn tail"), std::string::npos) << warnings.lines[0];
    }
    ASSERT_TRUE(wal->Append(TestRecord(77)).ok());
    const auto all = ReadAll(*wal);
    ASSERT_EQ(all.size(), 5u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(all[i], TestRecord(i));
    EXPECT_EQ(all[4], TestRecord(77));
  }
}

TEST(WalTest, CorruptTailIsTruncatedWithAWarning) {
  ScopedTempDir dir;
  {
    auto wal = OpenWal(dir.path());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
  }
  const std::string segment = SegmentFiles(dir.path()).at(0);
  std::string bytes = ReadFile(segment);
  const SegmentScan scan = ScanSegment(bytes);
  // Damage record 3 and keep record 4 whole: pages of the last batch reached the disk out of
  // order. Both were unacknowledged, so both go.
  bytes[scan.frames[3].offset + 12] ^= 1;
  WriteFile(segment, bytes);
  Warnings warnings;
  auto wal = OpenWal(dir.path(), &warnings);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(ReadAll(*wal).size(), 3u);
  ASSERT_EQ(warnings.lines.size(), 1u);
  EXPECT_NE(warnings.lines[0].find("checksum mismatch"), std::string::npos) << warnings.lines[0];
  EXPECT_NE(warnings.lines[0].find("never acknowledged"), std::string::npos) << warnings.lines[0];
  EXPECT_EQ(wal->recovery().truncated_segment, segment);
}

TEST(WalTest, CorruptionInTheMiddleIsReportedNotTruncated) {
  ScopedTempDir dir;
  const WalOptions options = {.dir = dir.path(), .max_batch_bytes = 4096};
  {
    // More than a torn-tail window (64 KiB: the largest frame) of valid data after the damage.
    auto wal = Wal::Open(options);
    ASSERT_TRUE(wal.ok());
    for (int i = 0; i < 100; ++i) {
      UsageRecord r = TestRecord(i);
      r.adapter = std::string(1000, 'a');
      ASSERT_TRUE((*wal)->Append(r).ok());
    }
  }
  const std::string segment = SegmentFiles(dir.path()).at(0);
  std::string bytes = ReadFile(segment);
  const uint64_t damaged_at = ScanSegment(bytes).frames[10].offset;
  bytes[damaged_at + 9] ^= 0x10;
  WriteFile(segment, bytes);
  auto wal = Wal::Open(options);
  ASSERT_EQ(wal.status().code(), absl::StatusCode::kDataLoss) << wal.status();
  const std::string msg(wal.status().message());
  EXPECT_NE(msg.find(segment), std::string::npos) << msg;
  EXPECT_NE(msg.find("offset " + std::to_string(damaged_at)), std::string::npos) << msg;
  EXPECT_EQ(ReadFile(segment), bytes) << "the damaged segment must be left as it was";
}

TEST(WalTest, DamageInASealedSegmentIsReported) {
  ScopedTempDir dir;
  {
    auto wal = OpenWal(dir.path(), nullptr, 1024);
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
  }
  const auto files = SegmentFiles(dir.path());
  ASSERT_GE(files.size(), 3u);
  const std::string bytes = ReadFile(files[0]);
  WriteFile(files[0], bytes.substr(0, bytes.size() - 3));  // a sealed segment lost its end
  auto wal = Wal::Open({.dir = dir.path(), .segment_bytes = 1024});
  EXPECT_EQ(wal.status().code(), absl::StatusCode::kDataLoss) << wal.status();
  EXPECT_NE(wal.status().message().find("sealed"), std::string::npos) << wal.status();
}

TEST(WalTest, OneWalPerDirectory) {
  ScopedTempDir dir;
  auto wal = OpenWal(dir.path());
  auto second = Wal::Open({.dir = dir.path()});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  ASSERT_TRUE(wal->Close().ok());
  EXPECT_TRUE(Wal::Open({.dir = dir.path()}).ok());
}

TEST(WalTest, RejectsBadRecordsAndUseAfterClose) {
  ScopedTempDir dir;
  auto wal = OpenWal(dir.path());
  EXPECT_EQ(wal->Append(UsageRecord{}).code(), absl::StatusCode::kInvalidArgument);
  UsageRecord huge = TestRecord(1);
  huge.deployment = std::string(100 << 10, 'd');
  EXPECT_EQ(wal->Append(huge).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(wal->Append(TestRecord(2)).ok());  // still usable
  EXPECT_EQ(
      wal->Read({wal->DurableEnd().segment, wal->DurableEnd().offset + 1}, 10).status().code(),
      absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(wal->Close().ok());
  EXPECT_EQ(wal->Append(TestRecord(3)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(wal->Close().ok());
}

TEST(WalTest, DurableListenerRunsAfterEachCommit) {
  ScopedTempDir dir;
  auto wal = OpenWal(dir.path());
  std::atomic<int> calls{0};
  wal->SetDurableListener([&] { calls++; });
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
  EXPECT_EQ(calls.load(), 3);
  wal->SetDurableListener(nullptr);
  ASSERT_TRUE(wal->Append(TestRecord(3)).ok());
  EXPECT_EQ(calls.load(), 3);
}

// AppendAsync from many threads mixed with blocking appends: every callback runs once with OK
// after its record is durable, the two kinds share group commits, Close drains the queue.
TEST(WalTest, AsyncAppendsShareGroupCommitsWithBlockingOnes) {
  ScopedTempDir dir;
  auto wal = OpenWal(dir.path(), nullptr, /*segment_bytes=*/16 << 10);
  constexpr int kThreads = 8, kPerThread = 400;
  std::atomic<int> ok{0}, failed{0}, not_durable{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int64_t n = t * kPerThread + i;
        if (t == 0) {  // one thread appends the blocking way
          if (wal->Append(TestRecord(n, "a")).ok()) ok++; else failed++;
          continue;
        }
        wal->AppendAsync(TestRecord(n, "a"), [&, n](absl::Status s) {
          if (!s.ok()) {
            failed++;
            return;
          }
          // Durable: a reader sees it already.
          if (wal->DurableEnd().offset == 0 && wal->DurableEnd().segment == 1) not_durable++;
          ok++;
          (void)n;
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(wal->Close().ok());  // waits for the queued ones
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(not_durable.load(), 0);
  const WalStats stats = wal->stats();
  EXPECT_EQ(stats.records, kThreads * kPerThread);
  EXPECT_LT(stats.batches, stats.records / 4) << "async appends were not grouped";
  std::printf("async: %lld records in %lld group commits\n", static_cast<long long>(stats.records),
              static_cast<long long>(stats.batches));
  wal = OpenWal(dir.path(), nullptr, 16 << 10);
  std::set<std::string> ids;
  for (const auto& r : ReadAll(*wal)) EXPECT_TRUE(ids.insert(r.request_id).second);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST(WalTest, AsyncAppendErrorsComeThroughTheCallback) {
  ScopedTempDir dir;
  auto wal = OpenWal(dir.path());
  absl::Status got = absl::UnknownError("not called");
  wal->AppendAsync(UsageRecord{}, [&](absl::Status s) { got = s; });  // inline: no request id
  EXPECT_EQ(got.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(wal->Close().ok());
  got = absl::UnknownError("not called");
  wal->AppendAsync(TestRecord(1), [&](absl::Status s) { got = s; });
  EXPECT_EQ(got.code(), absl::StatusCode::kFailedPrecondition);
}

// A write that fails (the file size limit stands in for a full disk) fails every queued async
// append through its callback, and every later one at once: a failed WAL never acknowledges.
TEST(WalTest, AsyncAppendsFailWhenTheDiskDoes) {
  ScopedTempDir dir;
  auto wal = OpenWal(dir.path());
  constexpr int kBefore = 10;
  for (int i = 0; i < kBefore; ++i) ASSERT_TRUE(wal->Append(TestRecord(100000 + i)).ok());
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 8 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::condition_variable cv;
  constexpr int kRecords = 400;  // far more than 8 KiB
  for (int i = 0; i < kRecords; ++i) {
    wal->AppendAsync(TestRecord(i), [&](absl::Status s) {
      (s.ok() ? ok : failed)++;
      std::lock_guard lock(mu);
      cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return ok + failed == kRecords; });
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(ok + failed, kRecords);
  EXPECT_GT(failed.load(), 0);
  EXPECT_LT(ok.load(), kRecords);
  absl::Status later = absl::OkStatus();
  wal->AppendAsync(TestRecord(9999), [&](absl::Status s) { later = s; });
  EXPECT_FALSE(later.ok());
  EXPECT_FALSE(wal->Append(TestRecord(10000)).ok());
  EXPECT_FALSE(wal->Close().ok());
  // What was acknowledged is on disk (and maybe part of the failed write, never acknowledged).
  wal = OpenWal(dir.path());
  EXPECT_GE(static_cast<int>(ReadAll(*wal).size()), ok.load() + kBefore);
}

}  // namespace
}  // namespace weft::gateway
