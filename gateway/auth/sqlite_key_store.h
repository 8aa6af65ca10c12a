// SPDX-License-Identifier: Apache-2.0
// SqliteKeyStore: the KeyStore in one SQLite file (WAL mode), shared by the gateway and the
// `weft keys` / admin verbs, also across processes. Keys are stored as a random salt and
// SHA-256(salt || secret), never the plaintext. Authenticate answers from a cache of verified
// keys (by key id, with their hash) and reads the file only on a miss; a revocation or tenant
// change made through this object clears the cache at once, one made by another process is seen
// within `refresh_interval` (a generation counter in the file, read at most that often).
// Thread-safe: one connection behind a mutex, the cache behind a reader-writer lock.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/auth/api_key.h"
#include "gateway/auth/key_store.h"

namespace weft::auth {

struct SqliteKeyStoreOptions {
  std::function<absl::Time()> clock = absl::Now;  // creation times, expiry, cache refresh
  absl::Duration refresh_interval = absl::Seconds(1);
  size_t max_cached_keys = 100000;                 // past this the cache starts over
  absl::Duration busy_timeout = absl::Seconds(5);  // waiting for another process's write lock
};

class SqliteKeyStore : public KeyStore {
 public:
  // Opens (creating if needed) the database file at `path`; its folder must exist.
  static absl::StatusOr<std::unique_ptr<SqliteKeyStore>> Open(const std::string& path,
                                                              SqliteKeyStoreOptions options = {});
  ~SqliteKeyStore() override;

  absl::StatusOr<Principal> Authenticate(std::string_view bearer) override;
  absl::StatusOr<Tenant> CreateTenant(const Tenant& tenant) override;
  absl::StatusOr<Tenant> GetTenant(std::string_view id) override;
  absl::StatusOr<std::vector<Tenant>> ListTenants() override;
  absl::StatusOr<Tenant> UpdateTenant(std::string_view id, const TenantPatch& patch) override;
  absl::StatusOr<CreatedKey> CreateKey(const KeySpec& spec) override;
  absl::StatusOr<std::vector<ApiKey>> ListKeys(std::string_view tenant) override;
  absl::StatusOr<ApiKey> RevokeKey(std::string_view key_id) override;

  // For tests and metrics: keys in the cache, and reads of the file made by Authenticate.
  size_t cached_keys() const;
  int64_t key_reads() const { return key_reads_.load(std::memory_order_relaxed); }

 private:
  struct CachedKey {
    Salt salt{};
    SecretHash hash{};
    bool revoked = false;
    int64_t expires_unix_s = 0;
    Principal principal;
  };

  SqliteKeyStore(sqlite3* db, SqliteKeyStoreOptions options);

  absl::StatusOr<Principal> Check(const CachedKey& key, std::string_view secret,
                                  absl::Time now) const;
  // Reads one key and its tenant from the file; NotFound if absent. Takes db_mu_.
  absl::StatusOr<CachedKey> LoadKey(std::string_view key_id);
  // Clears the cache when another process changed the generation; at most once per interval.
  void MaybeRefresh(absl::Time now);
  void InvalidateCache();
  absl::StatusOr<Tenant> GetTenantLocked(std::string_view id);   // needs db_mu_
  absl::StatusOr<ApiKey> GetKeyLocked(std::string_view key_id);  // needs db_mu_
  absl::Status BumpGenerationLocked();                           // needs db_mu_

  const SqliteKeyStoreOptions options_;

  std::mutex db_mu_;
  sqlite3* db_;                  // guarded by db_mu_
  int64_t seen_generation_ = 0;  // guarded by db_mu_

  mutable std::shared_mutex cache_mu_;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  // key id -> verified row; guarded by cache_mu_
  std::unordered_map<std::string, CachedKey, StringHash, std::equal_to<>> cache_;
  uint64_t cache_epoch_ = 0;  // guarded by cache_mu_; bumped by every invalidation

  std::atomic<int64_t> next_refresh_unix_ns_{0};
  std::atomic<int64_t> key_reads_{0};
};

}  // namespace weft::auth
