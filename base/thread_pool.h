// SPDX-License-Identifier: Apache-2.0
// A persistent pool of worker threads for data-parallel kernels. One caller at a time: the thread
// that owns the pool calls ParallelFor, which blocks until every chunk is done (the caller works
// too). Workers spin briefly before sleeping so back-to-back decode steps pay no wake-up latency.
#pragma once

#include <cstdint>
#include <functional>

namespace weft {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads includes the calling thread; >= 1
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const;
  // Runs fn(thread_index, n_threads) once for every index in [0, n_threads) and waits. Index 0
  // runs on the caller; index i on worker i, unless that worker has not picked it up by the time
  // the caller is done with index 0 (descheduled, or waking), in which case the caller runs it.
  void Run(const std::function<void(int thread_index, int n_threads)>& fn);
  // Splits [0, n) into contiguous ranges and runs fn(begin, end) on them in parallel.
  void ParallelFor(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  struct State;
  State* state_;
};

}  // namespace weft
