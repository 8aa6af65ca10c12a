// SPDX-License-Identifier: Apache-2.0
// OutlierDetector: passive ejection of failing replicas from one pool (a deployment), after Envoy's
// outlier detection. `consecutive_failures` 5xx answers or connect failures in a row eject a
// replica for base_ejection_s x (times ejected), capped at max_ejection_s; the multiplier decays by
// one for each base_ejection_s spent back in rotation. At most max_ejection_percent of the pool
// (and always at least one replica, when the percent is above 0) is ejected at once. Pure: time is
// a parameter, no I/O. Thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "gateway/config/gateway_config.h"

namespace weft::gateway {

class OutlierDetector {
 public:
  explicit OutlierDetector(OutlierConfig config) : config_(config) {}

  // Replaces the pool's members: state of ids no longer present is dropped, new ids start clean.
  void SetReplicas(std::span<const std::string> ids);

  // One attempt's outcome. A failure is a 5xx answer, a connect failure, a reset or a stall (a 4xx
  // is the client's doing: report it as a success). Returns true when this failure ejected the
  // replica. Outcomes of requests that were already running on an ejected replica are ignored.
  bool RecordFailure(std::string_view replica, double now_s);
  void RecordSuccess(std::string_view replica, double now_s);

  bool IsEjected(std::string_view replica, double now_s) const;
  // When the current ejection ends (0 if not ejected).
  double EjectedUntil(std::string_view replica, double now_s) const;
  int EjectedCount(double now_s) const;
  int64_t ejections_total() const;  // for /metrics

 private:
  struct Entry {
    int consecutive = 0;
    int times_ejected = 0;    // the ejection multiplier
    double until_s = 0;       // ejected while now < until_s
    double decay_from_s = 0;  // the multiplier decays from this time on
  };
  void Decay(Entry& e, double now_s) const;
  int EjectedCountLocked(double now_s) const;

  OutlierConfig config_;
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;  // guarded by mu_
  int64_t ejections_ = 0;                              // guarded by mu_
};

}  // namespace weft::gateway
