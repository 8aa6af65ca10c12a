// SPDX-License-Identifier: Apache-2.0
#include "base/thread_pool.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace weft {
namespace {

TEST(ThreadPoolTest, RunCallsEveryThreadOnce) {
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n);
    EXPECT_EQ(pool.n_threads(), n);
    std::vector<std::atomic<int>> hits(n);
    for (int rep = 0; rep < 100; ++rep) {
      pool.Run([&](int index, int n_threads) {
        EXPECT_EQ(n_threads, n);
        hits[index].fetch_add(1);
      });
    }
    for (int i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 100) << "thread " << i;
  }
}

TEST(ThreadPoolTest, CallerIsThreadZeroAndWorkersHelp) {
  ThreadPool pool(3);
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id seen[3];
  // Index 0 blocks until another thread has run some index, so the workers must take part (the
  // caller only runs an index itself when its worker has not claimed it).
  std::atomic<int> others{0};
  pool.Run([&](int index, int) {
    seen[index] = std::this_thread::get_id();
    if (index == 0) {
      while (others.load() == 0) std::this_thread::yield();
    } else {
      others.fetch_add(1);
    }
  });
  EXPECT_EQ(seen[0], caller);
  int on_workers = 0;
  for (int i = 1; i < 3; ++i) on_workers += seen[i] != caller;
  EXPECT_GE(on_workers, 1);
}

TEST(ThreadPoolTest, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(4);
  for (int64_t n : {0, 1, 2, 3, 7, 100, 1001}) {
    std::vector<std::atomic<int>> covered(n);
    pool.ParallelFor(n, [&](int64_t begin, int64_t end) {
      EXPECT_LT(begin, end);
      for (int64_t i = begin; i < end; ++i) covered[i].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(covered[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPoolTest, WakesSleepingWorkers) {
  ThreadPool pool(2);
  std::atomic<int> sum{0};
  for (int rep = 0; rep < 3; ++rep) {
    // Long enough for the workers to give up spinning and sleep on the condition variable.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    pool.Run([&](int index, int) { sum.fetch_add(index + 1); });
  }
  EXPECT_EQ(sum.load(), 3 * (1 + 2));
}

TEST(ThreadPoolTest, ManyBackToBackCalls) {
  ThreadPool pool(2);
  int64_t total = 0;
  std::vector<int64_t> partial(2);
  for (int rep = 0; rep < 20000; ++rep) {
    pool.Run([&](int index, int) { partial[index] += index + 1; });
  }
  total = partial[0] + partial[1];
  EXPECT_EQ(total, 20000 * 3);
}

}  // namespace
}  // namespace weft
