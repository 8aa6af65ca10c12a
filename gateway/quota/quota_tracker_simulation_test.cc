// SPDX-License-Identifier: Apache-2.0
// QuotaTracker by seeded simulation: over long simulated runs with random limits and workloads,
// no window of time admits more than a token bucket allows, overload still uses the whole rate,
// Retry-After is the earliest whole second that passes, monthly budgets hold across month
// boundaries, and counters rebuilt by Replay() from the ledger decide exactly like the live ones.
#include <algorithm>
#include <cstdint>
#include <map>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gateway/quota/quota_tracker.h"
#include "gtest/gtest.h"

namespace weft::quota {
namespace {

using auth::Principal;

absl::Time Utc(int y, int m, int d, int hh = 0, int mm = 0, int ss = 0) {
  return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss), absl::UTCTimeZone());
}
absl::Time At(absl::Time t0, int64_t ms) { return t0 + absl::Milliseconds(ms); }

int64_t Uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {  // [lo, hi]
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}
int64_t ExpMs(std::mt19937_64& rng, double mean_ms) {
  return std::max<int64_t>(
      0, static_cast<int64_t>(std::exponential_distribution<double>(1.0 / mean_ms)(rng)));
}

// The most a token bucket of `rate`/min (capacity `rate`) lets through in a window of `window_ms`.
double BucketBound(int64_t rate, int64_t window_ms) {
  return static_cast<double>(rate) + static_cast<double>(rate) * window_ms / 60000.0;
}

// Over every window that starts at an event: the sum of `amount` of the events in
// [t_i, t_i + window] stays within the bucket bound. `events` sorted by time.
void ExpectWindowsWithin(const std::vector<std::pair<int64_t, int64_t>>& events, int64_t rate,
                         const std::string& what) {
  for (int64_t window_ms : {0, 1000, 10'000, 60'000, 600'000}) {
    size_t j = 0;
    int64_t sum = 0;
    for (size_t i = 0; i < events.size(); ++i) {
      if (j < i) {
        j = i;
        sum = 0;
      }
      while (j < events.size() && events[j].first <= events[i].first + window_ms) {
        sum += events[j++].second;
      }
      ASSERT_LE(static_cast<double>(sum), BucketBound(rate, window_ms) + 1e-9)
          << what << " window " << window_ms << " ms from t=" << events[i].first;
      sum -= events[i].second;
    }
  }
}

TEST(QuotaTrackerSimulationTest, RequestRatesHoldOverLongRuns) {
  for (uint64_t seed = 0; seed < 30; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937_64 rng(seed);
    QuotaTracker q;
    const absl::Time t0 = Utc(2025, 5, 1) + absl::Seconds(Uniform(rng, 0, 86400 * 20));
    const int64_t tenant_rpm = Uniform(rng, 1, 300);
    const int n_keys = static_cast<int>(Uniform(rng, 1, 4));
    const bool key_limits = seed % 2 == 1;
    std::vector<Principal> keys;
    for (int k = 0; k < n_keys; ++k) {
      Principal p;
      p.tenant = "t";
      p.key_id = absl::StrCat("k", k);
      p.tenant_quotas.requests_per_min = tenant_rpm;
      if (key_limits && Uniform(rng, 0, 1) == 1) {
        p.key_quotas.requests_per_min = Uniform(rng, 1, tenant_rpm);
      }
      keys.push_back(p);
    }
    const int64_t duration_ms = 3600 * 1000;
    const double overload = 1.5 + static_cast<double>(Uniform(rng, 0, 35)) / 10;  // 1.5x .. 5x
    const double mean_gap_ms = 60000.0 / (tenant_rpm * overload);
    std::vector<std::pair<int64_t, int64_t>> tenant_admits;
    std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> key_admits;
    for (int64_t t = 0; t < duration_ms; t += 1 + ExpMs(rng, mean_gap_ms)) {
      const Principal& p = keys[Uniform(rng, 0, n_keys - 1)];
      QuotaDecision d = q.Admit(p, 1, At(t0, t));
      if (!d.ok) {
        ASSERT_GE(d.retry_after_s, 1);
        ASSERT_NE(d.limit, QuotaLimit::kNone);
        continue;
      }
      tenant_admits.emplace_back(t, 1);
      key_admits[p.key_id].emplace_back(t, 1);
      q.Settle(d.reservation, 1, At(t0, t + 1));
    }
    ExpectWindowsWithin(tenant_admits, tenant_rpm, "tenant");
    for (const Principal& p : keys) {
      if (p.key_quotas.requests_per_min > 0) {
        ExpectWindowsWithin(key_admits[p.key_id], p.key_quotas.requests_per_min, p.key_id);
      }
    }
    if (!key_limits) {
      // Overloaded and limited by the tenant only: the whole rate is used, not less.
      const double full = static_cast<double>(tenant_rpm) * duration_ms / 60000.0;
      EXPECT_GE(static_cast<double>(tenant_admits.size()), 0.98 * full);
    }
  }
}

TEST(QuotaTrackerSimulationTest, TokenRatesHoldWithReservationsAndRefunds) {
  for (uint64_t seed = 0; seed < 30; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937_64 rng(seed);
    QuotaTracker q;
    const absl::Time t0 = Utc(2025, 7, 3, 8);
    Principal p;
    p.tenant = "t";
    p.key_id = "k";
    p.tenant_quotas.tokens_per_min = Uniform(rng, 1000, 100'000);
    const int64_t rate = p.tenant_quotas.tokens_per_min;
    const int64_t max_reserve = std::min<int64_t>(rate, 4000);
    const int64_t duration_ms = 3600 * 1000;
    const double mean_reserve = max_reserve / 2.0;
    const double mean_gap_ms = 60000.0 * mean_reserve / (rate * 4.0);  // ~4x overload if all used
    struct Pending {
      int64_t at;
      Reservation r;
      int64_t actual;
      bool operator>(const Pending& o) const { return at > o.at; }
    };
    std::priority_queue<Pending, std::vector<Pending>, std::greater<>> running;
    std::vector<std::pair<int64_t, int64_t>> net;  // (time, tokens charged: + reserve, - refund)
    int64_t total_actual = 0;
    auto settle_until = [&](int64_t t) {
      while (!running.empty() && running.top().at <= t) {
        Pending s = running.top();
        running.pop();
        q.Settle(s.r, s.actual, At(t0, s.at));
        net.emplace_back(s.at, s.actual - s.r.tokens);
        total_actual += s.actual;
      }
    };
    for (int64_t t = 0; t < duration_ms; t += 1 + ExpMs(rng, mean_gap_ms)) {
      settle_until(t);
      const int64_t reserve = Uniform(rng, 1, max_reserve);
      QuotaDecision d = q.Admit(p, reserve, At(t0, t));
      if (!d.ok) continue;
      net.emplace_back(t, reserve);
      running.push({t + Uniform(rng, 0, 20'000), d.reservation, Uniform(rng, 0, reserve)});
    }
    settle_until(INT64_MAX);
    std::stable_sort(net.begin(), net.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    ExpectWindowsWithin(net, rate, "tenant tokens");
    // Everything from the start: within one bucket and the refill of the whole run.
    EXPECT_LE(static_cast<double>(total_actual), BucketBound(rate, duration_ms + 20'000));
    // Overloaded: refunds are reused, so most of the rate is used.
    EXPECT_GE(static_cast<double>(total_actual), 0.9 * rate * duration_ms / 60000.0 - rate);
  }
}

TEST(QuotaTrackerSimulationTest, RetryAfterIsTheEarliestWholeSecond) {
  int refusals = 0;
  std::map<QuotaLimit, int> by_limit;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937_64 rng(seed);
    QuotaTracker q;
    // Some runs start just before the end of a month, so the monthly budget's wait is short.
    const int month = static_cast<int>(Uniform(rng, 1, 12));
    const absl::Time t0 = absl::FromCivil(absl::CivilMonth(2024, month) + 1, absl::UTCTimeZone()) -
                          absl::Seconds(Uniform(rng, 60, 3 * 3600));
    Principal p;
    p.tenant = "t";
    p.key_id = "k";
    auto maybe = [&](int64_t lo, int64_t hi) {
      return Uniform(rng, 0, 2) == 0 ? 0 : Uniform(rng, lo, hi);
    };
    p.tenant_quotas.requests_per_min = maybe(1, 300);
    p.tenant_quotas.tokens_per_min = maybe(100, 50'000);
    p.tenant_quotas.tokens_per_month = maybe(1000, 200'000);
    p.key_quotas.requests_per_min = maybe(1, 300);
    p.key_quotas.tokens_per_min = maybe(100, 50'000);
    int64_t t = 0;
    for (int i = 0; i < 1500; ++i) {
      t += Uniform(rng, 0, 3000);
      const int64_t reserve = Uniform(rng, 0, 3000);
      QuotaDecision d = q.Admit(p, reserve, At(t0, t));
      if (!d.ok) {
        ++refusals;
        by_limit[d.limit]++;
        ASSERT_GE(d.retry_after_s, 1);
        if (d.retry_after_s >= 2) {
          ASSERT_FALSE(q.Admit(p, reserve, At(t0, t + (d.retry_after_s - 1) * 1000)).ok)
              << "retry_after " << d.retry_after_s << " is not the earliest second";
        }
        t += d.retry_after_s * 1000;
        d = q.Admit(p, reserve, At(t0, t));
        ASSERT_TRUE(d.ok) << "refused again after Retry-After";
      }
      // Settle at once, sometimes above the reservation (debt).
      q.Settle(d.reservation, Uniform(rng, 0, 2 * reserve), At(t0, t));
    }
  }
  // The runs did exercise every kind of limit.
  EXPECT_GT(refusals, 1000);
  EXPECT_GT(by_limit[QuotaLimit::kTenantRequestsPerMin], 0);
  EXPECT_GT(by_limit[QuotaLimit::kTenantTokensPerMin], 0);
  EXPECT_GT(by_limit[QuotaLimit::kTenantTokensPerMonth], 0);
  EXPECT_GT(by_limit[QuotaLimit::kKeyRequestsPerMin], 0);
  EXPECT_GT(by_limit[QuotaLimit::kKeyTokensPerMin], 0);
}

TEST(QuotaTrackerSimulationTest, MonthlyBudgetsAcrossMonthBoundaries) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937_64 rng(seed);
    QuotaTracker q;
    const absl::TimeZone utc = absl::UTCTimeZone();
    const absl::Time t0 = Utc(2023, 11, 1) + absl::Hours(Uniform(rng, 0, 24 * 20));
    Principal p;
    p.tenant = "t";
    p.key_id = "k";
    const int64_t max_reserve = Uniform(rng, 100, 20'000);
    p.tenant_quotas.tokens_per_month = Uniform(rng, 10, 100) * max_reserve;
    std::map<absl::CivilMonth, int64_t> used;  // by the month of the settle
    struct Ledger {
      absl::Time time;
      int64_t tokens;
    };
    std::vector<Ledger> ledger;
    struct Pending {
      int64_t at;
      Reservation r;
      int64_t actual;
      bool operator>(const Pending& o) const { return at > o.at; }
    };
    std::priority_queue<Pending, std::vector<Pending>, std::greater<>> running;
    auto settle_until = [&](int64_t t) {
      while (!running.empty() && running.top().at <= t) {
        Pending s = running.top();
        running.pop();
        q.Settle(s.r, s.actual, At(t0, s.at));
        used[absl::ToCivilMonth(At(t0, s.at), utc)] += s.actual;
        ledger.push_back({At(t0, s.at), s.actual});
      }
    };
    // ~3 months, a request every few minutes, each running up to 2 hours.
    for (int64_t t = 0; t < int64_t{95} * 86400 * 1000; t += ExpMs(rng, 6 * 60'000.0)) {
      settle_until(t);
      const int64_t reserve = Uniform(rng, 1, max_reserve);
      QuotaDecision d = q.Admit(p, reserve, At(t0, t));
      if (!d.ok) {
        ASSERT_EQ(d.limit, QuotaLimit::kTenantTokensPerMonth);
        // Retry-After points at the start of the next month.
        absl::Time next = absl::FromCivil(absl::ToCivilMonth(At(t0, t), utc) + 1, utc);
        ASSERT_EQ(d.retry_after_s,
                  absl::ToInt64Seconds(absl::Ceil(next - At(t0, t), absl::Seconds(1))));
        continue;
      }
      running.push({t + Uniform(rng, 0, 2 * 3600 * 1000), d.reservation, Uniform(rng, 0, reserve)});
      ASSERT_EQ(q.MonthTokens("t", At(t0, t)), used[absl::ToCivilMonth(At(t0, t), utc)]);
    }
    settle_until(INT64_MAX);
    int full_months = 0;
    for (const auto& [month, tokens] : used) {
      // Admission needs used + in flight < budget and actual <= reserve, so a month ends at most
      // one reservation over its budget.
      EXPECT_LE(tokens, p.tenant_quotas.tokens_per_month - 1 + max_reserve) << month;
      if (tokens >= p.tenant_quotas.tokens_per_month - max_reserve) ++full_months;
    }
    EXPECT_GE(full_months, 1);
    // The ledger replayed into a fresh tracker gives the same month total.
    QuotaTracker rebuilt;
    for (const Ledger& l : ledger) rebuilt.Replay("t", "k", l.tokens, l.time);
    absl::Time end = ledger.back().time;
    EXPECT_EQ(rebuilt.MonthTokens("t", end), q.MonthTokens("t", end));
  }
}

// Live traffic for a while, then a "restart": a fresh tracker fed the ledger decides every later
// request exactly as the live tracker does.
TEST(QuotaTrackerSimulationTest, ReplayEqualsLive) {
  int admitted = 0, refused = 0;
  for (uint64_t seed = 0; seed < 60; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937_64 rng(seed);
    // Some runs cross a month boundary.
    const absl::Time t0 = Utc(2025, 8, 31, 23, 55) + absl::Minutes(Uniform(rng, -60, 5));
    std::vector<Principal> principals;
    for (int tenant = 0; tenant < 3; ++tenant) {
      auth::TenantQuotas tq;
      auto maybe = [&](int64_t lo, int64_t hi) {
        return Uniform(rng, 0, 3) == 0 ? 0 : Uniform(rng, lo, hi);
      };
      tq.requests_per_min = maybe(5, 200);
      tq.tokens_per_min = maybe(500, 20'000);
      tq.tokens_per_month = maybe(5'000, 1'000'000);
      for (int key = 0; key < 3; ++key) {
        Principal p;
        p.tenant = absl::StrCat("t", tenant);
        p.key_id = absl::StrCat("t", tenant, "k", key);
        p.tenant_quotas = tq;
        p.key_quotas.requests_per_min = maybe(2, 100);
        p.key_quotas.tokens_per_min = maybe(200, 10'000);
        principals.push_back(p);
      }
    }
    struct Request {
      int64_t t;
      size_t who;
      int64_t reserve;
      int64_t actual;
    };
    auto next_request = [&](int64_t t) {
      Request r;
      r.t = t + ExpMs(rng, 150);
      r.who = static_cast<size_t>(Uniform(rng, 0, static_cast<int64_t>(principals.size()) - 1));
      r.reserve = Uniform(rng, 0, 1500);
      r.actual = Uniform(rng, 0, 2000);  // below or above the reservation
      return r;
    };
    QuotaTracker live;
    struct Record {
      std::string tenant, key;
      int64_t tokens;
      absl::Time time;
    };
    std::vector<Record> ledger;
    const int64_t restart_ms = Uniform(rng, 60'000, 8 * 60'000);
    int64_t t = 0;
    while (true) {
      Request r = next_request(t);
      t = r.t;
      if (t >= restart_ms) break;
      QuotaDecision d = live.Admit(principals[r.who], r.reserve, At(t0, t));
      if (!d.ok) continue;
      live.Settle(d.reservation, r.actual, At(t0, t));
      ledger.push_back({principals[r.who].tenant, principals[r.who].key_id, r.actual, At(t0, t)});
    }
    ASSERT_FALSE(ledger.empty());
    QuotaTracker rebuilt;
    for (const Record& rec : ledger) rebuilt.Replay(rec.tenant, rec.key, rec.tokens, rec.time);

    for (int i = 0; i < 3000; ++i) {
      Request r = next_request(t);
      t = r.t;
      QuotaDecision a = live.Admit(principals[r.who], r.reserve, At(t0, t));
      QuotaDecision b = rebuilt.Admit(principals[r.who], r.reserve, At(t0, t));
      ASSERT_EQ(a.ok, b.ok) << "request " << i << " at " << t << " ms";
      ASSERT_EQ(a.retry_after_s, b.retry_after_s) << "request " << i;
      ASSERT_EQ(a.limit, b.limit) << "request " << i;
      if (a.ok) {
        ++admitted;
        live.Settle(a.reservation, r.actual, At(t0, t));
        rebuilt.Settle(b.reservation, r.actual, At(t0, t));
      } else {
        ++refused;
      }
    }
    for (int tenant = 0; tenant < 3; ++tenant) {
      std::string id = absl::StrCat("t", tenant);
      EXPECT_EQ(live.MonthTokens(id, At(t0, t)), rebuilt.MonthTokens(id, At(t0, t)));
    }
  }
  // Both outcomes were compared many times.
  EXPECT_GT(admitted, 10'000);
  EXPECT_GT(refused, 10'000);
}

}  // namespace
}  // namespace weft::quota
