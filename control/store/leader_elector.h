// SPDX-License-Identifier: Apache-2.0
// LeaderElector: makes one of several `weft control` instances the leader (the one that
// reconciles); the others stand by and take over when it dies. Implementations:
// PostgresLeaderElector (a session advisory lock; instances on many machines) and
// FlockLeaderElector (an flock on a file next to the SQLite database; one machine).
// Campaign runs a background thread owned by the elector; the methods are thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace weft::control {

class LeaderElector {
 public:
  // Called on the elector's thread: true on gaining leadership, false on losing it (lock lost, or
  // Resign). It must not call Resign or destroy the elector.
  using Callback = std::function<void(bool is_leader)>;
  virtual ~LeaderElector() = default;

  // Starts campaigning in the background and returns at once; a standby retries every
  // retry interval. FailedPrecondition when already campaigning.
  virtual absl::Status Campaign(Callback on_change) = 0;
  // Whether this instance holds leadership now (it turns just before on_change runs).
  virtual bool IsLeader() const = 0;
  // Stops campaigning; when leader, calls on_change(false) and then releases the lock, so that no
  // two instances act at once. Blocks until done; idempotent; Campaign may be called again after.
  virtual void Resign() = 0;
};

struct LeaderElectorOptions {
  std::string name = "weft-control";  // the election; instances with the same name compete
  int64_t retry_interval_ms = 1000;   // how often a standby tries, and a leader checks its lock
  int64_t check_timeout_ms = 5000;    // a lock check that takes longer means leadership is lost
};

// The background loop shared by the implementations: try to acquire while standby, check while
// leader. Subclasses implement the three lock operations, all called on the loop's thread.
class PollingLeaderElector : public LeaderElector {
 public:
  explicit PollingLeaderElector(LeaderElectorOptions options) : options_(std::move(options)) {}
  ~PollingLeaderElector() override;  // subclasses must call Resign() in their destructor

  absl::Status Campaign(Callback on_change) override;
  bool IsLeader() const override { return leader_.load(); }
  void Resign() override;

 protected:
  virtual bool TryAcquire() = 0;  // true when the lock is now held by this instance
  virtual bool StillHeld() = 0;   // false when the lock was lost
  virtual void Release() = 0;     // releases the lock (if held) and any connection

  const LeaderElectorOptions options_;

 private:
  void Loop(Callback on_change);

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
  std::atomic<bool> leader_{false};
};

// An flock(LOCK_EX) on `lock_path`, created if missing. Leadership ends when this process dies or
// the lock file is replaced. Works between processes on one machine (not over NFS).
class FlockLeaderElector : public PollingLeaderElector {
 public:
  FlockLeaderElector(std::string lock_path, LeaderElectorOptions options = {});
  ~FlockLeaderElector() override;

 protected:
  bool TryAcquire() override;
  bool StillHeld() override;
  void Release() override;

 private:
  const std::string path_;
  int fd_ = -1;
};

// The lock file FlockLeaderElector uses next to a SQLite database: "<db>.leader".
std::string LeaderLockPathFor(const std::string& sqlite_path);

#ifdef WEFT_HAVE_POSTGRES
// pg_try_advisory_lock(key) on a dedicated connection, key derived from options.name. Leadership
// ends when that connection dies (the server then releases the lock) or a check query fails or
// times out.
std::unique_ptr<LeaderElector> NewPostgresLeaderElector(std::string conninfo,
                                                        LeaderElectorOptions options = {});
#endif

// The advisory lock key for an election name (FNV-1a, 64-bit).
int64_t AdvisoryLockKey(const std::string& name);

}  // namespace weft::control
