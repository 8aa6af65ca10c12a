// SPDX-License-Identifier: Apache-2.0
// A tenant and an API key in a gateway's SQLite key store, for tests that start `weft gateway`
// as a process: what `weft keys create --tenant T --deployments ...` leaves behind, without the
// CLI. Not thread-safe against another writer of the same file.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::testing {

// Creates `tenant` (allowed on `deployments`, no quotas) and one key for it in the store at
// `keys_path` (the file and its folder are created when missing). Returns the key's plaintext,
// the bearer token a client sends.
absl::StatusOr<std::string> CreateTenantWithKey(const std::string& keys_path,
                                                const std::string& tenant,
                                                const std::vector<std::string>& deployments);

}  // namespace weft::testing
