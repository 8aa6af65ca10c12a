// SPDX-License-Identifier: Apache-2.0
// The gateway's per-request admission cost: Authenticate (SqliteKeyStore, warm cache) + Admit +
// Settle, and Admit + Settle alone, on one thread and several (tenants spread over shards).
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "gateway/auth/sqlite_key_store.h"
#include "gateway/quota/quota_tracker.h"

namespace weft::quota {
namespace {

auth::TenantQuotas BigQuotas() {
  // Limits that are tracked but never refuse, so every iteration takes the admitted path.
  return {.requests_per_min = int64_t{1} << 30,
          .tokens_per_min = int64_t{1} << 30,
          .tokens_per_month = int64_t{1} << 40};
}

void BM_AdmitSettle(benchmark::State& state) {
  static QuotaTracker* q = new QuotaTracker();
  auth::Principal p;
  p.tenant = absl::StrCat("tenant", state.thread_index());
  p.key_id = absl::StrCat("key", state.thread_index());
  p.tenant_quotas = BigQuotas();
  p.key_quotas = {.requests_per_min = int64_t{1} << 30, .tokens_per_min = int64_t{1} << 30};
  for (auto _ : state) {
    absl::Time now = absl::Now();
    QuotaDecision d = q->Admit(p, 256, now);
    benchmark::DoNotOptimize(d);
    q->Settle(d.reservation, 100, now);
  }
}
BENCHMARK(BM_AdmitSettle)->Threads(1)->Threads(2)->UseRealTime();

struct Fixture {
  std::string dir;
  std::unique_ptr<auth::SqliteKeyStore> store;
  std::vector<std::string> keys;  // plaintext, one per tenant
  QuotaTracker quota;
};

Fixture& Shared() {
  static Fixture* f = [] {
    auto* f = new Fixture();
    f->dir = std::filesystem::temp_directory_path() / "weft_auth_bench_XXXXXX";
    f->dir = mkdtemp(f->dir.data());
    f->store = *auth::SqliteKeyStore::Open(f->dir + "/keys.sqlite");
    for (int i = 0; i < 64; ++i) {
      auth::Tenant t;
      t.id = absl::StrCat("tenant", i);
      t.quotas = BigQuotas();
      (void)f->store->CreateTenant(t);
      auth::KeySpec spec;
      spec.tenant = t.id;
      f->keys.push_back(f->store->CreateKey(spec)->plaintext);
    }
    return f;
  }();
  return *f;
}

void BM_AuthenticateAdmitSettle(benchmark::State& state) {
  Fixture& f = Shared();
  size_t i = static_cast<size_t>(state.thread_index());
  for (auto _ : state) {
    const std::string& key = f.keys[i++ % f.keys.size()];
    absl::StatusOr<auth::Principal> p = f.store->Authenticate(key);
    if (!p.ok()) {
      state.SkipWithError("authentication failed");
      break;
    }
    absl::Time now = absl::Now();
    QuotaDecision d = f.quota.Admit(*p, 256, now);
    benchmark::DoNotOptimize(d);
    f.quota.Settle(d.reservation, 100, now);
  }
}
BENCHMARK(BM_AuthenticateAdmitSettle)->Threads(1)->Threads(2)->UseRealTime();

void BM_AuthenticateWrongSecret(benchmark::State& state) {
  Fixture& f = Shared();
  std::string key = f.keys[0];
  (void)f.store->Authenticate(key);  // cached
  key.back() = key.back() == 'a' ? 'b' : 'a';
  for (auto _ : state) benchmark::DoNotOptimize(f.store->Authenticate(key));
}
BENCHMARK(BM_AuthenticateWrongSecret);

}  // namespace
}  // namespace weft::quota

BENCHMARK_MAIN();
