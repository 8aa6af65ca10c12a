// SPDX-License-Identifier: Apache-2.0
// LocalProvider: replicas as `weft engine` child processes on this machine, the embedded default.
// A fixed number of slots of one accelerator kind; each engine listens on a free port of
// 127.0.0.1 and logs to <log_dir>/<replica id>.log. A monitor thread polls GET /health of starting
// engines (kReady), reaps exits (kFailed with the exit status) and escalates SIGTERM to SIGKILL
// after the grace period. Owned by the control plane; thread-safe; the destructor stops every
// engine (SIGTERM, then SIGKILL after the grace period).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/process.h"
#include "control/providers/provider.h"

namespace weft::control {

struct LocalProviderOptions {
  std::string weft_binary;          // path of the `weft` executable that runs `weft engine`
  std::string log_dir;              // engine logs; created when missing
  int slots = 1;                    // engines that may run at once (x accelerator_count)
  std::string accelerator = "cpu";  // the accelerator kind the slots are
  std::string region = "local";
  double usd_per_hour = 0;         // per slot, for placement
  std::string host = "127.0.0.1";  // engines listen here (--host); endpoints use it
  double ready_timeout_s = 120;    // kStarting longer than this -> kFailed (and killed)
  double terminate_grace_s = 10;   // SIGTERM -> SIGKILL
  double poll_interval_s = 0.1;    // monitor period (health probes, reaping)
};

class LocalProvider final : public Provider {
 public:
  // NotFound when weft_binary is not executable; Internal when log_dir cannot be created.
  static absl::StatusOr<std::unique_ptr<LocalProvider>> Create(LocalProviderOptions options);
  ~LocalProvider() override;

  absl::StatusOr<ProviderCapacity> Capacity() override;
  absl::StatusOr<ReplicaStatus> Provision(const ReplicaSpec& spec) override;
  absl::Status Terminate(const ReplicaId& id) override;
  absl::StatusOr<std::vector<ReplicaStatus>> List() override;
  ProviderHealth Health() override;

  // The engine's pid while its process runs (tests kill it to see failure reporting).
  std::optional<pid_t> PidOf(const ReplicaId& id) const;
  // The argv `weft engine` gets for `spec` on `port` (exposed for tests and docs).
  static std::vector<std::string> EngineArgv(const LocalProviderOptions& options,
                                             const ReplicaSpec& spec, uint16_t port);

 private:
  using Clock = std::chrono::steady_clock;
  struct Replica {
    ReplicaSpec spec;
    ReplicaStatus status;
    std::optional<Process> process;  // reset once reaped
    uint64_t serial = 0;             // tells a re-provisioned id from the replica it replaced
    uint16_t port = 0;
    std::string log_path;
    Clock::time_point ready_deadline;
    bool terminating = false;
    Clock::time_point kill_at;  // SIGKILL when still running by then (terminating)
  };

  explicit LocalProvider(LocalProviderOptions options);
  void ReapLocked();  // waitpid every child; exits -> kFailed or erased; deadlines
  int UsedSlotsLocked() const;
  absl::StatusOr<uint16_t> PickPortLocked() const;
  void MonitorLoop();

  const LocalProviderOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<ReplicaId, Replica> replicas_;
  uint64_t next_serial_ = 1;
  std::thread monitor_;
};

}  // namespace weft::control
