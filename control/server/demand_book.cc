// SPDX-License-Identifier: Apache-2.0
#include "control/server/demand_book.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace weft::control {

DemandBook::DemandBook(DemandBookOptions options) : options_(std::move(options)) {}

int64_t DemandBook::Now() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void DemandBook::Report(const std::string& gateway, std::map<std::string, int64_t> held) {
  const int64_t now = Now();
  std::lock_guard lock(mu_);
  // Expired gateways go here, so that the book stays as small as the set of live gateways.
  std::erase_if(gateways_, [&](const auto& kv) { return now - kv.second.at_ms > options_.ttl_ms; });
  std::erase_if(held, [](const auto& kv) { return kv.second <= 0; });
  if (held.empty()) {
    gateways_.erase(gateway);
    return;
  }
  gateways_[gateway] = Entry{now, std::move(held)};
}

int64_t DemandBook::Held(const std::string& deployment) const {
  const int64_t now = Now();
  std::lock_guard lock(mu_);
  int64_t total = 0;
  for (const auto& [gateway, e] : gateways_) {
    if (now - e.at_ms > options_.ttl_ms) continue;
    auto it = e.held.find(deployment);
    if (it != e.held.end()) total += it->second;
  }
  return total;
}

}  // namespace weft::control
