// SPDX-License-Identifier: Apache-2.0
#include "gateway/hold_queue.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

using Resume = HoldQueue::Resume;
using Admission = HoldQueue::Admission;

// Resumes recorded per request.
struct Recorder {
  std::mutex mu;
  std::map<int, std::vector<Resume>> got;
  std::function<void(Resume)> For(int i) {
    return [this, i](Resume r) {
      std::lock_guard lock(mu);
      got[i].push_back(r);
    };
  }
  std::vector<Resume> Of(int i) {
    std::lock_guard lock(mu);
    return got[i];
  }
};

template <typename F>
bool WaitFor(F done, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

TEST(HoldQueueTest, HeldUntilAReplicaIsReady) {
  Recorder rec;
  HoldQueue q({.max_held_per_deployment = 8,
               .hold_timeout_s = 60,
               .report_interval_s = 1,
               .on_demand = nullptr});
  HoldQueue::Ticket a = q.Hold("chat", rec.For(1));
  HoldQueue::Ticket b = q.Hold("chat", rec.For(2));
  HoldQueue::Ticket c = q.Hold("code", rec.For(3));
  EXPECT_EQ(a.admission, Admission::kHeld);
  EXPECT_EQ(b.admission, Admission::kHeld);
  EXPECT_EQ(c.admission, Admission::kHeld);
  EXPECT_EQ(q.Held(), (std::map<std::string, int64_t>{{"chat", 2}, {"code", 1}}));

  q.SetReady({"chat"});  // resumes on this thread, before returning
  EXPECT_EQ(rec.Of(1), std::vector<Resume>{Resume::kReady});
  EXPECT_EQ(rec.Of(2), std::vector<Resume>{Resume::kReady});
  EXPECT_TRUE(rec.Of(3).empty());
  EXPECT_EQ(q.Held(), (std::map<std::string, int64_t>{{"code", 1}}));

  // A deployment with a ready replica is not held: pick again.
  EXPECT_EQ(q.Hold("chat", rec.For(4)).admission, Admission::kReady);
  // Its replicas leave the table: held again.
  q.SetReady({});
  EXPECT_EQ(q.Hold("chat", rec.For(5)).admission, Admission::kHeld);
}

TEST(HoldQueueTest, BoundedPerDeployment) {
  Recorder rec;
  HoldQueue q({.max_held_per_deployment = 2,
               .hold_timeout_s = 60,
               .report_interval_s = 1,
               .on_demand = nullptr});
  EXPECT_EQ(q.Hold("chat", rec.For(1)).admission, Admission::kHeld);
  EXPECT_EQ(q.Hold("chat", rec.For(2)).admission, Admission::kHeld);
  EXPECT_EQ(q.Hold("chat", rec.For(3)).admission, Admission::kFull);
  EXPECT_EQ(q.Hold("code", rec.For(4)).admission, Admission::kHeld) << "per deployment";
  EXPECT_TRUE(rec.Of(3).empty()) << "a request not held is never resumed";
}

TEST(HoldQueueTest, TimesOut) {
  Recorder rec;
  HoldQueue q({.max_held_per_deployment = 8,
               .hold_timeout_s = 0.2,
               .report_interval_s = 1,
               .on_demand = nullptr});
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(q.Hold("chat", rec.For(1)).admission, Admission::kHeld);
  ASSERT_TRUE(WaitFor([&] { return !rec.Of(1).empty(); }, 10));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 0.19);
  EXPECT_EQ(rec.Of(1), std::vector<Resume>{Resume::kTimedOut});
  EXPECT_TRUE(q.Held().empty());
  q.SetReady({"chat"});
  EXPECT_EQ(rec.Of(1).size(), 1u) << "resumed once only";
}

TEST(HoldQueueTest, CancelledRequestsAreForgotten) {
  Recorder rec;
  HoldQueue q({.max_held_per_deployment = 1,
               .hold_timeout_s = 0.1,
               .report_interval_s = 1,
               .on_demand = nullptr});
  HoldQueue::Ticket t = q.Hold("chat", rec.For(1));
  ASSERT_EQ(t.admission, Admission::kHeld);
  EXPECT_TRUE(q.Cancel(t.id));
  EXPECT_FALSE(q.Cancel(t.id));
  EXPECT_TRUE(q.Held().empty());
  EXPECT_EQ(q.Hold("chat", rec.For(2)).admission, Admission::kHeld) << "its slot is free again";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  q.SetReady({"chat"});
  EXPECT_TRUE(rec.Of(1).empty());
}

TEST(HoldQueueTest, ReportsDemandAtOnceThenPeriodicallyThenZero) {
  std::mutex mu;
  std::vector<std::map<std::string, int64_t>> reports;
  HoldQueue q({.max_held_per_deployment = 8,
               .hold_timeout_s = 60,
               .report_interval_s = 1.5,
               .on_demand = [&](const std::map<std::string, int64_t>& held) {
                 std::lock_guard lock(mu);
                 reports.push_back(held);
               }});
  auto count = [&] {
    std::lock_guard lock(mu);
    return reports.size();
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(count(), 0u) << "nothing held: nothing said";
  Recorder rec;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(q.Hold("chat", rec.For(1)).admission, Admission::kHeld);
  ASSERT_TRUE(WaitFor([&] { return count() >= 1; }, 5));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(750))
      << "at once, not after the report interval (1.5 s)";
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(reports[0], (std::map<std::string, int64_t>{{"chat", 1}}));
  }
  ASSERT_EQ(q.Hold("chat", rec.For(2)).admission, Admission::kHeld);
  ASSERT_TRUE(WaitFor([&] { return count() >= 3; }, 10)) << "every report interval while held";
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(reports.back(), (std::map<std::string, int64_t>{{"chat", 2}}));
  }
  q.SetReady({"chat"});
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return reports.back() == std::map<std::string, int64_t>{{"chat", 0}};
      },
      5));
  const size_t after = count();
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  EXPECT_EQ(count(), after) << "quiet again once the zero went out";
}

TEST(HoldQueueTest, ShutdownResumesEveryone) {
  Recorder rec;
  HoldQueue q({.max_held_per_deployment = 8,
               .hold_timeout_s = 60,
               .report_interval_s = 1,
               .on_demand = nullptr});
  ASSERT_EQ(q.Hold("chat", rec.For(1)).admission, Admission::kHeld);
  q.Shutdown();
  EXPECT_EQ(rec.Of(1), std::vector<Resume>{Resume::kShutdown});
  EXPECT_EQ(q.Hold("chat", rec.For(2)).admission, Admission::kFull);
  q.Shutdown();
}

// Seeded random interleavings from several threads: every held request is resumed exactly once
// unless it was cancelled first, and a cancelled one never.
TEST(HoldQueueTest, RandomInterleavingsResumeEachHeldRequestOnce) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Recorder rec;
    std::atomic<int64_t> reports{0};
    auto q = std::make_unique<HoldQueue>(
        HoldQueueOptions{.max_held_per_deployment = 16,
                         .hold_timeout_s = 0.05,
                         .report_interval_s = 0.01,
                         .on_demand = [&](const std::map<std::string, int64_t>&) { reports++; }});
    std::mutex mu;
    std::map<int, bool> held;  // request -> cancelled successfully
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(seed * 100 + t);
        for (int i = 0; i < 300; ++i) {
          const int req = t * 1000 + i;
          const std::string dep = rng() % 2 ? "a" : "b";
          switch (rng() % 4) {
            case 0:
            case 1: {
              HoldQueue::Ticket k = q->Hold(dep, rec.For(req));
              if (k.admission != Admission::kHeld) break;
              bool cancelled = rng() % 3 == 0 && q->Cancel(k.id);
              std::lock_guard lock(mu);
              held[req] = cancelled;
              break;
            }
            case 2:
              q->SetReady(rng() % 2 ? std::set<std::string>{dep} : std::set<std::string>{});
              break;
            case 3:
              std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
              break;
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    q->Shutdown();
    for (const auto& [req, cancelled] : held) {
      const size_t expected = cancelled ? 0 : 1;
      EXPECT_EQ(rec.Of(req).size(), expected) << "seed " << seed << " request " << req;
    }
    EXPECT_GT(reports.load(), 0);
  }
}

}  // namespace
}  // namespace weft::gateway
