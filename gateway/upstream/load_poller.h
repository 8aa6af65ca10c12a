// SPDX-License-Identifier: Apache-2.0
// LoadPoller: active health checks and load snapshots. Every `interval_s` it polls each replica's
// GET /health and GET /weft/v1/load over an UpstreamClient (non-blocking; one poll in flight per
// replica) and reports the result. Owned by the gateway; its own timer thread; on_report runs on
// the client's I/O threads and must not block.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "api/load_report.h"
#include "gateway/upstream/upstream_client.h"

namespace weft::gateway::upstream {

struct PolledReplica {
  std::string id;  // the replica id reported back
  Target target;

  friend bool operator==(const PolledReplica&, const PolledReplica&) = default;
};

struct LoadPollerOptions {
  double interval_s = 1.0;  // from the start of one poll of a replica to the start of the next
  // Each request of a poll; a poll that exceeds them reports DeadlineExceeded.
  Timeouts timeouts{0.5, 1.0, 1.0};
  bool check_health = true;  // GET health_path first; a non-200 answer is Unavailable
  bool fetch_load = true;    // GET load_path; false: a healthy replica reports LoadReport{ready}
  std::string health_path = "/health";
  std::string load_path = "/weft/v1/load";
};

// replica id, the report (or why there is none), and the poll's latency (start of the poll to its
// end, both requests).
using LoadReportFn =
    std::function<void(const std::string& replica_id, absl::StatusOr<api::LoadReport> report,
                       std::chrono::microseconds latency)>;

class LoadPoller {
 public:
  // `client` must outlive the poller. Polling starts with Start().
  LoadPoller(UpstreamClient* client, LoadPollerOptions options, LoadReportFn on_report);
  ~LoadPoller();  // Stop()
  LoadPoller(const LoadPoller&) = delete;
  LoadPoller& operator=(const LoadPoller&) = delete;

  // Replaces the set of replicas (any thread). New ones are polled at once; reports of removed
  // ones (or of a replica whose target changed) still in flight are dropped.
  void SetReplicas(std::vector<PolledReplica> replicas);

  void Start();
  // Stops polling, cancels polls in flight and waits until no on_report runs or will run. Must not
  // be called from on_report. Idempotent.
  void Stop();

 private:
  struct Entry {
    PolledReplica replica;
    uint64_t generation = 0;  // bumped when the replica is (re)added
    bool in_flight = false;
    std::chrono::steady_clock::time_point next_poll{};
    std::shared_ptr<Exchange> exchange;  // the request in flight, if any
  };

  void Loop();
  void Poll(const std::string& id, uint64_t generation, Target target);
  void FetchLoad(const std::string& id, uint64_t generation, Target target,
                 std::chrono::steady_clock::time_point start);
  // Delivers one result unless the replica went away or the poller stopped.
  void Report(const std::string& id, uint64_t generation, absl::StatusOr<api::LoadReport> report,
              std::chrono::steady_clock::time_point start);
  void SetExchange(const std::string& id, uint64_t generation, std::shared_ptr<Exchange> ex);

  UpstreamClient* client_;
  const LoadPollerOptions options_;
  const LoadReportFn on_report_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;  // by replica id; guarded by mu_
  uint64_t next_generation_ = 1;          // guarded by mu_
  bool stopping_ = false;                 // guarded by mu_
  int in_flight_ = 0;                     // polls started and not reported; guarded by mu_
  std::thread thread_;
};

}  // namespace weft::gateway::upstream
