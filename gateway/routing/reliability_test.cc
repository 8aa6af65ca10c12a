// SPDX-License-Identifier: Apache-2.0
// OutlierDetector, CircuitBreaker, RetryBudget and Ewma: examples and seeded simulations, with time
// as a parameter (no sleeping).
#include <random>

#include "gateway/routing/balancers.h"
#include "gateway/routing/circuit_breaker.h"
#include "gateway/routing/ewma.h"
#include "gateway/routing/outlier_detector.h"
#include "gateway/routing/retry_budget.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

OutlierConfig Outliers() {
  OutlierConfig c;
  c.consecutive_failures = 3;
  c.base_ejection_s = 10;
  c.max_ejection_s = 25;
  c.max_ejection_percent = 50;
  return c;
}

TEST(OutlierDetectorTest, EjectsAfterConsecutiveFailuresForGrowingTimes) {
  OutlierDetector d(Outliers());
  std::vector<std::string> ids = {"a", "b", "c", "d"};
  d.SetReplicas(ids);
  EXPECT_FALSE(d.RecordFailure("a", 0));
  EXPECT_FALSE(d.RecordFailure("a", 0));
  d.RecordSuccess("a", 0);  // the run is broken
  EXPECT_FALSE(d.RecordFailure("a", 1));
  EXPECT_FALSE(d.RecordFailure("a", 1));
  EXPECT_TRUE(d.RecordFailure("a", 1));
  EXPECT_TRUE(d.IsEjected("a", 1));
  EXPECT_EQ(d.EjectedUntil("a", 1), 11);  // base x 1
  EXPECT_TRUE(d.IsEjected("a", 10.9));
  EXPECT_FALSE(d.IsEjected("a", 11));
  // Late outcomes of requests that ran during the ejection are ignored.
  EXPECT_FALSE(d.RecordFailure("a", 5));
  // Failing again soon after: ejected for twice as long, then capped at max_ejection_s.
  for (int i = 0; i < 3; ++i) d.RecordFailure("a", 12);
  EXPECT_EQ(d.EjectedUntil("a", 12), 32);
  for (int i = 0; i < 3; ++i) d.RecordFailure("a", 33);
  EXPECT_EQ(d.EjectedUntil("a", 33), 33 + 25);
  EXPECT_EQ(d.ejections_total(), 3);
  // Long healthy stretches forgive past ejections: the multiplier decays to 1 again.
  d.RecordSuccess("a", 58 + 100);
  for (int i = 0; i < 3; ++i) d.RecordFailure("a", 200);
  EXPECT_EQ(d.EjectedUntil("a", 200), 210);
  // Unknown replicas are ignored.
  EXPECT_FALSE(d.RecordFailure("zz", 0));
}

TEST(OutlierDetectorTest, MaxEjectionPercent) {
  OutlierDetector d(Outliers());
  std::vector<std::string> ids = {"a", "b", "c"};
  d.SetReplicas(ids);  // 50% of 3: one at a time
  for (int i = 0; i < 3; ++i) d.RecordFailure("a", 0);
  for (int i = 0; i < 3; ++i) d.RecordFailure("b", 0);
  EXPECT_TRUE(d.IsEjected("a", 1));
  EXPECT_FALSE(d.IsEjected("b", 1));
  EXPECT_EQ(d.EjectedCount(1), 1);
  // Once a is back, b's next failure ejects it (its run was kept).
  EXPECT_TRUE(d.RecordFailure("b", 10));
  EXPECT_EQ(d.EjectedCount(10), 1);
  // SetReplicas keeps state of members that stay.
  std::vector<std::string> two = {"b", "c"};
  d.SetReplicas(two);
  EXPECT_TRUE(d.IsEjected("b", 11));
  EXPECT_FALSE(d.IsEjected("a", 11));
  OutlierConfig off = Outliers();
  off.max_ejection_percent = 0;
  OutlierDetector none(off);
  none.SetReplicas(ids);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(none.RecordFailure("a", 0));
}

// A replica fails every request between t=10 s and t=60 s; traffic is balanced by least tokens over
// the detector's view. The detector bounds the failures clients see, and the replica is back in
// rotation after it recovers.
TEST(OutlierDetectorTest, SimulatedEjectionAndRecovery) {
  std::mt19937_64 rng(3);
  OutlierConfig c;
  c.consecutive_failures = 5;
  c.base_ejection_s = 5;
  c.max_ejection_s = 20;
  c.max_ejection_percent = 34;
  OutlierDetector detector(c);
  std::vector<std::string> ids = {"a", "b", "c"};
  detector.SetReplicas(ids);
  LeastTokensBalancer balancer;
  std::vector<ReplicaView> views(3);
  for (int i = 0; i < 3; ++i) views[i].id = ids[i];
  int failures_during_outage = 0, served_bad_during_outage = 0, served_bad_after = 0;
  for (double now = 0; now < 120; now += 0.01) {  // 100 requests/s
    for (int i = 0; i < 3; ++i) views[i].ejected = detector.IsEjected(ids[i], now);
    RequestView r;
    r.deployment = "m";
    r.random = rng();
    size_t i = *balancer.PickIndex(r, views);
    bool bad = i == 0 && now >= 10 && now < 60;
    if (bad) {
      detector.RecordFailure(ids[i], now);
      ++failures_during_outage;
    } else {
      detector.RecordSuccess(ids[i], now);
    }
    if (i == 0 && now >= 10 && now < 60) ++served_bad_during_outage;
    if (i == 0 && now >= 90) ++served_bad_after;
  }
  std::printf("failures during a 50 s outage at 100 req/s: %d\n", failures_during_outage);
  // Without ejection a third of 5000 requests would fail; with it, 5 per ejection cycle
  // (ejections of 5, 10, 15, 20, 20 ... s).
  EXPECT_LT(failures_during_outage, 40);
  EXPECT_GT(failures_during_outage, 0);
  EXPECT_GT(served_bad_after, 3000 / 3 * 0.8);  // recovered: its full share again
}

TEST(CircuitBreakerTest, OpensHalfOpensAndCloses) {
  CircuitBreaker b(CircuitBreakerOptions{4, 3, 10});
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(b.TryAcquire(0));
  EXPECT_FALSE(b.TryAcquire(0));  // max pending
  EXPECT_FALSE(b.Allows(0));
  b.Release(true, 0);
  EXPECT_TRUE(b.Allows(0));
  b.Release(false, 1);
  b.Release(false, 1);
  EXPECT_EQ(b.state(1), CircuitBreaker::State::kClosed);
  b.Release(false, 1);  // third failure in a row
  EXPECT_EQ(b.state(1), CircuitBreaker::State::kOpen);
  EXPECT_EQ(b.pending(), 0);
  EXPECT_FALSE(b.TryAcquire(5));
  EXPECT_EQ(b.state(11), CircuitBreaker::State::kHalfOpen);
  EXPECT_TRUE(b.TryAcquire(11));   // the probe
  EXPECT_FALSE(b.TryAcquire(11));  // only one
  b.Release(false, 12);            // probe failed: open again from now
  EXPECT_EQ(b.state(21), CircuitBreaker::State::kOpen);
  EXPECT_EQ(b.state(22), CircuitBreaker::State::kHalfOpen);
  EXPECT_TRUE(b.TryAcquire(22));
  b.Cancel();  // the client left: another request may probe
  EXPECT_TRUE(b.TryAcquire(22));
  b.Release(true, 23);
  EXPECT_EQ(b.state(23), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(b.TryAcquire(23));
  EXPECT_TRUE(b.TryAcquire(23));
}

TEST(CircuitBreakerTest, SimulatedFlappingReplica) {
  // A replica that fails while t in [20, 50): the breaker keeps most requests away from it, probes
  // once per open period, and closes soon after it recovers.
  CircuitBreaker b(CircuitBreakerOptions{100, 5, 2});
  int sent_during_outage = 0, rejected = 0;
  double closed_again_at = -1;
  for (double now = 0; now < 80; now += 0.01) {
    if (!b.TryAcquire(now)) {
      ++rejected;
      continue;
    }
    bool fail = now >= 20 && now < 50;
    sent_during_outage += fail;
    b.Release(!fail, now + 0.005);
    if (now >= 50 && closed_again_at < 0 && b.state(now) == CircuitBreaker::State::kClosed) {
      closed_again_at = now;
    }
  }
  EXPECT_LE(sent_during_outage, 5 + 30 / 2 + 1);  // the opening run, then one probe per period
  EXPECT_GT(rejected, 2500);
  EXPECT_GE(closed_again_at, 50);
  EXPECT_LT(closed_again_at, 52.1);
}

TEST(RetryBudgetTest, RatioOfRecentRequestsPlusAMinimum) {
  RetryBudget budget(RetryBudgetOptions{0.2, 1, 10});
  // Quiet: only the minimum (1/s over a 10 s window = 10).
  int allowed = 0;
  for (int i = 0; i < 50; ++i) allowed += budget.TryRetry(0.5);
  EXPECT_EQ(allowed, 10);
  // 1000 requests/s with every request wanting a retry: about 20% of them may retry.
  RetryBudget busy(RetryBudgetOptions{0.2, 1, 10});
  int64_t retries = 0, requests = 0;
  for (int ms = 0; ms < 30000; ++ms) {
    double now = ms / 1000.0;
    busy.RecordRequest(now);
    ++requests;
    retries += busy.TryRetry(now);
  }
  double ratio = static_cast<double>(retries) / static_cast<double>(requests);
  std::printf("retry budget under total failure: %.3f retries per request\n", ratio);
  EXPECT_GT(ratio, 0.18);
  EXPECT_LT(ratio, 0.23);
  EXPECT_NEAR(busy.requests(29.9), 10000, 1000);
  // The window slides: old traffic stops counting.
  EXPECT_EQ(busy.requests(100), 0);
  EXPECT_EQ(busy.retries(100), 0);
}

TEST(EwmaTest, SmoothsAndRemembersTime) {
  Ewma e(0.5);
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e.value(), 0);
  e.Add(10, 1);
  EXPECT_EQ(e.value(), 10);
  e.Add(20, 2);
  EXPECT_EQ(e.value(), 15);
  e.Add(20, 3);
  EXPECT_EQ(e.value(), 17.5);
  EXPECT_EQ(e.updated_s(), 3);
  e.Reset();
  EXPECT_TRUE(e.empty());
}

}  // namespace
}  // namespace weft::gateway
