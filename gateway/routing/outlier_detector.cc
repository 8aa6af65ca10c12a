// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/outlier_detector.h"

#include <algorithm>
#include <cmath>

namespace weft::gateway {

void OutlierDetector::SetReplicas(std::span<const std::string> ids) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, Entry, std::less<>> next;
  for (const std::string& id : ids) {
    auto it = entries_.find(id);
    next[id] = it == entries_.end() ? Entry{} : it->second;
  }
  entries_ = std::move(next);
}

void OutlierDetector::Decay(Entry& e, double now_s) const {
  // Each base_ejection_s back in rotation forgives one past ejection.
  if (e.times_ejected == 0 || now_s < e.until_s) return;
  double from = std::max(e.decay_from_s, e.until_s);
  int steps = static_cast<int>(std::floor((now_s - from) / config_.base_ejection_s));
  if (steps <= 0) return;
  e.times_ejected = std::max(0, e.times_ejected - steps);
  e.decay_from_s = from + steps * config_.base_ejection_s;
}

int OutlierDetector::EjectedCountLocked(double now_s) const {
  int n = 0;
  for (const auto& [id, e] : entries_) n += now_s < e.until_s ? 1 : 0;
  return n;
}

bool OutlierDetector::RecordFailure(std::string_view replica, double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(replica);
  if (it == entries_.end()) return false;  // not (or no longer) in the pool
  Entry& e = it->second;
  if (now_s < e.until_s) return false;
  Decay(e, now_s);
  if (++e.consecutive < config_.consecutive_failures) return false;
  if (config_.max_ejection_percent <= 0) return false;
  int allowed = std::max(1, static_cast<int>(std::floor(static_cast<double>(entries_.size()) *
                                                        config_.max_ejection_percent / 100.0)));
  if (EjectedCountLocked(now_s) + 1 > allowed) return false;  // stays; ejected when room frees
  ++e.times_ejected;
  e.consecutive = 0;
  e.until_s = now_s + std::min(config_.base_ejection_s * e.times_ejected, config_.max_ejection_s);
  e.decay_from_s = e.until_s;
  ++ejections_;
  return true;
}

void OutlierDetector::RecordSuccess(std::string_view replica, double now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(replica);
  if (it == entries_.end() || now_s < it->second.until_s) return;
  it->second.consecutive = 0;
  Decay(it->second, now_s);
}

bool OutlierDetector::IsEjected(std::string_view replica, double now_s) const {
  return EjectedUntil(replica, now_s) > 0;
}

double OutlierDetector::EjectedUntil(std::string_view replica, double now_s) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(replica);
  if (it == entries_.end() || now_s >= it->second.until_s) return 0;
  return it->second.until_s;
}

int OutlierDetector::EjectedCount(double now_s) const {
  std::lock_guard<std::mutex> lock(mu_);
  return EjectedCountLocked(now_s);
}

int64_t OutlierDetector::ejections_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ejections_;
}

}  // namespace weft::gateway
