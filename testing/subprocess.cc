// SPDX-License-Identifier: Apache-2.0
#include "testing/subprocess.h"

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "testing/http_client.h"

namespace weft::testing {

absl::StatusOr<Subprocess> Subprocess::Start(const std::vector<std::string>& argv,
                                             const std::string& log_path) {
  absl::StatusOr<weft::Process> p = weft::Process::Spawn(argv, log_path);
  if (!p.ok()) return p.status();
  return Subprocess(*std::move(p));
}

uint16_t FreeLoopbackPort() {
  absl::StatusOr<uint16_t> port = weft::FreeLoopbackPort();
  return port.ok() ? *port : 0;
}

absl::Status WaitForHttp200(uint16_t port, const std::string& path, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  absl::Status last = absl::DeadlineExceededError("never tried");
  while (std::chrono::steady_clock::now() < deadline) {
    auto c = HttpClient::Connect("127.0.0.1", port, 1);
    if (c.ok()) {
      auto r = (*c)->Request("GET", path);
      if (r.ok() && r->status == 200) return absl::OkStatus();
      last = r.ok() ? absl::UnavailableError(absl::StrCat("status ", r->status)) : r.status();
    } else {
      last = c.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("127.0.0.1:", port, path, " not 200 within ", timeout_s, " s: ", last.message()));
}

}  // namespace weft::testing
