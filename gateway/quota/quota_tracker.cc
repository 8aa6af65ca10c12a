// SPDX-License-Identifier: Apache-2.0
#include "gateway/quota/quota_tracker.h"

#include <algorithm>
#include <functional>

#include "absl/time/civil_time.h"

namespace weft::quota {
namespace {

// Bucket levels are in units of 1/kUnits token: a rate of R per minute refills R units per ms.
constexpr int64_t kUnits = 60'000;
// Reservations and counts are clamped here so that `tokens * kUnits` cannot overflow.
constexpr int64_t kMaxTokens = int64_t{1} << 40;
// Replayed history kept for a bucket whose rate is not known yet: beyond this window (or count)
// the oldest records are dropped; a bucket refills fully within a minute unless in deep debt.
constexpr int64_t kPendingWindowMs = 10 * 60'000;
constexpr size_t kMaxPending = 1 << 16;

// Debt floor, far beyond any real use, so that repeated extra charges cannot overflow.
constexpr int64_t kMinLevel = -(int64_t{1} << 62);

int64_t ClampTokens(int64_t tokens) { return std::clamp<int64_t>(tokens, 0, kMaxTokens); }
int64_t Capacity(int64_t rate) { return rate * kUnits; }
int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }  // a >= 0, b > 0

}  // namespace

std::string_view QuotaLimitName(QuotaLimit limit) {
  switch (limit) {
    case QuotaLimit::kNone:
      return "none";
    case QuotaLimit::kTenantRequestsPerMin:
      return "tenant requests per minute";
    case QuotaLimit::kTenantTokensPerMin:
      return "tenant tokens per minute";
    case QuotaLimit::kTenantTokensPerMonth:
      return "tenant tokens per month";
    case QuotaLimit::kKeyRequestsPerMin:
      return "key requests per minute";
    case QuotaLimit::kKeyTokensPerMin:
      return "key tokens per minute";
  }
  return "none";
}

std::string_view QuotaLimitLabel(QuotaLimit limit) {
  switch (limit) {
    case QuotaLimit::kNone:
      return "";
    case QuotaLimit::kTenantRequestsPerMin:
      return "tenant_rpm";
    case QuotaLimit::kTenantTokensPerMin:
      return "tenant_tpm";
    case QuotaLimit::kTenantTokensPerMonth:
      return "tenant_monthly_tokens";
    case QuotaLimit::kKeyRequestsPerMin:
      return "key_rpm";
    case QuotaLimit::kKeyTokensPerMin:
      return "key_tpm";
  }
  return "";
}

QuotaTracker::Shard& QuotaTracker::ShardOf(std::string_view tenant) {
  return shards_[std::hash<std::string_view>()(tenant) % kShards];
}

QuotaTracker::TenantState& QuotaTracker::Tenant(Shard& shard, std::string_view tenant) {
  auto it = shard.tenants.find(tenant);
  if (it == shard.tenants.end()) it = shard.tenants.try_emplace(std::string(tenant)).first;
  return it->second;
}

QuotaTracker::Counters& QuotaTracker::Key(Shard& shard, std::string_view key_id) {
  auto it = shard.keys.find(key_id);
  if (it == shard.keys.end()) it = shard.keys.try_emplace(std::string(key_id)).first;
  return it->second;
}

void QuotaTracker::RollMonth(TenantState& t, absl::Time now) {
  if (now < t.month_end) return;  // this month, or an older one (which is never reopened)
  const absl::TimeZone utc = absl::UTCTimeZone();
  absl::CivilMonth month = absl::ToCivilMonth(now, utc);
  t.month_start = absl::FromCivil(month, utc);
  t.month_end = absl::FromCivil(month + 1, utc);
  t.month_used = 0;  // in-flight reservations carry over: they are charged when they settle
}

void QuotaTracker::Refill(Bucket& b, int64_t now_ms) {
  if (b.rate == 0 || now_ms <= b.last_ms) return;
  const int64_t cap = Capacity(b.rate);
  const int64_t dt = now_ms - b.last_ms;
  b.last_ms = now_ms;
  // Saturate without overflow: a long idle gap fills the bucket, whatever its debt was.
  if (dt >= CeilDiv(cap - b.level, b.rate)) {
    b.level = cap;
  } else {
    b.level += b.rate * dt;
  }
}

void QuotaTracker::Charge(Bucket& b, int64_t units) {
  if (b.rate == 0) return;
  b.level = std::max(kMinLevel, b.level - units);
}

void QuotaTracker::Refund(Bucket& b, int64_t units) {
  if (b.rate == 0) return;
  b.level = std::min(Capacity(b.rate), b.level + units);
}

void QuotaTracker::SetRates(Counters& c, int64_t requests_per_min, int64_t tokens_per_min,
                            int64_t now_ms) {
  auto set = [&](Bucket& b, int64_t rate, bool is_requests) {
    rate = std::clamp<int64_t>(rate, 0, kMaxTokens);
    if (rate == b.rate) return;
    if (rate == 0) {
      b = Bucket{};
      return;
    }
    if (b.rate > 0) {  // a new rate: keep the level, within the new capacity
      b.rate = rate;
      b.level = std::min(b.level, Capacity(rate));
      return;
    }
    // Newly tracked: full at the start of the replayed history, which is then applied in order.
    b.rate = rate;
    b.level = Capacity(rate);
    b.last_ms = c.pending.empty() ? now_ms : c.pending.front().time_ms;
    for (const Event& e : c.pending) {
      Refill(b, e.time_ms);
      Charge(b, (is_requests ? e.requests : e.tokens) * kUnits);
    }
  };
  set(c.requests, requests_per_min, true);
  set(c.tokens, tokens_per_min, false);
  if (c.requests.rate > 0 && c.tokens.rate > 0) c.pending.clear();
}

void QuotaTracker::Record(Counters& c, int64_t requests, int64_t tokens, int64_t time_ms) {
  for (Bucket* b : {&c.requests, &c.tokens}) {
    if (b->rate == 0) continue;
    Refill(*b, time_ms);  // a record older than the bucket's clock counts at the bucket's time
    Charge(*b, (b == &c.requests ? requests : tokens) * kUnits);
  }
  if (c.requests.rate > 0 && c.tokens.rate > 0) return;
  if (!c.pending.empty() && c.pending.back().time_ms == time_ms) {
    c.pending.back().requests += requests;
    c.pending.back().tokens += tokens;
  } else {
    c.pending.push_back(Event{time_ms, requests, tokens});
  }
  const int64_t newest = std::max(time_ms, c.pending.back().time_ms);
  while (!c.pending.empty() && (c.pending.size() > kMaxPending ||
                                c.pending.front().time_ms < newest - kPendingWindowMs)) {
    c.pending.pop_front();
  }
}

QuotaDecision QuotaTracker::Admit(const auth::Principal& principal, int64_t reserve_tokens,
                                  absl::Time now) {
  const int64_t reserve = ClampTokens(reserve_tokens);
  const int64_t now_ms = absl::ToUnixMillis(now);
  const auth::TenantQuotas& tq = principal.tenant_quotas;
  const auth::KeyQuotas& kq = principal.key_quotas;
  const bool key_limited = kq.requests_per_min > 0 || kq.tokens_per_min > 0;

  Shard& shard = ShardOf(principal.tenant);
  std::lock_guard lock(shard.mu);
  TenantState& t = Tenant(shard, principal.tenant);
  SetRates(t.counters, tq.requests_per_min, tq.tokens_per_min, now_ms);
  Counters* key = nullptr;
  if (key_limited) {
    key = &Key(shard, principal.key_id);
  } else if (auto it = shard.keys.find(principal.key_id); it != shard.keys.end()) {
    key = &it->second;  // limits removed since: SetRates below stops tracking
  }
  if (key != nullptr) SetRates(*key, kq.requests_per_min, kq.tokens_per_min, now_ms);
  RollMonth(t, now);

  // Plan: how long each limit would make this request wait; admit only if none does.
  QuotaDecision d;
  int64_t worst_ms = 0;
  auto check_bucket = [&](Bucket& b, int64_t need_tokens, QuotaLimit limit) {
    if (b.rate == 0) return;
    Refill(b, now_ms);
    const int64_t need = std::min(need_tokens, b.rate) * kUnits;
    if (b.level >= need) return;
    const int64_t wait_ms = CeilDiv(need - b.level, b.rate);
    if (wait_ms > worst_ms) {
      worst_ms = wait_ms;
      d.limit = limit;
    }
  };
  check_bucket(t.counters.requests, 1, QuotaLimit::kTenantRequestsPerMin);
  check_bucket(t.counters.tokens, reserve, QuotaLimit::kTenantTokensPerMin);
  if (key != nullptr) {
    check_bucket(key->requests, 1, QuotaLimit::kKeyRequestsPerMin);
    check_bucket(key->tokens, reserve, QuotaLimit::kKeyTokensPerMin);
  }
  if (tq.tokens_per_month > 0 && t.month_used + t.month_in_flight >= tq.tokens_per_month) {
    const int64_t wait_ms =
        absl::ToInt64Milliseconds(absl::Ceil(t.month_end - now, absl::Milliseconds(1)));
    if (wait_ms > worst_ms) {
      worst_ms = wait_ms;
      d.limit = QuotaLimit::kTenantTokensPerMonth;
    }
  }
  if (worst_ms > 0) {
    d.retry_after_s = std::max<int64_t>(1, CeilDiv(worst_ms, 1000));
    return d;
  }

  // Apply.
  for (Counters* c : {&t.counters, key}) {
    if (c == nullptr) continue;
    Charge(c->requests, kUnits);
    Charge(c->tokens, reserve * kUnits);
  }
  t.month_in_flight += reserve;
  d.ok = true;
  d.reservation.tenant = principal.tenant;
  d.reservation.key_id = principal.key_id;
  d.reservation.tokens = reserve;
  d.reservation.active = true;
  return d;
}

void QuotaTracker::Settle(const Reservation& reservation, int64_t actual_tokens, absl::Time now) {
  if (!reservation.active) return;
  const int64_t actual = ClampTokens(actual_tokens);
  const int64_t now_ms = absl::ToUnixMillis(now);
  const int64_t delta = (reservation.tokens - actual) * kUnits;  // > 0 refund, < 0 extra
  Shard& shard = ShardOf(reservation.tenant);
  std::lock_guard lock(shard.mu);
  TenantState& t = Tenant(shard, reservation.tenant);
  RollMonth(t, now);
  t.month_in_flight = std::max<int64_t>(0, t.month_in_flight - reservation.tokens);
  if (now >= t.month_start) t.month_used += actual;
  auto settle = [&](Bucket& b) {
    if (b.rate == 0) return;
    Refill(b, now_ms);
    if (delta > 0) {
      Refund(b, delta);
    } else {
      Charge(b, -delta);
    }
  };
  settle(t.counters.tokens);
  if (auto it = shard.keys.find(reservation.key_id); it != shard.keys.end()) {
    settle(it->second.tokens);
  }
}

void QuotaTracker::Release(const Reservation& reservation) {
  if (!reservation.active) return;
  Shard& shard = ShardOf(reservation.tenant);
  std::lock_guard lock(shard.mu);
  TenantState& t = Tenant(shard, reservation.tenant);
  t.month_in_flight = std::max<int64_t>(0, t.month_in_flight - reservation.tokens);
  auto release = [&](Counters& c) {
    Refund(c.requests, kUnits);
    Refund(c.tokens, reservation.tokens * kUnits);
  };
  release(t.counters);
  if (auto it = shard.keys.find(reservation.key_id); it != shard.keys.end()) {
    release(it->second);
  }
}

void QuotaTracker::Replay(std::string_view tenant, std::string_view key_id, int64_t tokens,
                          absl::Time time) {
  const int64_t n = ClampTokens(tokens);
  const int64_t time_ms = absl::ToUnixMillis(time);
  Shard& shard = ShardOf(tenant);
  std::lock_guard lock(shard.mu);
  TenantState& t = Tenant(shard, tenant);
  RollMonth(t, time);
  if (time >= t.month_start) t.month_used += n;
  Record(t.counters, 1, n, time_ms);
  if (!key_id.empty()) Record(Key(shard, key_id), 1, n, time_ms);
}

int64_t QuotaTracker::MonthTokens(std::string_view tenant, absl::Time now) {
  Shard& shard = ShardOf(tenant);
  std::lock_guard lock(shard.mu);
  auto it = shard.tenants.find(tenant);
  if (it == shard.tenants.end()) return 0;
  RollMonth(it->second, now);
  return now >= it->second.month_start ? it->second.month_used : 0;
}

}  // namespace weft::quota
