// SPDX-License-Identifier: Apache-2.0
// Wal: the gateway's local write-ahead log of UsageRecords, in a directory of segment files
// (wal-<seq>.log, frames as in wal_format.h) rotated at a size limit. Append() returns once the
// record is on disk (fdatasync), with group commit: concurrent appenders share one write and one
// fdatasync (leader/follower). AppendAsync() queues the record and returns at once; the WAL's
// writer thread runs group commits for queued records (sharing them with blocking appenders) and
// calls each record's callback once it is durable, so an event loop never blocks on the disk.
// One Wal per directory (an flock on dir/LOCK keeps a second process out). All methods are
// thread-safe.
#pragma once

#include <compare>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/metering/usage_record.h"

namespace weft::gateway {

// A place in the log: a byte offset inside segment file wal-<segment>.log. Ordered.
struct WalPosition {
  uint64_t segment = 0;
  uint64_t offset = 0;
  friend auto operator<=>(const WalPosition&, const WalPosition&) = default;
};

struct WalOptions {
  std::string dir{};                     // created if missing
  uint64_t segment_bytes = 64 << 20;     // a new segment starts once this would be exceeded
  uint64_t max_batch_bytes = 256 << 10;  // most bytes one group commit writes; this is also
                                         // the torn-tail window recovery allows (keep it fixed)
  // The active segment is extended with written zeros this far ahead of its data (capped at
  // segment_bytes; 0 = off), durably, so a group commit's fdatasync flushes the data blocks only
  // and not the file size as well: about half the latency of an appending fdatasync on ext4.
  uint64_t preallocate_bytes = 1 << 20;
  std::function<void(std::string_view)> warn{};  // recovery warnings; default: stderr
};

// What Open() found and repaired.
struct WalRecoveryReport {
  int segments = 0;     // segment files found
  int64_t records = 0;  // valid records in them
  uint64_t truncated_bytes = 0;
  std::string truncated_segment;  // path of the segment cut at a torn tail, "" if none
};

// Counters since Open (for /metrics and tests).
struct WalStats {
  int64_t records = 0;  // records made durable
  int64_t batches = 0;  // group commits (one write + one fdatasync each)
};

struct WalReadResult {
  std::vector<UsageRecord> records;
  WalPosition next;  // where the next read starts (the start of the next segment at a boundary)
};

class Wal {
 public:
  // Opens (creating) the directory and recovers it: a torn or corrupt tail of the last segment is
  // truncated with a warning; damage anywhere else is DataLoss naming the file and offset.
  // FailedPrecondition if another Wal (this or another process) holds the directory.
  static absl::StatusOr<std::unique_ptr<Wal>> Open(WalOptions options);
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Appends `record` and returns once it is durable. Blocks (a group commit: about one fdatasync).
  // InvalidArgument for a record without request_id or over 64 KiB encoded; after a write or
  // fdatasync failure every later call fails with that error (a failed fsync cannot be retried).
  absl::Status Append(const UsageRecord& record);

  // Queues `record` and returns at once. `done` runs exactly once: on the WAL's writer thread (or
  // a blocking appender's thread that led the group commit) with OK once the record is durable or
  // with the write/fdatasync error; inline, before AppendAsync returns, for the errors Append
  // returns up front (invalid record, closed, earlier failure). `done` must not block for long:
  // it delays the next group commit.
  void AppendAsync(const UsageRecord& record, std::function<void(absl::Status)> done);

  // The first position still on disk, and the end of the durable data (what Read can see).
  WalPosition Start() const;
  WalPosition DurableEnd() const;

  // Reads up to `max_records` durable records from `from` (a position before Start() reads from
  // Start()). DataLoss if durable data fails its checksum (damage after Open), InvalidArgument
  // for a position past DurableEnd().
  absl::StatusOr<WalReadResult> Read(WalPosition from, size_t max_records) const;

  // Calls `fn` (from an appending thread, without locks held) each time the durable end moves;
  // nullptr clears it. Returns once no call of the previous listener is running.
  void SetDurableListener(std::function<void()> fn);

  // Deletes whole segments with a number below `segment`, never the one being written.
  absl::Status RemoveSegmentsBefore(uint64_t segment);

  const std::string& dir() const { return options_.dir; }
  WalStats stats() const;
  const WalRecoveryReport& recovery() const { return recovery_; }

  // Waits for an in-flight group commit, closes the files and releases the directory. Appends
  // after Close fail with FailedPrecondition. Idempotent.
  absl::Status Close();

 private:
  explicit Wal(WalOptions options);
  absl::Status Recover();
  // Opens segment `seq` for appending at `data_size` (0 when `create`); bytes past it are
  // preallocated zeros.
  absl::Status OpenActive(uint64_t seq, bool create, uint64_t data_size = 0);
  // Leader only: extends the active segment with zeros (and fdatasyncs) to hold `need` bytes.
  absl::Status Preallocate(uint64_t need);
  // Leader only: rotates if needed, writes `batch`, fdatasyncs. Returns the new durable end.
  absl::StatusOr<WalPosition> WriteBatch(const std::string& batch);
  // Queues an encoded frame; returns its ticket. Requires mu_.
  uint64_t EnqueueLocked(std::string frame);
  // Leads one group commit of what is pending (requires !leader_busy_ and pending records); runs
  // the async callbacks it completed and the durable listener with `lock` released in between.
  void LeadBatch(std::unique_lock<std::mutex>& lock);
  void WriterLoop();
  void Warn(std::string_view message) const;

  const WalOptions options_;
  WalRecoveryReport recovery_;
  int lock_fd_ = -1;

  // Leader-owned (only the thread with leader_busy_ set touches these, or Close once none is).
  int active_fd_ = -1;
  uint64_t active_seq_ = 0;
  uint64_t active_size_ = 0;       // end of the data
  uint64_t active_allocated_ = 0;  // file size: data, then preallocated zeros

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;                 // encoded frames not yet handed to a leader
  std::deque<uint64_t> pending_sizes_;  // frame sizes in pending_, oldest first
  uint64_t next_ticket_ = 0;            // tickets issued to appenders, in pending_ order
  uint64_t durable_ticket_ = 0;         // every ticket <= this is durable
  WalStats stats_;
  bool leader_busy_ = false;
  bool closed_ = false;
  absl::Status failed_;                    // sticky write/fdatasync failure
  std::map<uint64_t, uint64_t> segments_;  // seq -> durable size
  WalPosition durable_end_;
  std::shared_ptr<std::function<void()>> listener_;
  int listener_calls_ = 0;  // listener calls running (outside mu_)
  // AppendAsync callbacks by ticket, oldest first; the writer thread waits on writer_cv_.
  std::deque<std::pair<uint64_t, std::function<void(absl::Status)>>> async_waiters_;
  std::condition_variable writer_cv_;
  std::thread writer_;
};

}  // namespace weft::gateway
