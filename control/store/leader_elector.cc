// SPDX-License-Identifier: Apache-2.0
#include "control/store/leader_elector.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace weft::control {

PollingLeaderElector::~PollingLeaderElector() {
  // The subclass has resigned already (its lock operations are gone by now).
  if (thread_.joinable()) thread_.join();
}

absl::Status PollingLeaderElector::Campaign(Callback on_change) {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return absl::FailedPreconditionError("already campaigning");
  stop_ = false;
  thread_ = std::thread([this, cb = std::move(on_change)] { Loop(cb); });
  return absl::OkStatus();
}

void PollingLeaderElector::Resign() {
  std::thread t;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

void PollingLeaderElector::Loop(Callback on_change) {
  const auto interval = std::chrono::milliseconds(std::max<int64_t>(options_.retry_interval_ms, 1));
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    if (!leader_.load()) {
      if (TryAcquire()) {
        leader_.store(true);
        if (on_change) on_change(true);
      }
    } else if (!StillHeld()) {
      leader_.store(false);
      Release();
      if (on_change) on_change(false);
    }
    lock.lock();
    cv_.wait_for(lock, interval, [this] { return stop_; });
  }
  lock.unlock();
  if (leader_.load()) {
    // Stop acting first, then let a standby in.
    leader_.store(false);
    if (on_change) on_change(false);
  }
  Release();
}

std::string LeaderLockPathFor(const std::string& sqlite_path) {
  return absl::StrCat(sqlite_path, ".leader");
}

int64_t AdvisoryLockKey(const std::string& name) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h);
}

FlockLeaderElector::FlockLeaderElector(std::string lock_path, LeaderElectorOptions options)
    : PollingLeaderElector(std::move(options)), path_(std::move(lock_path)) {}

FlockLeaderElector::~FlockLeaderElector() { Resign(); }

bool FlockLeaderElector::TryAcquire() {
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return false;
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) return false;
  // Who leads, for people looking at the file; the lock is what counts.
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
  return true;
}

bool FlockLeaderElector::StillHeld() {
  // Someone removed or replaced the lock file: a newcomer can lock the new one, so stop leading.
  struct stat held {
  }, now{};
  if (::fstat(fd_, &held) != 0 || ::stat(path_.c_str(), &now) != 0) return false;
  return held.st_ino == now.st_ino && held.st_dev == now.st_dev;
}

void FlockLeaderElector::Release() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace weft::control
