// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/shipper.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"

namespace weft::gateway {
namespace {

constexpr char kCheckpointMagic[] = "weft-ledger-checkpoint";

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(errno, absl::StrCat(std::string(what), " ", path));
}

std::string PosText(WalPosition p) { return absl::StrCat(p.segment, ":", p.offset); }

// Writes `data` to `path` atomically and durably: temp file, fdatasync, rename, fsync directory.
absl::Status WriteFileDurably(const std::string& dir, const std::string& path,
                              const std::string& data) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open", tmp);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("write", tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd) != 0) {
    absl::Status s = Errno("fdatasync", tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("rename", tmp);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Errno("open directory", dir);
  const int rc = ::fsync(dfd);
  ::close(dfd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync directory", dir);
}

}  // namespace

Shipper::Shipper(Wal* wal, LedgerStore* store, ShipperOptions options)
    : wal_(wal),
      store_(store),
      options_(std::move(options)),
      checkpoint_path_(wal->dir() + "/shipped.checkpoint") {}

Shipper::~Shipper() {
  Stop();
  if (checkpoint_fd_ >= 0) ::close(checkpoint_fd_);
}

void Shipper::Warn(std::string_view message) const {
  if (options_.warn) {
    options_.warn(message);
  } else {
    std::fprintf(stderr, "weft ledger: warning: %.*s\n", static_cast<int>(message.size()),
                 message.data());
  }
}

absl::StatusOr<std::unique_ptr<Shipper>> Shipper::Open(Wal* wal, LedgerStore* store,
                                                       ShipperOptions options) {
  if (options.max_batch_records == 0) {
    return absl::InvalidArgumentError("shipper max_batch_records must be > 0");
  }
  std::unique_ptr<Shipper> shipper(new Shipper(wal, store, std::move(options)));
  const WalPosition start = wal->Start();
  const WalPosition end = wal->DurableEnd();
  WalPosition pos = start;
  std::ifstream in(shipper->checkpoint_path_);
  if (in) {
    std::string magic, version;
    WalPosition cp;
    if (!(in >> magic >> version >> cp.segment >> cp.offset) || magic != kCheckpointMagic ||
        version != "v1") {
      shipper->Warn(absl::StrCat(shipper->checkpoint_path_,
                                 " is unreadable; re-shipping the whole WAL (the store ignores "
                                 "records it already has)"));
    } else if (cp > end) {
      shipper->Warn(absl::StrCat(shipper->checkpoint_path_, " points past the WAL's end (",
                                 PosText(cp), " > ", PosText(end), "); re-shipping the whole WAL"));
    } else {
      pos = std::max(cp, start);
    }
  }
  shipper->shipped_ = pos;
  shipper->checkpointed_ = pos;
  shipper->last_sync_ = absl::Now();
  // Segments a crash left behind after their checkpoint was written.
  WEFT_RETURN_IF_ERROR(wal->RemoveSegmentsBefore(pos.segment));
  return shipper;
}

absl::Status Shipper::WriteCheckpoint(WalPosition pos) {
  // Fixed width: after its first write the file never changes size, so a rewrite in place plus
  // fdatasync flushes one data block (no rename, no journal commit, no fsync of the folder). A
  // torn write would read as unreadable, which re-ships the WAL's remaining segments (the store
  // ignores request ids it has): safe, only slower.
  const std::string text =
      absl::StrFormat("%s v1 %020d %020d\n", kCheckpointMagic, pos.segment, pos.offset);
  if (checkpoint_fd_ < 0) {
    // This process's first checkpoint: atomically, so that the fixed-width file replaces whatever
    // was there (an older, shorter one) whole.
    WEFT_RETURN_IF_ERROR(WriteFileDurably(wal_->dir(), checkpoint_path_, text));
    checkpoint_fd_ = ::open(checkpoint_path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (checkpoint_fd_ < 0) return Errno("open", checkpoint_path_);
    return absl::OkStatus();
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::pwrite(checkpoint_fd_, text.data() + done, text.size() - done,
                               static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("write", checkpoint_path_);
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(checkpoint_fd_) != 0) return Errno("fdatasync", checkpoint_path_);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Shipper::ShipOnce() {
  std::lock_guard ship(ship_mu_);
  return ShipOnceLocked(/*sync=*/true);
}

absl::StatusOr<int64_t> Shipper::ShipOnceLocked(bool sync) {
  const WalPosition from = shipped();
  WEFT_ASSIGN_OR_RETURN(WalReadResult batch, wal_->Read(from, options_.max_batch_records));
  if (!batch.records.empty()) {
    absl::StatusOr<int64_t> added = store_->Insert(batch.records);
    if (!added.ok()) {
      std::lock_guard lock(mu_);
      last_error_ = added.status();
      return added.status();
    }
  }
  if (batch.next != from) {
    std::lock_guard lock(mu_);
    shipped_ = batch.next;
    last_error_ = absl::OkStatus();
  }
  if (sync) {
    if (absl::Status s = SyncLocked(); !s.ok()) {
      std::lock_guard lock(mu_);
      last_error_ = s;
      return s;
    }
  }
  cv_.notify_all();
  return static_cast<int64_t>(batch.records.size());
}

absl::Status Shipper::SyncLocked() {
  WalPosition pos;
  {
    std::lock_guard lock(mu_);
    if (checkpointed_ == shipped_) return absl::OkStatus();
    pos = shipped_;
  }
  // The order is what makes a crash at any point safe: the store's commits are durable before the
  // checkpoint says so, and the checkpoint is durable before the segments go. A crash in between
  // re-ships from the old checkpoint, which the store absorbs by request_id.
  WEFT_RETURN_IF_ERROR(store_->Sync());
  WEFT_RETURN_IF_ERROR(WriteCheckpoint(pos));
  {
    std::lock_guard lock(mu_);
    checkpointed_ = pos;
    last_sync_ = absl::Now();
  }
  cv_.notify_all();
  return wal_->RemoveSegmentsBefore(pos.segment);
}

void Shipper::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  work_ = true;
  wal_->SetDurableListener([this] {
    // Called after every group commit: wake the shipper only when it sleeps waiting for records,
    // not while it works or gathers records for min_interval (a futex and a context switch per
    // commit otherwise).
    bool wake;
    {
      std::lock_guard l(mu_);
      wake = idle_ && !work_;
      work_ = true;
    }
    if (wake) cv_.notify_all();
  });
  thread_ = std::thread([this] { Run(); });
}

void Shipper::Stop() {
  std::thread thread;
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    stop_ = true;
    thread = std::move(thread_);
  }
  wal_->SetDurableListener(nullptr);
  cv_.notify_all();
  thread.join();
}

void Shipper::Run() {
  pthread_setname_np(pthread_self(), "weft-shipper");
  if (options_.nice_increment != 0) {
    // Linux applies a nice value to the calling thread only; failure (e.g. no permission to
    // lower it) just leaves the default.
    errno = 0;
    const int current = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
    if (errno == 0) {
      (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()),
                        std::min(19, current + options_.nice_increment));
    }
  }
  // SCHED_IDLE only where the thread may leave it again: an unprivileged thread needs
  // RLIMIT_NICE (or CAP_SYS_NICE) to return to SCHED_OTHER, and one stuck idle would fall behind
  // for as long as the CPUs stay busy. A probe thread (same nice value) tries the round trip.
  const bool use_idle = options_.idle_while_keeping_up && IdlePolicyIsReversible();
  if (use_idle) SetIdlePriority(true);
  absl::Duration backoff = absl::ZeroDuration();
  std::string last_warning;
  while (true) {
    bool sync = false;
    {
      std::unique_lock lock(mu_);
      idle_ = true;
      if (checkpointed_ < shipped_ && !stop_) {
        // Records are in the store but not yet durably: wait for work, at most until the sync is
        // due (so an idle gateway's checkpoint follows within sync_interval).
        cv_.wait_until(lock, absl::ToChronoTime(last_sync_ + options_.sync_interval),
                       [&] { return stop_ || work_; });
      } else {
        cv_.wait(lock, [&] { return stop_ || work_; });
      }
      idle_ = false;
      if (stop_) break;
      work_ = false;
      sync = urgent_ || absl::Now() >= last_sync_ + options_.sync_interval;
    }
    absl::StatusOr<int64_t> shipped = [&] {
      std::lock_guard ship(ship_mu_);
      return ShipOnceLocked(sync);
    }();
    if (use_idle) {
      // Keeping up unless the round filled a batch (or failed: retrying stays in the background).
      const bool keeping_up =
          !shipped.ok() || *shipped < static_cast<int64_t>(options_.max_batch_records);
      SetIdlePriority(keeping_up);
    }
    if (shipped.ok()) {
      backoff = absl::ZeroDuration();
      last_warning.clear();
      std::unique_lock lock(mu_);
      if (*shipped > 0) work_ = true;  // there may be more behind this batch
      if (*shipped > 0 && options_.min_interval > absl::ZeroDuration() && !urgent_) {
        // Let records gather for one larger round (unless a batch filled up or Flush waits).
        if (*shipped < static_cast<int64_t>(options_.max_batch_records)) {
          cv_.wait_for(lock, absl::ToChronoMicroseconds(options_.min_interval),
                       [&] { return stop_ || urgent_; });
        }
      }
      urgent_ = false;
      continue;
    }
    // The store (or the disk) failed: the records wait in the WAL. Warn once per distinct error.
    const std::string warning =
        absl::StrCat("usage ledger shipping failed, will retry: ", shipped.status().ToString());
    if (warning != last_warning) Warn(warning);
    last_warning = warning;
    backoff = std::min(options_.retry_max, std::max(options_.retry_initial, backoff * 2));
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, absl::ToChronoMilliseconds(backoff), [&] { return stop_; });
    if (stop_) break;
    work_ = true;
  }
  // Stopping: what is in the store becomes durable and the checkpoint follows (else the next
  // start re-ships it, which is harmless).
  std::lock_guard ship(ship_mu_);
  if (absl::Status s = SyncLocked(); !s.ok()) {
    Warn(absl::StrCat("usage ledger store not synced at stop (the next start re-ships from ",
                      PosText(checkpointed()), "): ", s.ToString()));
  }
}

bool Shipper::IdlePolicyIsReversible() {
  bool reversible = false;
  std::thread([&reversible] {
    sched_param param{};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0) return;
    reversible = pthread_setschedparam(pthread_self(), SCHED_OTHER, &param) == 0;
  }).join();
  return reversible;
}

void Shipper::SetIdlePriority(bool idle) {
  if (idle == idle_priority_) return;
  // For the calling thread only; SCHED_OTHER keeps the thread's nice value. A kernel without
  // SCHED_IDLE (or a seccomp filter) leaves the policy as it was: the shipper still works.
  sched_param param{};
  if (pthread_setschedparam(pthread_self(), idle ? SCHED_IDLE : SCHED_OTHER, &param) == 0) {
    idle_priority_ = idle;
  }
}

absl::Status Shipper::Flush(absl::Duration timeout) {
  const WalPosition target = wal_->DurableEnd();
  const absl::Time deadline = absl::Now() + timeout;
  std::unique_lock lock(mu_);
  while (checkpointed_ < target) {
    if (!thread_.joinable()) {
      const WalPosition before = checkpointed_;
      lock.unlock();
      absl::StatusOr<int64_t> n = ShipOnce();
      if (!n.ok()) return n.status();
      lock.lock();
      if (checkpointed_ == before) {
        return absl::InternalError(absl::StrCat("usage ledger WAL ends at ", PosText(shipped_),
                                                " before its durable end ", PosText(target)));
      }
      continue;
    }
    work_ = true;
    urgent_ = true;
    cv_.notify_all();
    if (deadline == absl::InfiniteFuture()) {
      cv_.wait(lock);
    } else if (cv_.wait_for(lock, absl::ToChronoMilliseconds(
                                      std::max(absl::ZeroDuration(), deadline - absl::Now()))) ==
                   std::cv_status::timeout &&
               checkpointed_ < target) {
      return absl::DeadlineExceededError(
          absl::StrCat("usage ledger not flushed to the store in time (shipped ",
                       PosText(checkpointed_),
                       " of ", PosText(target), ")",
                       last_error_.ok() ? std::string()
                                        : absl::StrCat("; last error: ", last_error_.ToString())));
    }
  }
  return absl::OkStatus();
}

absl::Status Shipper::WithShippingPaused(
    const std::function<absl::Status(WalPosition shipped)>& fn) {
  std::lock_guard ship(ship_mu_);
  return fn(shipped());
}

WalPosition Shipper::shipped() const {
  std::lock_guard lock(mu_);
  return shipped_;
}

WalPosition Shipper::checkpointed() const {
  std::lock_guard lock(mu_);
  return checkpointed_;
}

absl::Status Shipper::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

}  // namespace weft::gateway
