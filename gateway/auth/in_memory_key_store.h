// SPDX-License-Identifier: Apache-2.0
// InMemoryKeyStore: a KeyStore held in maps under one mutex, for tests and the simulator. Same
// key format, hashing and checks as SqliteKeyStore; nothing survives the object. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/auth/api_key.h"
#include "gateway/auth/key_store.h"

namespace weft::auth {

class InMemoryKeyStore : public KeyStore {
 public:
  // `clock` gives "now" for creation times and expiry checks.
  explicit InMemoryKeyStore(std::function<absl::Time()> clock = absl::Now);

  absl::StatusOr<Principal> Authenticate(std::string_view bearer) override;
  absl::StatusOr<Tenant> CreateTenant(const Tenant& tenant) override;
  absl::StatusOr<Tenant> GetTenant(std::string_view id) override;
  absl::StatusOr<std::vector<Tenant>> ListTenants() override;
  absl::StatusOr<Tenant> UpdateTenant(std::string_view id, const TenantPatch& patch) override;
  absl::StatusOr<CreatedKey> CreateKey(const KeySpec& spec) override;
  absl::StatusOr<std::vector<ApiKey>> ListKeys(std::string_view tenant) override;
  absl::StatusOr<ApiKey> RevokeKey(std::string_view key_id) override;

 private:
  struct StoredKey {
    ApiKey key;
    Salt salt;
    SecretHash hash;
    int64_t seq = 0;  // creation order
  };

  std::function<absl::Time()> clock_;
  std::mutex mu_;
  std::map<std::string, Tenant, std::less<>> tenants_;  // guarded by mu_
  std::map<std::string, StoredKey, std::less<>> keys_;  // guarded by mu_
  int64_t next_seq_ = 0;                                // guarded by mu_
};

}  // namespace weft::auth
