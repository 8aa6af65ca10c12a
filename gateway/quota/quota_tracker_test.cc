// SPDX-License-Identifier: Apache-2.0
// QuotaTracker by example: each limit, reservations and settlement, month boundaries, replay.
#include "gateway/quota/quota_tracker.h"

#include <thread>
#include <vector>

#include "absl/time/civil_time.h"
#include "gtest/gtest.h"

namespace weft::quota {
namespace {

using auth::Principal;

absl::Time Utc(int y, int m, int d, int hh = 0, int mm = 0, int ss = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss), absl::UTCTimeZone());
}

Principal Who(std::string tenant, std::string key, auth::TenantQuotas tq = {},
              auth::KeyQuotas kq = {}) {
  Principal p;
  p.tenant = std::move(tenant);
  p.key_id = std::move(key);
  p.tenant_quotas = tq;
  p.key_quotas = kq;
  p.deployments = {"*"};
  return p;
}

const absl::Time kT0 = Utc(2025, 3, 10, 12, 0, 0);

TEST(QuotaTrackerTest, UnlimitedAlwaysAdmits) {
  QuotaTracker q;
  Principal p = Who("t", "k");
  for (int i = 0; i < 1000; ++i) {
    QuotaDecision d = q.Admit(p, 1'000'000, kT0);
    ASSERT_TRUE(d.ok);
    q.Settle(d.reservation, 1'000'000, kT0);
  }
  EXPECT_EQ(q.MonthTokens("t", kT0), int64_t{1'000'000'000});
}

TEST(QuotaTrackerTest, RequestsPerMinute) {
  QuotaTracker q;
  Principal p = Who("t", "k", {.requests_per_min = 60, .tokens_per_min = 0, .tokens_per_month = 0});
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(q.Admit(p, 10, kT0).ok) << i;
  QuotaDecision d = q.Admit(p, 10, kT0);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.limit, QuotaLimit::kTenantRequestsPerMin);
  EXPECT_EQ(d.retry_after_s, 1);  // one request refills in 1 s at 60/min
  EXPECT_FALSE(q.Admit(p, 10, kT0 + absl::Milliseconds(999)).ok);
  EXPECT_TRUE(q.Admit(p, 10, kT0 + absl::Seconds(1)).ok);
  EXPECT_FALSE(q.Admit(p, 10, kT0 + absl::Seconds(1)).ok);
  // A quiet minute refills the whole minute's worth, no more.
  absl::Time later = kT0 + absl::Minutes(5);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(q.Admit(p, 10, later).ok) << i;
  EXPECT_FALSE(q.Admit(p, 10, later).ok);
}

TEST(QuotaTrackerTest, TokensReservedThenRefunded) {
  QuotaTracker q;
  Principal p =
      Who("t", "k", {.requests_per_min = 0, .tokens_per_min = 1000, .tokens_per_month = 0});
  QuotaDecision a = q.Admit(p, 800, kT0);
  ASSERT_TRUE(a.ok);
  EXPECT_EQ(a.reservation.tokens, 800);
  QuotaDecision b = q.Admit(p, 800, kT0);
  ASSERT_FALSE(b.ok);
  EXPECT_EQ(b.limit, QuotaLimit::kTenantTokensPerMin);
  EXPECT_EQ(b.retry_after_s, 36);     // 600 tokens short at 1000/min
  q.Settle(a.reservation, 100, kT0);  // 700 back
  EXPECT_TRUE(q.Admit(p, 800, kT0).ok);
}

TEST(QuotaTrackerTest, RefundsNeverOverfillTheBucket) {
  QuotaTracker q;
  Principal p =
      Who("t", "k", {.requests_per_min = 2, .tokens_per_min = 1000, .tokens_per_month = 0});
  QuotaDecision a = q.Admit(p, 1000, kT0);
  QuotaDecision b = q.Admit(p, 0, kT0);
  ASSERT_TRUE(a.ok && b.ok);
  // A long request: the bucket refills meanwhile, so the refund must stop at its capacity.
  absl::Time end = kT0 + absl::Minutes(2);
  q.Settle(a.reservation, 0, end);
  q.Release(b.reservation);
  EXPECT_TRUE(q.Admit(p, 1000, end).ok);
  QuotaDecision c = q.Admit(p, 1, end);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.limit, QuotaLimit::kTenantTokensPerMin);
  EXPECT_TRUE(q.Admit(p, 0, end).ok);
  EXPECT_FALSE(q.Admit(p, 0, end).ok);  // two requests a minute, no more
}

TEST(QuotaTrackerTest, ExtraTokensAreChargedAsDebt) {
  QuotaTracker q;
  Principal p =
      Who("t", "k", {.requests_per_min = 0, .tokens_per_min = 1000, .tokens_per_month = 0});
  QuotaDecision a = q.Admit(p, 100, kT0);
  ASSERT_TRUE(a.ok);
  q.Settle(a.reservation, 1500, kT0);  // level 1000 - 1500 = -500
  QuotaDecision b = q.Admit(p, 1, kT0);
  ASSERT_FALSE(b.ok);
  EXPECT_EQ(b.retry_after_s, 31);  // 501 tokens at 1000/min = 30.06 s
  EXPECT_FALSE(q.Admit(p, 1, kT0 + absl::Seconds(30)).ok);
  EXPECT_TRUE(q.Admit(p, 1, kT0 + absl::Seconds(31)).ok);
}

TEST(QuotaTrackerTest, RequestLargerThanCapacityPassesWhenFull) {
  QuotaTracker q;
  Principal p =
      Who("t", "k", {.requests_per_min = 0, .tokens_per_min = 100, .tokens_per_month = 0});
  QuotaDecision a = q.Admit(p, 1000, kT0);
  ASSERT_TRUE(a.ok);
  QuotaDecision b = q.Admit(p, 1000, kT0);
  ASSERT_FALSE(b.ok);
  // -900 now, needs +100 (a full bucket): 1000 tokens at 100/min = 600 s.
  EXPECT_EQ(b.retry_after_s, 600);
  EXPECT_TRUE(q.Admit(p, 1000, kT0 + absl::Seconds(600)).ok);
}

TEST(QuotaTrackerTest, ReleaseRefundsEverything) {
  QuotaTracker q;
  Principal p =
      Who("t", "k", {.requests_per_min = 1, .tokens_per_min = 100, .tokens_per_month = 50});
  QuotaDecision a = q.Admit(p, 100, kT0);
  ASSERT_TRUE(a.ok);
  EXPECT_FALSE(q.Admit(p, 100, kT0).ok);
  q.Release(a.reservation);
  QuotaDecision b = q.Admit(p, 100, kT0);
  EXPECT_TRUE(b.ok);
  q.Release(b.reservation);
  q.Release(QuotaDecision{}.reservation);  // inactive: no effect
  EXPECT_EQ(q.MonthTokens("t", kT0), 0);
}

TEST(QuotaTrackerTest, KeyLimitsUnderTenantLimits) {
  QuotaTracker q;
  auth::TenantQuotas tq{.requests_per_min = 10, .tokens_per_min = 0, .tokens_per_month = 0};
  Principal a = Who("t", "a", tq, {.requests_per_min = 2, .tokens_per_min = 0});
  Principal b = Who("t", "b", tq);
  Principal other = Who("u", "c", tq);
  EXPECT_TRUE(q.Admit(a, 1, kT0).ok);
  EXPECT_TRUE(q.Admit(a, 1, kT0).ok);
  QuotaDecision d = q.Admit(a, 1, kT0);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.limit, QuotaLimit::kKeyRequestsPerMin);
  EXPECT_EQ(d.retry_after_s, 30);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(q.Admit(b, 1, kT0).ok);
  d = q.Admit(b, 1, kT0);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.limit, QuotaLimit::kTenantRequestsPerMin);
  EXPECT_EQ(d.retry_after_s, 6);
  // When both refuse, the longer wait is the answer.
  d = q.Admit(a, 1, kT0);
  EXPECT_EQ(d.limit, QuotaLimit::kKeyRequestsPerMin);
  EXPECT_EQ(d.retry_after_s, 30);
  EXPECT_TRUE(q.Admit(other, 1, kT0).ok);  // tenants are independent
}

TEST(QuotaTrackerTest, KeyTokensPerMinute) {
  QuotaTracker q;
  Principal a = Who("t", "a", {}, {.requests_per_min = 0, .tokens_per_min = 100});
  ASSERT_TRUE(q.Admit(a, 100, kT0).ok);
  QuotaDecision d = q.Admit(a, 50, kT0);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.limit, QuotaLimit::kKeyTokensPerMin);
  EXPECT_EQ(d.retry_after_s, 30);
}

TEST(QuotaTrackerTest, MonthlyBudgetAndBoundary) {
  QuotaTracker q;
  Principal p =
      Who("t", "k", {.requests_per_min = 0, .tokens_per_min = 0, .tokens_per_month = 1000});
  absl::Time t = Utc(2025, 1, 31, 23, 59, 0);
  QuotaDecision a = q.Admit(p, 600, t);
  ASSERT_TRUE(a.ok);
  q.Settle(a.reservation, 600, t);
  QuotaDecision b = q.Admit(p, 600, t);  // 600 < 1000: some budget is left
  ASSERT_TRUE(b.ok);
  QuotaDecision c = q.Admit(p, 1, t);  // 600 used + 600 in flight
  EXPECT_FALSE(c.ok);
  q.Settle(b.reservation, 500, t);
  EXPECT_EQ(q.MonthTokens("t", t), 1100);
  c = q.Admit(p, 1, t + absl::Seconds(10));
  ASSERT_FALSE(c.ok);
  EXPECT_EQ(c.limit, QuotaLimit::kTenantTokensPerMonth);
  EXPECT_EQ(c.retry_after_s, 50);  // until 2025-02-01 00:00:00 UTC
  EXPECT_FALSE(q.Admit(p, 1, Utc(2025, 1, 31, 23, 59, 59) + absl::Milliseconds(999)).ok);
  absl::Time feb = Utc(2025, 2, 1);
  EXPECT_EQ(q.MonthTokens("t", feb), 0);
  QuotaDecision d = q.Admit(p, 10, feb);
  ASSERT_TRUE(d.ok);
  q.Settle(d.reservation, 10, feb);
  EXPECT_EQ(q.MonthTokens("t", feb), 10);
}

TEST(QuotaTrackerTest, InFlightAtMonthEndIsChargedWhenSettled) {
  QuotaTracker q;
  Principal p =
      Who("t", "k", {.requests_per_min = 0, .tokens_per_min = 0, .tokens_per_month = 100});
  QuotaDecision a = q.Admit(p, 100, Utc(2024, 12, 31, 23, 59, 59));
  ASSERT_TRUE(a.ok);
  // New year: the reservation is still in flight and counts against the new month.
  EXPECT_FALSE(q.Admit(p, 1, Utc(2025, 1, 1, 0, 0, 1)).ok);
  q.Settle(a.reservation, 70, Utc(2025, 1, 1, 0, 0, 2));
  EXPECT_EQ(q.MonthTokens("t", Utc(2025, 1, 1, 0, 0, 2)), 70);
  EXPECT_TRUE(q.Admit(p, 1, Utc(2025, 1, 1, 0, 0, 3)).ok);
}

TEST(QuotaTrackerTest, LeapFebruaryRetryAfter) {
  QuotaTracker q;
  Principal p = Who("t", "k", {.requests_per_min = 0, .tokens_per_min = 0, .tokens_per_month = 1});
  absl::Time t = Utc(2024, 2, 28, 0, 0, 0);
  QuotaDecision a = q.Admit(p, 1, t);
  ASSERT_TRUE(a.ok);
  q.Settle(a.reservation, 1, t);
  QuotaDecision b = q.Admit(p, 1, t);
  ASSERT_FALSE(b.ok);
  EXPECT_EQ(b.retry_after_s, 2 * 86400);  // 2024-02-29 exists
}

TEST(QuotaTrackerTest, LoweredLimitsApplyAtOnce) {
  QuotaTracker q;
  Principal p =
      Who("t", "k", {.requests_per_min = 100, .tokens_per_min = 0, .tokens_per_month = 0});
  ASSERT_TRUE(q.Admit(p, 1, kT0).ok);
  p.tenant_quotas.requests_per_min = 2;  // capacity 2 now
  EXPECT_TRUE(q.Admit(p, 1, kT0).ok);
  EXPECT_TRUE(q.Admit(p, 1, kT0).ok);
  EXPECT_FALSE(q.Admit(p, 1, kT0).ok);
  p.tenant_quotas.requests_per_min = 0;  // lifted
  EXPECT_TRUE(q.Admit(p, 1, kT0).ok);
}

TEST(QuotaTrackerTest, ReplayCountsTheCurrentMonthAndRecentMinute) {
  QuotaTracker q;
  // Last month's records do not count; this month's do.
  q.Replay("t", "k", 5000, Utc(2025, 2, 27));
  q.Replay("t", "k", 700, Utc(2025, 3, 1));
  q.Replay("t", "k", 200, kT0 - absl::Seconds(30));
  for (int i = 0; i < 10; ++i) q.Replay("t", "k", 0, kT0 - absl::Seconds(1));
  EXPECT_EQ(q.MonthTokens("t", kT0), 900);
  Principal p =
      Who("t", "k", {.requests_per_min = 10, .tokens_per_min = 0, .tokens_per_month = 1000});
  // At 10/min: full at t-30s, 9 after that request, full again by t-1s, empty after the ten
  // requests then, and 1/6 of a request refilled by t.
  QuotaDecision d = q.Admit(p, 1, kT0);
  ASSERT_FALSE(d.ok);
  EXPECT_EQ(d.limit, QuotaLimit::kTenantRequestsPerMin);
  EXPECT_EQ(d.retry_after_s, 5);  // 5/6 of a request at 1/6 per second
  ASSERT_TRUE(q.Admit(p, 1, kT0 + absl::Seconds(5)).ok);
}

TEST(QuotaTrackerTest, ConcurrentAdmitsNeverExceedTheBucket) {
  QuotaTracker q;
  Principal p =
      Who("t", "k", {.requests_per_min = 1000, .tokens_per_min = 0, .tokens_per_month = 0});
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 1000; ++j) {
        if (q.Admit(p, 1, kT0).ok) admitted++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 1000);
}

}  // namespace
}  // namespace weft::quota
