// SPDX-License-Identifier: Apache-2.0
// IoContextPool: N Boost.Asio io_contexts, each run by exactly one thread of its own: the worker
// model of nginx and Envoy. Whatever lives on one context (a client connection, the upstream
// exchange it started, their timers) runs on one thread, so work one of them posts to its own
// context runs in the same loop turn, with no wake-up of another thread and no lock hand-off.
// Shared by an HttpServer and the clients its handlers use (ServerOptions::io_contexts,
// upstream::ClientOptions::io_contexts). Start/Stop from one controlling thread (never from a
// pool thread); contexts() and Current() from any thread. Destroying the pool destroys the
// contexts and, with them, every handler still queued: objects living on them must be gone or
// able to die then (see HttpServer).
#pragma once

#include <memory>
#include <thread>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace weft::http {

class IoContextPool {
 public:
  // threads >= 1 (less counts as 1). `pin_threads`: thread i runs only on the i-th CPU (round
  // robin) of those the process may use when it starts (sched_getaffinity: cgroup cpusets and
  // taskset are respected), like nginx's worker_cpu_affinity auto. Off by default: it helps
  // where the host's CPUs are the gateway's (fewer migrations and shared-core waits) and hurts
  // where a pinned CPU is busy with other work.
  explicit IoContextPool(int threads, bool pin_threads = false);
  ~IoContextPool();                     // Stop()
  IoContextPool(const IoContextPool&) = delete;
  IoContextPool& operator=(const IoContextPool&) = delete;

  // The contexts, one per thread, fixed for the pool's life.
  const std::vector<boost::asio::io_context*>& contexts() const { return contexts_; }

  // Starts one thread per context; each runs its context until Stop (idle contexts keep running).
  void Start();
  // Stops every context and joins the threads; handlers still queued stay queued (destroyed with
  // the pool). Idempotent.
  void Stop();

  // The index of the context the calling thread runs, or -1 (not one of this pool's threads).
  int Current() const;

 private:
  std::vector<std::unique_ptr<boost::asio::io_context>> owned_;
  std::vector<boost::asio::io_context*> contexts_;
  std::vector<std::shared_ptr<void>> guards_;  // executor_work_guards while running
  std::vector<std::thread> threads_;
  bool pin_threads_ = false;
};

}  // namespace weft::http
