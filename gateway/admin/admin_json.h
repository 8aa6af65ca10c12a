// SPDX-License-Identifier: Apache-2.0
// JSON shapes of the admin API (tenants and keys) and the small parsers shared by the admin routes
// and the `weft keys` / `weft tenants` verbs. Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/auth/key_store.h"
#include "nlohmann/json.hpp"

namespace weft::admin {

// {"object": "tenant", "id", "name", "deployments": [...], "quotas": {"requests_per_min",
//  "tokens_per_min", "tokens_per_month"}, "created": unix s}
nlohmann::ordered_json TenantJson(const auth::Tenant& tenant);
// {"object": "api_key", "id", "tenant", "name", "created", "expires_at": unix s | null,
//  "revoked", "quotas": {"requests_per_min", "tokens_per_min"}}: never the key or its hash.
nlohmann::ordered_json KeyJson(const auth::ApiKey& key);

// Request bodies. Unknown fields and wrong types are InvalidArgument naming the field (read back
// with api::ErrorParam). `now_unix_s` resolves "expires_in".
absl::StatusOr<auth::Tenant> ParseTenantCreate(std::string_view body);
absl::StatusOr<auth::TenantPatch> ParseTenantPatch(std::string_view body);
absl::StatusOr<auth::KeySpec> ParseKeyCreate(std::string_view body, int64_t now_unix_s);

// "30d", "12h", "90m", "45s", "2w" or plain seconds ("3600") -> seconds (> 0).
absl::StatusOr<int64_t> ParseDurationSeconds(std::string_view text);
// "a,b, c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> SplitList(std::string_view csv);

}  // namespace weft::admin
