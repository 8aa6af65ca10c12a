// SPDX-License-Identifier: Apache-2.0
// Process: a child process started with posix_spawn (argv, stdout+stderr appended to a log file, no
// inherited descriptors beyond 0-2), signalled and reaped by its owner. Move-only; the destructor
// SIGKILLs and reaps a child still running, so a dropped Process never leaves a zombie or an
// orphan. One thread at a time per object. FreeLoopbackPort: a port free on 127.0.0.1 a moment ago.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace weft {

class Process {
 public:
  // Starts argv[0] (a path, not searched in PATH) with argv; output appended to `log_path`
  // ("" = /dev/null). NotFound / Internal when the program cannot be started.
  static absl::StatusOr<Process> Spawn(const std::vector<std::string>& argv,
                                       const std::string& log_path);
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // SIGKILL + reap if still running

  pid_t pid() const { return pid_; }
  // Sends `sig`; false once the child has been reaped (never signals a recycled pid).
  bool Signal(int sig) const;
  // The raw wait status if the child has exited (reaping it), else nullopt. Never blocks.
  std::optional<int> Poll();
  // Waits up to timeout_s for the exit; the raw wait status, or nullopt on timeout.
  std::optional<int> Wait(double timeout_s);

 private:
  Process() = default;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// "exited with status 3", "killed by signal 9 (Killed)": a raw wait status in words.
std::string DescribeWaitStatus(int wait_status);

// A port that was free on 127.0.0.1 a moment ago (bind to 0, read it, close); Internal on failure.
absl::StatusOr<uint16_t> FreeLoopbackPort();

}  // namespace weft
