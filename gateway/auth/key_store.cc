// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/key_store.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace weft::auth {
namespace {

bool IsIdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

absl::Status NonNegative(int64_t v, std::string_view field) {
  if (v < 0)
    return absl::InvalidArgumentError(absl::StrCat("'", std::string(field), "' must be >= 0"));
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTenantId(std::string_view id) {
  if (id.empty() || id.size() > 64) {
    return absl::InvalidArgumentError("tenant id must be 1 to 64 characters");
  }
  for (char c : id) {
    if (!IsIdChar(c)) {
      return absl::InvalidArgumentError(
          "tenant id may only hold letters, digits, '.', '_' and '-'");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDeployments(const std::vector<std::string>& deployments) {
  if (deployments.size() > 1000) return absl::InvalidArgumentError("too many deployments");
  for (const std::string& d : deployments) {
    if (d.empty() || d.size() > 256) {
      return absl::InvalidArgumentError("a deployment name must be 1 to 256 characters");
    }
    for (char c : d) {
      if (c == ',' || absl::ascii_isspace(static_cast<unsigned char>(c)) ||
          absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError(
            absl::StrCat("deployment name '", d, "' holds a comma, a space or a control byte"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTenant(const Tenant& tenant) {
  if (auto s = ValidateTenantId(tenant.id); !s.ok()) return s;
  if (tenant.name.size() > 256) return absl::InvalidArgumentError("tenant name is too long");
  if (auto s = ValidateDeployments(tenant.deployments); !s.ok()) return s;
  if (auto s = NonNegative(tenant.quotas.requests_per_min, "requests_per_min"); !s.ok()) return s;
  if (auto s = NonNegative(tenant.quotas.tokens_per_min, "tokens_per_min"); !s.ok()) return s;
  return NonNegative(tenant.quotas.tokens_per_month, "tokens_per_month");
}

absl::Status ValidateKeySpec(const KeySpec& spec) {
  if (auto s = ValidateTenantId(spec.tenant); !s.ok()) return s;
  if (spec.name.size() > 256) return absl::InvalidArgumentError("key name is too long");
  if (auto s = NonNegative(spec.expires_unix_s, "expires_at"); !s.ok()) return s;
  if (auto s = NonNegative(spec.quotas.requests_per_min, "requests_per_min"); !s.ok()) return s;
  return NonNegative(spec.quotas.tokens_per_min, "tokens_per_min");
}

absl::Status ApplyPatch(const TenantPatch& patch, Tenant& tenant) {
  if (patch.name) tenant.name = *patch.name;
  if (patch.deployments) tenant.deployments = *patch.deployments;
  if (patch.requests_per_min) tenant.quotas.requests_per_min = *patch.requests_per_min;
  if (patch.tokens_per_min) tenant.quotas.tokens_per_min = *patch.tokens_per_min;
  if (patch.tokens_per_month) tenant.quotas.tokens_per_month = *patch.tokens_per_month;
  return ValidateTenant(tenant);
}

}  // namespace weft::auth
