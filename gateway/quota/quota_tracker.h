// SPDX-License-Identifier: Apache-2.0
// QuotaTracker: the gateway's rate limits, a pure policy (time is a parameter, no I/O). Per tenant
// and per key, requests/min and tokens/min are token buckets (capacity one minute's worth,
// refilled continuously); per tenant, tokens per calendar month (UTC). Tokens are reserved up
// front (from max_tokens, or a default) and settled with the actual count when the request ends.
// Counters live in memory; after a restart Replay() rebuilds them from the ledger. Thread-safe:
// state is sharded by tenant, one mutex per shard; every call is short and never blocks on I/O.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "absl/time/time.h"
#include "gateway/auth/principal.h"

namespace weft::quota {

// Which limit refused a request.
enum class QuotaLimit {
  kNone,
  kTenantRequestsPerMin,
  kTenantTokensPerMin,
  kTenantTokensPerMonth,
  kKeyRequestsPerMin,
  kKeyTokensPerMin,
};
// "tenant requests per minute", ... (for error messages and metrics labels see QuotaLimitLabel).
std::string_view QuotaLimitName(QuotaLimit limit);
// "tenant_rpm", "tenant_tpm", "tenant_monthly_tokens", "key_rpm", "key_tpm", "" for kNone.
std::string_view QuotaLimitLabel(QuotaLimit limit);

// What Admit() charged; hand it back exactly once to Settle() or Release(). A plain value: the
// tracker keeps no per-request state, so a lost reservation leaks nothing (its tokens stay spent).
struct Reservation {
  std::string tenant;
  std::string key_id;
  int64_t tokens = 0;   // reserved against tokens/min and the month
  bool active = false;  // false: nothing to settle (a refused request)
};

struct QuotaDecision {
  bool ok = false;
  int64_t retry_after_s = 0;  // when refused: whole seconds until this request would pass (>= 1)
  QuotaLimit limit = QuotaLimit::kNone;  // when refused: the limit with the longest wait
  Reservation reservation;               // when admitted
};

class QuotaTracker {
 public:
  QuotaTracker() = default;
  QuotaTracker(const QuotaTracker&) = delete;
  QuotaTracker& operator=(const QuotaTracker&) = delete;

  // Admits one request of `principal` reserving `reserve_tokens` (prompt estimate + max_tokens)
  // if every limit allows it, charging all of them; otherwise charges nothing and says which
  // limit refused and after how long to retry. Limits come from the principal at each call (so a
  // changed quota applies at once). A token bucket admits when it holds min(reserve, capacity)
  // tokens, so a request larger than a minute's worth still passes when the bucket is full (and
  // leaves it in debt). The month admits while used + in-flight < budget.
  QuotaDecision Admit(const auth::Principal& principal, int64_t reserve_tokens, absl::Time now);

  // The request ended having used `actual_tokens` (prompt + completion): the difference to the
  // reservation is refunded (up to the bucket's capacity) or charged extra (a bucket may go into
  // debt), and the month is charged the actual count (in the month of `now`).
  void Settle(const Reservation& reservation, int64_t actual_tokens, absl::Time now);

  // The request never ran (no replica, client gone before forwarding): everything is refunded,
  // the request count included.
  void Release(const Reservation& reservation);

  // Rebuilds counters after a restart from one ledger record: a request of `key_id` of `tenant`
  // that ended at `time` having used `tokens`. Feed the records in time order (at least those of
  // the current month), before live traffic. The month counts every record of the current
  // month; a rate bucket is rebuilt when its rate becomes known (at the next Admit) from the last
  // 10 minutes of records (at most 65536 per tenant or key), as if it were full before them. Within
  // that window a rebuilt bucket equals the live one for requests settled as they were admitted.
  void Replay(std::string_view tenant, std::string_view key_id, int64_t tokens, absl::Time time);

  // Tokens the tenant used (settled) in the calendar month of `now`, for metrics and tests.
  int64_t MonthTokens(std::string_view tenant, absl::Time now);

 private:
  // A token bucket of `rate` per minute and capacity `rate` (one minute's worth). Exact integer
  // arithmetic: the level is in units of 1/60000 token, so a millisecond refills `rate` units
  // (no rounding, and replayed history lands on the very same levels as the live run).
  struct Bucket {
    int64_t rate = 0;   // per minute; 0 = unlimited (not tracked)
    int64_t level = 0;  // units; < 0 is debt
    int64_t last_ms = 0;
  };
  // Ledger history replayed before a bucket's rate was known; folded in when it becomes tracked.
  struct Event {
    int64_t time_ms;
    int64_t requests;
    int64_t tokens;
  };
  struct Counters {
    Bucket requests;
    Bucket tokens;
    std::deque<Event> pending;  // only while one of the buckets is untracked
  };
  struct TenantState {
    Counters counters;
    absl::Time month_start = absl::InfinitePast();  // the month of the counters below
    absl::Time month_end = absl::InfinitePast();
    int64_t month_used = 0;       // settled tokens in that month
    int64_t month_in_flight = 0;  // reserved, not yet settled (any month)
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  template <typename V>
  using Map = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;
  struct Shard {
    std::mutex mu;
    Map<TenantState> tenants;  // guarded by mu
    Map<Counters> keys;        // guarded by mu; a key lives in its tenant's shard
  };
  static constexpr size_t kShards = 16;

  Shard& ShardOf(std::string_view tenant);
  static TenantState& Tenant(Shard& shard, std::string_view tenant);
  static Counters& Key(Shard& shard, std::string_view key_id);
  static void RollMonth(TenantState& t, absl::Time now);
  // Sets the limits of `c`; a bucket that becomes tracked starts full and takes the pending
  // history.
  static void SetRates(Counters& c, int64_t requests_per_min, int64_t tokens_per_min,
                       int64_t now_ms);
  static void Refill(Bucket& b, int64_t now_ms);
  static void Charge(Bucket& b, int64_t units);  // may leave debt
  static void Refund(Bucket& b, int64_t units);  // up to the capacity
  static void Record(Counters& c, int64_t requests, int64_t tokens, int64_t time_ms);

  std::array<Shard, kShards> shards_;
};

}  // namespace weft::quota
