// SPDX-License-Identifier: Apache-2.0
#include "testing/tenant_keys.h"

#include <filesystem>
#include <system_error>

#include "base/status.h"
#include "gateway/auth/sqlite_key_store.h"

namespace weft::testing {

absl::StatusOr<std::string> CreateTenantWithKey(const std::string& keys_path,
                                                const std::string& tenant,
                                                const std::vector<std::string>& deployments) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(keys_path).parent_path(), ec);
  WEFT_ASSIGN_OR_RETURN(auto store, auth::SqliteKeyStore::Open(keys_path));
  auth::Tenant t;
  t.id = tenant;
  t.deployments = deployments;
  WEFT_RETURN_IF_ERROR(store->CreateTenant(t).status());
  WEFT_ASSIGN_OR_RETURN(auth::CreatedKey key, store->CreateKey({tenant, "test", 0, {}}));
  return key.plaintext;
}

}  // namespace weft::testing
