// SPDX-License-Identifier: Apache-2.0
// HoldQueue: requests waiting for a deployment that has no ready replica (scale from zero). The
// gateway holds such a request instead of answering 503 at once and resumes it when the route
// table brings a ready replica; past hold_timeout_s, or when max_held_per_deployment already wait,
// the client gets 503 with Retry-After. While any request is held, the demand callback learns how
// many per deployment: at once when a deployment starts holding, then every report_interval_s,
// and once more with 0 when it stops, so that control can scale the deployment up from zero.
// Ownership: the Gateway owns it. Threads: thread-safe; a thread of its own runs the timeouts and
// the demand callback; resume callbacks run there or on the thread calling SetReady / Shutdown,
// never with the queue's lock held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace weft::gateway {

struct HoldQueueOptions {
  int32_t max_held_per_deployment = 256;
  double hold_timeout_s = 60;
  double report_interval_s = 1;
  // Held requests per deployment (0 for one that just stopped holding); empty = not reported.
  std::function<void(const std::map<std::string, int64_t>& held)> on_demand;
};

class HoldQueue {
 public:
  enum class Admission {
    kHeld,   // `resume` runs once, later
    kReady,  // the deployment has a ready replica (as of the last SetReady): pick again now
    kFull,   // max_held_per_deployment already wait, or shutting down: answer 503
  };
  enum class Resume { kReady, kTimedOut, kShutdown };
  struct Ticket {
    Admission admission = Admission::kFull;
    uint64_t id = 0;  // for Cancel, when kHeld
  };

  explicit HoldQueue(HoldQueueOptions options);  // starts the queue's thread
  ~HoldQueue();                                  // Shutdown()
  HoldQueue(const HoldQueue&) = delete;
  HoldQueue& operator=(const HoldQueue&) = delete;

  // Holds a request for `deployment` (see Admission); does not block.
  Ticket Hold(const std::string& deployment, std::function<void(Resume)> resume);
  // The client went away: forget its request without resuming it. False when no longer held.
  bool Cancel(uint64_t id);
  // The deployments that have a ready replica in the route table now; their held requests resume
  // (kReady) on the calling thread, in arrival order.
  void SetReady(std::set<std::string> ready);
  // Requests held now, per deployment (deployments holding none are left out).
  std::map<std::string, int64_t> Held() const;
  // Resumes every held request with kShutdown and joins the thread; Hold answers kFull from then
  // on. Idempotent.
  void Shutdown();

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    std::string deployment;
    Clock::time_point deadline;
    std::function<void(Resume)> resume;
  };
  void Loop();
  std::map<std::string, int64_t> CountsLocked() const;

  const HoldQueueOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Entry> held_;   // by id = arrival order; guarded by mu_
  std::set<std::string> ready_;      // guarded by mu_
  std::set<std::string> reported_;   // deployments last reported with held > 0; guarded by mu_
  bool report_now_ = false;          // guarded by mu_
  Clock::time_point next_report_{};  // guarded by mu_
  uint64_t next_id_ = 1;             // guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  std::thread thread_;
};

}  // namespace weft::gateway
