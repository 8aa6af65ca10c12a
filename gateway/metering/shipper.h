// SPDX-License-Identifier: Apache-2.0
// Shipper: moves durable WAL records into the LedgerStore in batches, on a background thread.
// Each round commits a batch to the store; at most every sync_interval (and on Flush, ShipOnce and
// Stop) it makes the store's commits durable (LedgerStore::Sync), then writes a checkpoint
// (dir/shipped.checkpoint: how far the store is durably shipped) and deletes the segments before
// it. A crash or power loss after a commit and before its checkpoint re-ships from the checkpoint;
// the store ignores request ids it has, so nothing is counted twice and nothing the WAL dropped
// can be lost. The Wal and the store must outlive the Shipper. All methods are thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/metering/ledger_store.h"
#include "gateway/metering/wal.h"

namespace weft::gateway {

struct ShipperOptions {
  size_t max_batch_records = 2000;                        // records per store transaction
  absl::Duration retry_initial = absl::Milliseconds(50);  // backoff after a store error...
  absl::Duration retry_max = absl::Seconds(5);            // ...doubling up to this
  // Background rounds start at most this often: records that arrive meanwhile ship together in
  // the next round (one store commit for all; see sync_interval for the checkpoint). Flush()
  // skips the wait.
  absl::Duration min_interval = absl::ZeroDuration();
  std::function<void(std::string_view)> warn{};  // default: stderr
  // The shipper thread's nice value, relative to the process (Linux: per thread): background
  // work yields the CPU to the request path while both want it, and runs fully when it is idle.
  // 10 keeps about a tenth of a core's share under saturation, enough to keep up.
  int nice_increment = 10;
  // While the shipper keeps up (its last round shipped less than a full batch), it runs as
  // SCHED_IDLE (Linux): any request-path thread that wakes preempts it at once, so a round's
  // store transaction (a few ms of CPU for a thousand records) never holds a core a request
  // waits for. Behind (a full batch), it goes back to SCHED_OTHER at nice_increment until it has
  // caught up, so that sustained load cannot starve it. Only where the thread may return from
  // SCHED_IDLE (root, CAP_SYS_NICE, or RLIMIT_NICE >= 20 - its nice value); else nice alone.
  bool idle_while_keeping_up = true;
  // The background thread syncs the store, writes the checkpoint and deletes shipped segments at
  // most this often (zero: after every round). Each sync and checkpoint write flushes the device
  // (three flushes on SQLite + ext4), and a flush delays the usage WAL's group commits that
  // requests wait for; between them, records are in the store and still in the WAL.
  absl::Duration sync_interval = absl::Seconds(1);
};

class Shipper {
 public:
  // Reads the checkpoint (a missing, unreadable or out-of-range one means "ship from the WAL's
  // start", with a warning where it was damaged). Does not start the thread.
  static absl::StatusOr<std::unique_ptr<Shipper>> Open(Wal* wal, LedgerStore* store,
                                                       ShipperOptions options);
  ~Shipper();  // Stop()
  Shipper(const Shipper&) = delete;
  Shipper& operator=(const Shipper&) = delete;

  // Starts the background thread (idempotent). It ships whenever the WAL's durable end moves and
  // retries store errors with backoff.
  void Start();
  // Stops and joins the thread; records not yet shipped stay in the WAL. Idempotent.
  void Stop();

  // Ships one batch from the caller's thread: read, insert, sync the store, checkpoint, delete
  // shipped segments. Returns how many records it shipped (0: caught up). Blocks on the store.
  absl::StatusOr<int64_t> ShipOnce();

  // Waits until every record durable in the WAL when called is durably in the store (and the
  // checkpoint says so). Ships inline when the thread is not running. DeadlineExceeded (with the
  // last store error) on timeout.
  absl::Status Flush(absl::Duration timeout = absl::InfiniteDuration());

  // Runs `fn` with shipping held still, given how far shipping has got: records before that
  // position are in the store, records from it on are only in the WAL.
  absl::Status WithShippingPaused(const std::function<absl::Status(WalPosition shipped)>& fn);

  // Records before shipped() are in the store (visible to its readers); records before
  // checkpointed() are durably so, and the WAL may have dropped them.
  WalPosition shipped() const;
  WalPosition checkpointed() const;
  absl::Status last_error() const;  // the latest store failure, OK after a success

 private:
  Shipper(Wal* wal, LedgerStore* store, ShipperOptions options);
  absl::Status WriteCheckpoint(WalPosition pos);
  // One round (ship_mu_ held): a batch into the store; then, with `sync`, SyncLocked().
  absl::StatusOr<int64_t> ShipOnceLocked(bool sync);
  // Store sync, checkpoint at shipped_, segments before it deleted (ship_mu_ held); nothing when
  // the checkpoint is there already.
  absl::Status SyncLocked();
  void Run();
  void Warn(std::string_view message) const;
  // Shipper thread only: SCHED_IDLE (true) or SCHED_OTHER (false) for the calling thread.
  void SetIdlePriority(bool idle);
  // Whether a thread with the caller's nice value may go SCHED_IDLE and back (a probe thread).
  static bool IdlePolicyIsReversible();

  Wal* const wal_;
  LedgerStore* const store_;
  const ShipperOptions options_;
  const std::string checkpoint_path_;
  int checkpoint_fd_ = -1;  // ship_mu_: the checkpoint, open after this process's first one

  std::mutex ship_mu_;  // held for a whole ShipOnce, and by WithShippingPaused

  mutable std::mutex mu_;
  std::condition_variable cv_;  // shipped_ moved, work arrived, or stop
  WalPosition shipped_;
  WalPosition checkpointed_;       // <= shipped_
  absl::Time last_sync_;           // when checkpointed_ last moved (or the shipper opened)
  absl::Status last_error_;
  bool work_ = true;
  bool idle_ = false;           // the thread waits for work_ (the durable listener must wake it)
  bool idle_priority_ = false;  // the shipper thread's policy is SCHED_IDLE (its own)
  bool urgent_ = false;         // a Flush() waits: skip min_interval
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace weft::gateway
