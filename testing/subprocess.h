// SPDX-License-Identifier: Apache-2.0
// Subprocess: a child process for multi-process tests (engines, gateways): weft::Process (started
// with argv, stdout+stderr to a log file, no inherited descriptors beyond 0-2, signalled, waited
// for; killed (SIGKILL) and reaped on destruction) with the test harness's names.
// FreeLoopbackPort: a port that was free on 127.0.0.1 a moment ago (bind to 0, read, close).
// Test-only; one thread at a time per object.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/process.h"

namespace weft::testing {

class Subprocess {
 public:
  // Starts argv[0] (a path) with argv; output appended to `log_path` ("" = /dev/null).
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::string& log_path);

  pid_t pid() const { return process_.pid(); }
  bool Signal(int sig) const { return process_.Signal(sig); }  // false if already reaped
  // Waits up to timeout_s for the exit; the raw wait status, or nullopt on timeout.
  std::optional<int> Wait(double timeout_s) { return process_.Wait(timeout_s); }
  bool running() { return pid() > 0 && !process_.Poll().has_value(); }  // reaps when it exited

 private:
  explicit Subprocess(weft::Process process) : process_(std::move(process)) {}
  weft::Process process_;
};

uint16_t FreeLoopbackPort();

// Polls GET `path` on 127.0.0.1:port until it answers 200 or timeout_s passes.
absl::Status WaitForHttp200(uint16_t port, const std::string& path, double timeout_s);

}  // namespace weft::testing
