// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/in_memory_key_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace weft::auth {

InMemoryKeyStore::InMemoryKeyStore(std::function<absl::Time()> clock) : clock_(std::move(clock)) {}

absl::StatusOr<Principal> InMemoryKeyStore::Authenticate(std::string_view bearer) {
  if (bearer.empty()) return absl::UnauthenticatedError("missing API key");
  WEFT_ASSIGN_OR_RETURN(ParsedKey parsed, ParseKey(bearer));
  std::lock_guard lock(mu_);
  auto it = keys_.find(parsed.key_id);
  if (it == keys_.end() || !VerifySecret(it->second.salt, it->second.hash, parsed.secret)) {
    return absl::UnauthenticatedError("incorrect API key");
  }
  const ApiKey& key = it->second.key;
  if (key.revoked) return absl::UnauthenticatedError("API key revoked");
  if (key.expires_unix_s != 0 && absl::ToUnixSeconds(clock_()) >= key.expires_unix_s) {
    return absl::UnauthenticatedError("API key expired");
  }
  auto t = tenants_.find(key.tenant);
  if (t == tenants_.end()) return absl::UnauthenticatedError("incorrect API key");
  Principal p;
  p.tenant = key.tenant;
  p.key_id = key.key_id;
  p.tenant_quotas = t->second.quotas;
  p.key_quotas = key.quotas;
  p.deployments = t->second.deployments;
  return p;
}

absl::StatusOr<Tenant> InMemoryKeyStore::CreateTenant(const Tenant& tenant) {
  WEFT_RETURN_IF_ERROR(ValidateTenant(tenant));
  Tenant t = tenant;
  if (t.name.empty()) t.name = t.id;
  t.created_unix_s = absl::ToUnixSeconds(clock_());
  std::lock_guard lock(mu_);
  if (tenants_.count(t.id) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("tenant '", t.id, "' already exists"));
  }
  tenants_[t.id] = t;
  return t;
}

absl::StatusOr<Tenant> InMemoryKeyStore::GetTenant(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = tenants_.find(id);
  if (it == tenants_.end()) {
    return absl::NotFoundError(absl::StrCat("tenant '", std::string(id), "' not found"));
  }
  return it->second;
}

absl::StatusOr<std::vector<Tenant>> InMemoryKeyStore::ListTenants() {
  std::lock_guard lock(mu_);
  std::vector<Tenant> out;
  for (const auto& [id, t] : tenants_) out.push_back(t);
  return out;
}

absl::StatusOr<Tenant> InMemoryKeyStore::UpdateTenant(std::string_view id,
                                                      const TenantPatch& patch) {
  std::lock_guard lock(mu_);
  auto it = tenants_.find(id);
  if (it == tenants_.end()) {
    return absl::NotFoundError(absl::StrCat("tenant '", std::string(id), "' not found"));
  }
  Tenant t = it->second;
  WEFT_RETURN_IF_ERROR(ApplyPatch(patch, t));
  it->second = t;
  return t;
}

absl::StatusOr<CreatedKey> InMemoryKeyStore::CreateKey(const KeySpec& spec) {
  WEFT_RETURN_IF_ERROR(ValidateKeySpec(spec));
  WEFT_ASSIGN_OR_RETURN(std::string secret, NewSecret());
  WEFT_ASSIGN_OR_RETURN(Salt salt, NewSalt());
  std::lock_guard lock(mu_);
  if (tenants_.count(spec.tenant) == 0) {
    return absl::NotFoundError(absl::StrCat("tenant '", spec.tenant, "' not found"));
  }
  std::string key_id;
  do {
    WEFT_ASSIGN_OR_RETURN(key_id, NewKeyId());
  } while (keys_.count(key_id) > 0);
  StoredKey stored;
  stored.key.key_id = key_id;
  stored.key.tenant = spec.tenant;
  stored.key.name = spec.name;
  stored.key.created_unix_s = absl::ToUnixSeconds(clock_());
  stored.key.expires_unix_s = spec.expires_unix_s;
  stored.key.quotas = spec.quotas;
  stored.salt = salt;
  stored.hash = HashSecret(salt, secret);
  stored.seq = next_seq_++;
  CreatedKey created{stored.key, FormatKey(key_id, secret)};
  keys_[key_id] = std::move(stored);
  return created;
}

absl::StatusOr<std::vector<ApiKey>> InMemoryKeyStore::ListKeys(std::string_view tenant) {
  std::lock_guard lock(mu_);
  std::vector<const StoredKey*> found;
  for (const auto& [id, k] : keys_) {
    if (tenant.empty() || k.key.tenant == tenant) found.push_back(&k);
  }
  std::sort(found.begin(), found.end(),
            [](const StoredKey* a, const StoredKey* b) { return a->seq < b->seq; });
  std::vector<ApiKey> out;
  for (const StoredKey* k : found) out.push_back(k->key);
  return out;
}

absl::StatusOr<ApiKey> InMemoryKeyStore::RevokeKey(std::string_view key_id) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key_id);
  if (it == keys_.end()) {
    return absl::NotFoundError(absl::StrCat("API key '", std::string(key_id), "' not found"));
  }
  it->second.key.revoked = true;
  return it->second.key;
}

}  // namespace weft::auth
