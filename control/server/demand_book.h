// SPDX-License-Identifier: Apache-2.0
// DemandBook: how many requests the gateways hold per deployment because it has no ready replica
// (scale from zero), as they report it on POST /weft/v1/demand. In memory only, with an expiry: a
// gateway reports at once when it starts holding and then every second while it holds, so a report
// not renewed within ttl_ms (a gateway that died or stopped holding) counts no more.
// Owned by `weft control`; written by ControlServer, read by the Controller. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace weft::control {

struct DemandBookOptions {
  int64_t ttl_ms = 3000;
  std::function<int64_t()> now_ms;  // empty = steady clock
};

class DemandBook {
 public:
  explicit DemandBook(DemandBookOptions options = {});

  // One gateway's report; replaces its previous one (deployments left out hold nothing).
  void Report(const std::string& gateway, std::map<std::string, int64_t> held);
  // Requests held for `deployment` over the gateways with a fresh report.
  int64_t Held(const std::string& deployment) const;

 private:
  struct Entry {
    int64_t at_ms = 0;
    std::map<std::string, int64_t> held;  // deployment -> requests
  };
  int64_t Now() const;

  const DemandBookOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> gateways_;  // guarded by mu_
};

}  // namespace weft::control
