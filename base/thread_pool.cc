// SPDX-License-Identifier: Apache-2.0
#include "base/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/check.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WEFT_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define WEFT_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define WEFT_CPU_RELAX() \
  do {                   \
  } while (0)
#endif

namespace weft {
namespace {
// How long an idle worker spins on the generation counter before it sleeps. Decode issues a
// parallel op every few tens of microseconds, so this keeps workers awake through a whole step.
constexpr auto kSpin = std::chrono::microseconds(300);
}  // namespace

// Protocol: the caller publishes `job` and bumps `generation` (seq_cst). Each thread index i >= 1
// is claimed once per generation by a CAS of claimed[i] to the generation: normally by worker i,
// but after running index 0 the caller claims and runs every index whose worker has not shown up
// yet (descheduled on a busy machine, or still waking), so a late worker never stalls the step.
// Whoever ran an index decrements `pending`; the caller waits for pending == 0. A worker that
// found no work for kSpin sleeps on `cv`; `sleeping` tells the caller whether to notify.
struct ThreadPool::State {
  int n_threads = 1;
  std::vector<std::thread> workers;
  std::unique_ptr<std::atomic<uint64_t>[]> claimed;  // [n_threads] last generation claimed
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};
  std::atomic<int> sleeping{0};
  std::atomic<bool> stop{false};
  const std::function<void(int, int)>* job = nullptr;
  std::mutex mu;
  std::condition_variable cv;

  void WorkerLoop(int index) {
    uint64_t seen = 0;
    for (;;) {
      // Spin, then sleep, until a new generation or stop.
      uint64_t gen = generation.load(std::memory_order_acquire);
      if (gen == seen && !stop.load(std::memory_order_acquire)) {
        auto deadline = std::chrono::steady_clock::now() + kSpin;
        int iters = 0;
        while ((gen = generation.load(std::memory_order_acquire)) == seen &&
               !stop.load(std::memory_order_acquire)) {
          WEFT_CPU_RELAX();
          if (++iters == 256) {
            iters = 0;
            if (std::chrono::steady_clock::now() > deadline) break;
          }
        }
        if (gen == seen && !stop.load(std::memory_order_acquire)) {
          std::unique_lock<std::mutex> lock(mu);
          sleeping.fetch_add(1);
          cv.wait(lock, [&] { return generation.load() != seen || stop.load(); });
          sleeping.fetch_sub(1);
          gen = generation.load();
        }
      }
      if (stop.load(std::memory_order_acquire)) return;
      seen = gen;
      if (Claim(index, gen)) {
        (*job)(index, n_threads);
        pending.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  // True for exactly one caller per (index, generation).
  bool Claim(int index, uint64_t gen) {
    uint64_t c = claimed[index].load(std::memory_order_acquire);
    return c < gen && claimed[index].compare_exchange_strong(c, gen, std::memory_order_acq_rel);
  }
};

ThreadPool::ThreadPool(int n_threads) : state_(new State) {
  WEFT_CHECK(n_threads >= 1);
  state_->n_threads = n_threads;
  state_->claimed = std::make_unique<std::atomic<uint64_t>[]>(n_threads);
  for (int i = 0; i < n_threads; ++i) state_->claimed[i].store(0);
  state_->workers.reserve(n_threads - 1);
  for (int i = 1; i < n_threads; ++i) {
    state_->workers.emplace_back([this, i] { state_->WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  state_->stop.store(true);
  { std::lock_guard<std::mutex> lock(state_->mu); }
  state_->cv.notify_all();
  for (std::thread& t : state_->workers) t.join();
  delete state_;
}

int ThreadPool::n_threads() const { return state_->n_threads; }

void ThreadPool::Run(const std::function<void(int thread_index, int n_threads)>& fn) {
  State& s = *state_;
  if (s.n_threads == 1) {
    fn(0, 1);
    return;
  }
  s.job = &fn;
  s.pending.store(s.n_threads - 1, std::memory_order_relaxed);
  // seq_cst: publishes job and pending before the workers see the new generation.
  const uint64_t gen = s.generation.fetch_add(1) + 1;
  if (s.sleeping.load() > 0) {
    // Taking the mutex orders this notify after any sleeper's predicate check (no lost wake-up).
    { std::lock_guard<std::mutex> lock(s.mu); }
    s.cv.notify_all();
  }
  fn(0, s.n_threads);
  for (int i = 1; i < s.n_threads; ++i) {
    if (s.Claim(i, gen)) {
      fn(i, s.n_threads);
      s.pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
  int iters = 0;
  while (s.pending.load(std::memory_order_acquire) != 0) {
    WEFT_CPU_RELAX();
    // A descheduled worker (more threads than free cores) must not make us burn the core it needs.
    if (++iters > 4096) std::this_thread::yield();
  }
  s.job = nullptr;
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn) {
  if (n <= 0) return;
  const int n_threads = static_cast<int>(std::min<int64_t>(state_->n_threads, n));
  if (n_threads == 1) {
    fn(0, n);
    return;
  }
  Run([&](int index, int /*n_threads*/) {
    if (index >= n_threads) return;
    const int64_t begin = n * index / n_threads;
    const int64_t end = n * (index + 1) / n_threads;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace weft
