// SPDX-License-Identifier: Apache-2.0
#include "gateway/hold_queue.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace weft::gateway {

HoldQueue::HoldQueue(HoldQueueOptions options) : options_(std::move(options)) {
  thread_ = std::thread([this] { Loop(); });
}

HoldQueue::~HoldQueue() { Shutdown(); }

std::map<std::string, int64_t> HoldQueue::CountsLocked() const {
  std::map<std::string, int64_t> counts;
  for (const auto& [id, e] : held_) counts[e.deployment]++;
  return counts;
}

HoldQueue::Ticket HoldQueue::Hold(const std::string& deployment,
                                  std::function<void(Resume)> resume) {
  std::lock_guard lock(mu_);
  if (stopping_) return {Admission::kFull, 0};
  if (ready_.count(deployment)) return {Admission::kReady, 0};
  int64_t waiting = 0;
  for (const auto& [id, e] : held_) waiting += e.deployment == deployment ? 1 : 0;
  if (waiting >= std::max(options_.max_held_per_deployment, 0)) return {Admission::kFull, 0};
  const uint64_t id = next_id_++;
  const auto timeout = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(options_.hold_timeout_s, 0.0)));
  held_[id] = Entry{deployment, Clock::now() + timeout, std::move(resume)};
  if (waiting == 0) report_now_ = true;  // control hears of a cold deployment at once
  cv_.notify_all();
  return {Admission::kHeld, id};
}

bool HoldQueue::Cancel(uint64_t id) {
  std::lock_guard lock(mu_);
  return held_.erase(id) > 0;
}

void HoldQueue::SetReady(std::set<std::string> ready) {
  std::vector<std::function<void(Resume)>> resumed;
  {
    std::lock_guard lock(mu_);
    ready_ = std::move(ready);
    for (auto it = held_.begin(); it != held_.end();) {
      if (!ready_.count(it->second.deployment)) {
        ++it;
        continue;
      }
      resumed.push_back(std::move(it->second.resume));
      it = held_.erase(it);
    }
    if (!resumed.empty()) {
      report_now_ = true;  // tell control the demand is served
      cv_.notify_all();
    }
  }
  for (auto& r : resumed) r(Resume::kReady);
}

std::map<std::string, int64_t> HoldQueue::Held() const {
  std::lock_guard lock(mu_);
  return CountsLocked();
}

void HoldQueue::Shutdown() {
  std::vector<std::function<void(Resume)>> resumed;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [id, e] : held_) resumed.push_back(std::move(e.resume));
    held_.clear();
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  for (auto& r : resumed) r(Resume::kShutdown);
}

void HoldQueue::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const Clock::time_point now = Clock::now();
    std::vector<std::function<void(Resume)>> expired;
    for (auto it = held_.begin(); it != held_.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      expired.push_back(std::move(it->second.resume));
      it = held_.erase(it);
    }
    const std::map<std::string, int64_t> counts = CountsLocked();
    std::map<std::string, int64_t> report;
    const bool active = !counts.empty() || !reported_.empty();
    if (!active) report_now_ = false;  // held and cancelled before we looked: nothing to say
    if (active && (report_now_ || now >= next_report_)) {
      report = counts;
      for (const std::string& d : reported_) report.emplace(d, 0);  // stopped holding
      reported_.clear();
      for (const auto& [d, n] : counts) reported_.insert(d);
      report_now_ = false;
      next_report_ = now + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(options_.report_interval_s));
    }
    if (!expired.empty() || !report.empty()) {
      lock.unlock();
      for (auto& r : expired) r(Resume::kTimedOut);
      if (!report.empty() && options_.on_demand) options_.on_demand(report);
      lock.lock();
      continue;  // the world may have changed while unlocked
    }
    // Sleep until the next deadline or report, or until Hold / SetReady / Shutdown wakes us.
    Clock::time_point wake = Clock::time_point::max();
    for (const auto& [id, e] : held_) wake = std::min(wake, e.deadline);
    if (!held_.empty() || !reported_.empty()) wake = std::min(wake, next_report_);
    if (report_now_) continue;
    if (wake == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, wake);
    }
  }
}

}  // namespace weft::gateway
