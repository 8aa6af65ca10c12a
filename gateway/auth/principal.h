// SPDX-License-Identifier: Apache-2.0
// Principal: who an authenticated request acts for (tenant and key), with the quotas and the
// deployments that apply to it. Plain values and a pure function; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace weft::auth {

// A tenant's limits. 0 = unlimited.
struct TenantQuotas {
  int64_t requests_per_min = 0;
  int64_t tokens_per_min = 0;
  int64_t tokens_per_month = 0;  // per calendar month (UTC)

  friend bool operator==(const TenantQuotas&, const TenantQuotas&) = default;
};

// One key's own limits, on top of its tenant's. 0 = no per-key limit.
struct KeyQuotas {
  int64_t requests_per_min = 0;
  int64_t tokens_per_min = 0;

  friend bool operator==(const KeyQuotas&, const KeyQuotas&) = default;
};

struct Principal {
  std::string tenant;  // tenant id
  std::string key_id;  // the key's public id (the ledger's key_id); never the key itself
  TenantQuotas tenant_quotas;
  KeyQuotas key_quotas;
  std::vector<std::string> deployments;  // what the tenant may call; "*" = everything

  friend bool operator==(const Principal&, const Principal&) = default;
};

// Whether `principal` may call `deployment` (the request's `model`). An allowed entry matches
// itself; "*" matches everything; an allowed "dep" also covers its adapters ("dep:adapter"),
// while an allowed "dep:adapter" covers only that adapter. The gateway answers 404 when false, so
// as not to reveal that the deployment exists.
bool MayUse(const Principal& principal, std::string_view deployment);

}  // namespace weft::auth
