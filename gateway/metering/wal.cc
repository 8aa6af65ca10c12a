// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/wal.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "gateway/metering/wal_format.h"

namespace weft::gateway {
namespace {

constexpr uint64_t kReadChunkBytes = 1 << 20;  // >= kWalMaxFrameBytes, so a chunk holds a frame

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(errno, absl::StrCat(std::string(what), " ", path));
}

std::string SegmentName(uint64_t seq) { return absl::StrFormat("wal-%016d.log", seq); }

// The sequence number of a segment file name, or 0 if it is not one.
uint64_t ParseSegmentName(std::string_view name) {
  if (name.size() != 24 || !name.starts_with("wal-") || !name.ends_with(".log")) return 0;
  uint64_t seq = 0;
  const auto digits = name.substr(4, 16);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return 0;
  return seq;
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open directory", dir);
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return rc == 0 ? absl::OkStatus() : Errno("fsync directory", dir);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  std::string data;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("read", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

absl::Status PreadFull(int fd, char* out, size_t n, uint64_t offset, const std::string& path) {
  while (n > 0) {
    const ssize_t got = ::pread(fd, out, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Errno("read", path);
    if (got == 0)
      return absl::DataLossError(absl::StrCat(path, " is shorter than its durable size"));
    out += got;
    n -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

}  // namespace

Wal::Wal(WalOptions options) : options_(std::move(options)) {}

Wal::~Wal() { (void)Close(); }

void Wal::Warn(std::string_view message) const {
  if (options_.warn) {
    options_.warn(message);
  } else {
    std::fprintf(stderr, "weft ledger: warning: %.*s\n", static_cast<int>(message.size()),
                 message.data());
  }
}

absl::StatusOr<std::unique_ptr<Wal>> Wal::Open(WalOptions options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("WAL directory not set");
  if (options.segment_bytes == 0 || options.max_batch_bytes == 0) {
    return absl::InvalidArgumentError("WAL segment_bytes and max_batch_bytes must be > 0");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("create WAL directory ", options.dir, ": ", ec.message()));
  }
  std::unique_ptr<Wal> wal(new Wal(std::move(options)));
  const std::string lock_path = wal->options_.dir + "/LOCK";
  wal->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (wal->lock_fd_ < 0) return Errno("open", lock_path);
  if (::flock(wal->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat("ledger WAL directory ", wal->options_.dir,
                                                        " is in use by another ledger (", lock_path,
                                                        " is locked)"));
    }
    return Errno("flock", lock_path);
  }
  WEFT_RETURN_IF_ERROR(wal->Recover());
  Wal* raw = wal.get();
  wal->writer_ = std::thread([raw] { raw->WriterLoop(); });
  return wal;
}

absl::Status Wal::Recover() {
  std::vector<uint64_t> seqs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir, ec)) {
    if (const uint64_t seq = ParseSegmentName(entry.path().filename().string()); seq != 0) {
      seqs.push_back(seq);
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("list ", options_.dir, ": ", ec.message()));
  std::sort(seqs.begin(), seqs.end());

  const uint64_t tail_window = std::max(options_.max_batch_bytes, kWalMaxFrameBytes);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::string path = options_.dir + "/" + SegmentName(seqs[i]);
    WEFT_ASSIGN_OR_RETURN(std::string data, ReadWholeFile(path));
    const SegmentScan scan = ScanSegment(data);
    const bool last = i + 1 == seqs.size();
    // Zeros after the data are preallocated space (or a torn write's unwritten part): they are
    // not data, and nothing but zeros after the valid frames is a clean end.
    uint64_t size = EndWithoutZeroTail(data, scan.valid_end);
    const SegmentRecovery plan =
        size == scan.valid_end ? SegmentRecovery{}
                               : PlanSegmentRecovery(scan, size, last, tail_window);
    switch (plan.action) {
      case SegmentRecovery::Action::kKeep:
        break;
      case SegmentRecovery::Action::kCorrupt:
        return absl::DataLossError(absl::StrCat(
            "usage ledger WAL segment ", path, ": ", plan.message, ". Records before offset ",
            scan.valid_end,
            " are intact; the gateway will not guess past damaged billing data. "
            "Copy the segment away for inspection and remove it (or repair it) to continue."));
      case SegmentRecovery::Action::kTruncate: {
        if (::truncate(path.c_str(), static_cast<off_t>(plan.truncate_to)) != 0) {
          return Errno("truncate", path);
        }
        const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) return Errno("open", path);
        const int rc = ::fdatasync(fd);
        ::close(fd);
        if (rc != 0) return Errno("fdatasync", path);
        Warn(absl::StrCat("usage ledger WAL segment ", path, ": ", plan.message));
        recovery_.truncated_bytes += data.size() - plan.truncate_to;  // zeros included
        recovery_.truncated_segment = path;
        size = plan.truncate_to;
        break;
      }
    }
    recovery_.records += static_cast<int64_t>(scan.frames.size());
    segments_[seqs[i]] = size;
  }
  recovery_.segments = static_cast<int>(seqs.size());

  if (segments_.empty()) {
    WEFT_RETURN_IF_ERROR(OpenActive(1, /*create=*/true));
  } else if (segments_.rbegin()->second >= options_.segment_bytes) {
    WEFT_RETURN_IF_ERROR(OpenActive(segments_.rbegin()->first + 1, /*create=*/true));
  } else {
    WEFT_RETURN_IF_ERROR(OpenActive(segments_.rbegin()->first, /*create=*/false,
                                    segments_.rbegin()->second));
  }
  segments_[active_seq_] = active_size_;
  durable_end_ = {active_seq_, active_size_};
  return absl::OkStatus();
}

absl::Status Wal::OpenActive(uint64_t seq, bool create, uint64_t data_size) {
  const std::string path = options_.dir + "/" + SegmentName(seq);
  const int flags = O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return Errno("open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = Errno("stat", path);
    ::close(fd);
    return s;
  }
  if (create) {
    // The new name must be durable before records in it are acknowledged.
    if (absl::Status s = SyncDir(options_.dir); !s.ok()) {
      ::close(fd);
      return s;
    }
  }
  if (active_fd_ >= 0) {
    // The sealed segment loses its preallocated tail (recovery would skip it anyway).
    (void)::ftruncate(active_fd_, static_cast<off_t>(active_size_));
    ::close(active_fd_);
  }
  active_fd_ = fd;
  active_seq_ = seq;
  active_allocated_ = static_cast<uint64_t>(st.st_size);
  active_size_ = create ? 0 : std::min(data_size, active_allocated_);
  return absl::OkStatus();
}

absl::Status Wal::Preallocate(uint64_t need) {
  const std::string path = options_.dir + "/" + SegmentName(active_seq_);
  uint64_t target = need;
  if (options_.preallocate_bytes > 0) {
    target = std::max(need, std::min(active_size_ + options_.preallocate_bytes,
                                     std::max(options_.segment_bytes, need)));
  }
  if (target <= active_allocated_) return absl::OkStatus();
  // Written zeros, not fallocate(): ext4 keeps fallocated blocks "unwritten", and converting them
  // on the first write is a metadata change each fdatasync would carry again.
  static const std::string kZeros(64 << 10, '\0');
  uint64_t at = active_allocated_;
  while (at < target) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kZeros.size(), target - at));
    const ssize_t w = ::pwrite(active_fd_, kZeros.data(), n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Errno("preallocate", path);
    at += static_cast<uint64_t>(w);
  }
  if (::fdatasync(active_fd_) != 0) return Errno("fdatasync", path);
  active_allocated_ = target;
  return absl::OkStatus();
}

absl::StatusOr<WalPosition> Wal::WriteBatch(const std::string& batch) {
  if (active_size_ > 0 && active_size_ + batch.size() > options_.segment_bytes) {
    // Every batch in the old segment was fdatasync'ed before its appenders returned, so the old
    // segment is sealed and whole; recovery relies on this.
    WEFT_RETURN_IF_ERROR(OpenActive(active_seq_ + 1, /*create=*/true));
  }
  if (options_.preallocate_bytes > 0 && active_size_ + batch.size() > active_allocated_) {
    WEFT_RETURN_IF_ERROR(Preallocate(active_size_ + batch.size()));
  }
  const std::string path = options_.dir + "/" + SegmentName(active_seq_);
  size_t done = 0;
  while (done < batch.size()) {
    const ssize_t n = ::pwrite(active_fd_, batch.data() + done, batch.size() - done,
                               static_cast<off_t>(active_size_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("write", path);
    done += static_cast<size_t>(n);
  }
  // Inside the preallocated space this flushes the data blocks only; past it (preallocation off)
  // fdatasync also flushes the file size, which is all the metadata a reader needs.
  if (::fdatasync(active_fd_) != 0) return Errno("fdatasync", path);
  active_size_ += batch.size();
  active_allocated_ = std::max(active_allocated_, active_size_);
  return WalPosition{active_seq_, active_size_};
}

uint64_t Wal::EnqueueLocked(std::string frame) {
  pending_sizes_.push_back(frame.size());
  if (pending_.empty()) {
    pending_ = std::move(frame);
  } else {
    pending_ += frame;
  }
  return ++next_ticket_;
}

void Wal::LeadBatch(std::unique_lock<std::mutex>& lock) {
  // Take what has queued up (bounded by max_batch_bytes), write it and fdatasync once for all of
  // it while later appenders queue behind. Tickets in pending_ are consecutive from
  // durable_ticket_ + 1 because no other batch is in flight.
  leader_busy_ = true;
  std::string batch;
  uint64_t taken = 0;
  if (pending_.size() <= options_.max_batch_bytes) {
    batch.swap(pending_);
    taken = pending_sizes_.size();
    pending_sizes_.clear();
  } else {
    uint64_t bytes = 0;
    while (!pending_sizes_.empty() &&
           (taken == 0 || bytes + pending_sizes_.front() <= options_.max_batch_bytes)) {
      bytes += pending_sizes_.front();
      pending_sizes_.pop_front();
      ++taken;
    }
    batch = pending_.substr(0, bytes);
    pending_.erase(0, bytes);
  }
  const uint64_t batch_last = durable_ticket_ + taken;
  lock.unlock();
  absl::StatusOr<WalPosition> end = WriteBatch(batch);
  lock.lock();
  leader_busy_ = false;
  std::shared_ptr<std::function<void()>> listener;
  if (end.ok()) {
    durable_ticket_ = batch_last;
    stats_.records += static_cast<int64_t>(taken);
    stats_.batches += 1;
    segments_[end->segment] = end->offset;
    durable_end_ = *end;
    listener = listener_;
  } else {
    failed_ = end.status();
  }
  // Async appenders this batch completed (all of them after a failure: nothing more is written).
  std::vector<std::function<void(absl::Status)>> completed;
  while (!async_waiters_.empty() &&
         (!failed_.ok() || async_waiters_.front().first <= durable_ticket_)) {
    completed.push_back(std::move(async_waiters_.front().second));
    async_waiters_.pop_front();
  }
  const absl::Status result = failed_;
  if (listener) ++listener_calls_;
  cv_.notify_all();
  if (!pending_.empty() || closed_) writer_cv_.notify_one();
  if (!completed.empty() || listener) {
    lock.unlock();
    for (auto& done : completed) done(result);
    if (listener) (*listener)();
    lock.lock();
    if (listener) {
      --listener_calls_;
      cv_.notify_all();
    }
  }
}

absl::Status Wal::Append(const UsageRecord& record) {
  if (record.request_id.empty()) {
    return absl::InvalidArgumentError("usage record without request_id");
  }
  std::string frame;
  WEFT_RETURN_IF_ERROR(AppendWalFrame(record, frame));

  std::unique_lock lock(mu_);
  if (closed_) return absl::FailedPreconditionError("usage ledger WAL is closed");
  if (!failed_.ok()) return failed_;
  const uint64_t ticket = EnqueueLocked(std::move(frame));
  while (durable_ticket_ < ticket) {
    if (!failed_.ok()) return failed_;
    if (leader_busy_) {
      cv_.wait(lock);
      continue;
    }
    LeadBatch(lock);
  }
  return absl::OkStatus();
}

void Wal::AppendAsync(const UsageRecord& record, std::function<void(absl::Status)> done) {
  if (record.request_id.empty()) {
    return done(absl::InvalidArgumentError("usage record without request_id"));
  }
  std::string frame;
  if (absl::Status s = AppendWalFrame(record, frame); !s.ok()) return done(std::move(s));
  std::unique_lock lock(mu_);
  if (closed_) {
    lock.unlock();
    return done(absl::FailedPreconditionError("usage ledger WAL is closed"));
  }
  if (!failed_.ok()) {
    absl::Status s = failed_;
    lock.unlock();
    return done(std::move(s));
  }
  const uint64_t ticket = EnqueueLocked(std::move(frame));
  async_waiters_.emplace_back(ticket, std::move(done));
  // Notified after unlocking: a writer woken with the lock still held would block on it at once.
  const bool wake = !leader_busy_;
  lock.unlock();
  if (wake) writer_cv_.notify_one();
}

void Wal::WriterLoop() {
  pthread_setname_np(pthread_self(), "weft-wal");
  std::unique_lock lock(mu_);
  while (true) {
    writer_cv_.wait(lock, [&] {
      return (closed_ && (pending_.empty() || !failed_.ok())) ||
             (!pending_.empty() && !leader_busy_ && failed_.ok());
    });
    if (pending_.empty() || !failed_.ok()) {
      if (closed_) return;
      continue;
    }
    LeadBatch(lock);
  }
}

WalPosition Wal::Start() const {
  std::lock_guard lock(mu_);
  return {segments_.begin()->first, 0};
}

WalPosition Wal::DurableEnd() const {
  std::lock_guard lock(mu_);
  return durable_end_;
}

WalStats Wal::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Wal::SetDurableListener(std::function<void()> fn) {
  std::unique_lock lock(mu_);
  // After this returns the old listener is not running and will not run again.
  cv_.wait(lock, [&] { return listener_calls_ == 0; });
  listener_ = fn ? std::make_shared<std::function<void()>>(std::move(fn)) : nullptr;
}

absl::StatusOr<WalReadResult> Wal::Read(WalPosition from, size_t max_records) const {
  std::map<uint64_t, uint64_t> segments;
  WalPosition end;
  {
    std::lock_guard lock(mu_);
    segments = segments_;
    end = durable_end_;
  }
  WalReadResult result;
  WalPosition pos = std::max(from, WalPosition{segments.begin()->first, 0});
  if (pos > end) {
    return absl::InvalidArgumentError(absl::StrCat("WAL position ", pos.segment, ":", pos.offset,
                                                   " is past the durable end ", end.segment, ":",
                                                   end.offset));
  }
  std::string chunk;
  while (result.records.size() < max_records) {
    auto it = segments.lower_bound(pos.segment);
    if (it == segments.end()) break;
    if (it->first != pos.segment) pos = {it->first, 0};
    const uint64_t size = it->second;
    if (pos.offset >= size) {
      if (std::next(it) == segments.end()) break;
      pos = {std::next(it)->first, 0};
      continue;
    }
    const std::string path = options_.dir + "/" + SegmentName(pos.segment);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open", path);
    chunk.resize(std::min(size - pos.offset, kReadChunkBytes));
    absl::Status read = PreadFull(fd, chunk.data(), chunk.size(), pos.offset, path);
    ::close(fd);
    WEFT_RETURN_IF_ERROR(read);
    SegmentScan scan = ScanSegment(chunk, max_records - result.records.size());
    for (auto& frame : scan.frames) result.records.push_back(std::move(frame.record));
    const bool cut_by_chunk =
        scan.stop == SegmentScan::Stop::kIncomplete && pos.offset + chunk.size() < size;
    if ((scan.stop != SegmentScan::Stop::kEnd && !cut_by_chunk) || scan.valid_end == 0) {
      return absl::DataLossError(
          absl::StrCat("usage ledger WAL segment ", path, ": durable data damaged at offset ",
                       pos.offset + scan.valid_end, " (", scan.problem, ")"));
    }
    pos.offset += scan.valid_end;
  }
  // At the end of a sealed segment, point at the next one so the sealed one can be deleted.
  if (auto it = segments.find(pos.segment);
      it != segments.end() && pos.offset >= it->second && std::next(it) != segments.end()) {
    pos = {std::next(it)->first, 0};
  }
  result.next = pos;
  return result;
}

absl::Status Wal::RemoveSegmentsBefore(uint64_t segment) {
  std::vector<uint64_t> doomed;
  {
    std::lock_guard lock(mu_);
    // The newest segment may be the one being written (or about to be sealed): never delete it.
    const uint64_t newest = segments_.rbegin()->first;
    for (auto it = segments_.begin(); it != segments_.end() && it->first < segment;) {
      if (it->first == newest) break;
      doomed.push_back(it->first);
      it = segments_.erase(it);
    }
  }
  for (const uint64_t seq : doomed) {
    const std::string path = options_.dir + "/" + SegmentName(seq);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("unlink", path);
  }
  return absl::OkStatus();
}

absl::Status Wal::Close() {
  std::unique_lock lock(mu_);
  if (lock_fd_ < 0) return absl::OkStatus();
  closed_ = true;
  // Appends already queued finish (or fail) before the files close: the writer thread drains the
  // queue and exits.
  writer_cv_.notify_all();
  if (writer_.joinable()) {
    std::thread writer = std::move(writer_);
    lock.unlock();
    writer.join();
    lock.lock();
  }
  cv_.wait(lock,
           [&] { return !leader_busy_ && (durable_ticket_ == next_ticket_ || !failed_.ok()); });
  // After a failure, callbacks still queued get it (LeadBatch normally hands it to them).
  std::vector<std::function<void(absl::Status)>> left;
  for (auto& [ticket, done] : async_waiters_) left.push_back(std::move(done));
  async_waiters_.clear();
  if (active_fd_ >= 0) {
    // A clean close leaves no preallocated tail behind.
    if (failed_.ok()) (void)::ftruncate(active_fd_, static_cast<off_t>(active_size_));
    ::close(active_fd_);
  }
  active_fd_ = -1;
  ::close(lock_fd_);  // releases the flock
  lock_fd_ = -1;
  const absl::Status result = failed_;
  lock.unlock();
  for (auto& done : left) done(result.ok() ? absl::FailedPreconditionError("WAL closed") : result);
  return result;
}

}  // namespace weft::gateway
