// SPDX-License-Identifier: Apache-2.0
// KeyStore: tenants and their API keys, and the hot-path check of a bearer key. Implementations:
// SqliteKeyStore (a file, shared by the gateway and `weft keys`) and InMemoryKeyStore (tests,
// simulation). The owner (the gateway process, or a CLI verb) keeps the store alive past every
// caller. All methods are thread-safe and may be called from any thread; Authenticate is meant for
// I/O threads (it answers from memory on the common path), the others may block on storage.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gateway/auth/principal.h"

namespace weft::auth {

struct Tenant {
  std::string id;                                // [A-Za-z0-9._-]{1,64}
  std::string name;                              // free text; "" -> the id
  std::vector<std::string> deployments = {"*"};  // what the tenant may call; "*" = everything
  TenantQuotas quotas;
  int64_t created_unix_s = 0;  // set by the store

  friend bool operator==(const Tenant&, const Tenant&) = default;
};

// A PATCH of a tenant: unset fields stay as they are.
struct TenantPatch {
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> deployments;
  std::optional<int64_t> requests_per_min;
  std::optional<int64_t> tokens_per_min;
  std::optional<int64_t> tokens_per_month;
};

// A key as listed: never the plaintext or its hash.
struct ApiKey {
  std::string key_id;
  std::string tenant;
  std::string name;
  int64_t created_unix_s = 0;
  int64_t expires_unix_s = 0;  // 0 = never
  bool revoked = false;
  KeyQuotas quotas;

  friend bool operator==(const ApiKey&, const ApiKey&) = default;
};

struct KeySpec {
  std::string tenant;  // must exist
  std::string name;
  int64_t expires_unix_s = 0;  // 0 = never
  KeyQuotas quotas;
};

struct CreatedKey {
  ApiKey key;
  std::string plaintext;  // `wft_<key_id>_<secret>`: shown once, stored nowhere
};

class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // The hot path: the principal of a bearer key (the token after "Bearer "). Unauthenticated
  // when the key is missing, malformed, unknown, wrong, revoked or expired (the gateway answers
  // 401); other codes only when the storage itself fails. Answers from memory on a cache hit.
  virtual absl::StatusOr<Principal> Authenticate(std::string_view bearer) = 0;

  // Tenants. Create: AlreadyExists if the id is taken, InvalidArgument for a bad id, deployment
  // list or negative quota. Get/Update: NotFound for an unknown id.
  virtual absl::StatusOr<Tenant> CreateTenant(const Tenant& tenant) = 0;
  virtual absl::StatusOr<Tenant> GetTenant(std::string_view id) = 0;
  virtual absl::StatusOr<std::vector<Tenant>> ListTenants() = 0;  // by id
  virtual absl::StatusOr<Tenant> UpdateTenant(std::string_view id, const TenantPatch& patch) = 0;

  // Keys. Create: NotFound if the tenant does not exist; the plaintext is in the result only.
  // List: a tenant's keys ("" = all), revoked ones included, by creation time.
  // Revoke: NotFound for an unknown key id; revoking twice is OK. Takes effect in this process at
  // once, and within about a second in other processes sharing the store.
  virtual absl::StatusOr<CreatedKey> CreateKey(const KeySpec& spec) = 0;
  virtual absl::StatusOr<std::vector<ApiKey>> ListKeys(std::string_view tenant) = 0;
  virtual absl::StatusOr<ApiKey> RevokeKey(std::string_view key_id) = 0;
};

// Checks shared by the implementations (InvalidArgument naming the field).
absl::Status ValidateTenantId(std::string_view id);
absl::Status ValidateDeployments(const std::vector<std::string>& deployments);
absl::Status ValidateTenant(const Tenant& tenant);
absl::Status ValidateKeySpec(const KeySpec& spec);
// Applies `patch` to `tenant` and validates the result.
absl::Status ApplyPatch(const TenantPatch& patch, Tenant& tenant);

}  // namespace weft::auth
