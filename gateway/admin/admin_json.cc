// SPDX-License-Identifier: Apache-2.0
#include "gateway/admin/admin_json.h"

#include <charconv>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "api/json_number.h"
#include "api/openai.h"
#include "base/status.h"

namespace weft::admin {
namespace {

using json = nlohmann::ordered_json;

absl::StatusOr<json> ParseObject(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return api::InvalidParam("", "the body is not valid JSON");
  if (!j.is_object()) return api::InvalidParam("", "the body must be a JSON object");
  return j;
}

absl::Status CheckFields(const json& j, std::initializer_list<std::string_view> allowed,
                         std::string_view prefix) {
  for (const auto& [name, value] : j.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || a == name;
    if (!known) {
      std::string param = absl::StrCat(std::string(prefix), name);
      return api::InvalidParam(param, absl::StrCat("unknown field '", param, "'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetString(const json& j, const char* field) {
  const json& v = j.at(field);
  if (!v.is_string())
    return api::InvalidParam(field, absl::StrCat("'", field, "' must be a string"));
  return v.get<std::string>();
}

absl::StatusOr<int64_t> GetCount(const json& j, const char* field, std::string_view prefix) {
  const json& v = j.at(field);
  std::string param = absl::StrCat(std::string(prefix), field);
  const std::optional<int64_t> count = api::JsonInteger<int64_t>(v);
  if (!count) return api::InvalidParam(param, absl::StrCat("'", param, "' must be an integer"));
  const int64_t n = *count;
  if (n < 0) return api::InvalidParam(param, absl::StrCat("'", param, "' must be >= 0"));
  return n;
}

absl::StatusOr<std::vector<std::string>> GetDeployments(const json& j) {
  const json& v = j.at("deployments");
  if (!v.is_array()) return api::InvalidParam("deployments", "'deployments' must be an array");
  std::vector<std::string> out;
  for (const json& d : v) {
    if (!d.is_string()) {
      return api::InvalidParam("deployments", "'deployments' must hold strings");
    }
    out.push_back(d.get<std::string>());
  }
  if (auto s = auth::ValidateDeployments(out); !s.ok()) {
    return api::InvalidParam("deployments", std::string(s.message()));
  }
  return out;
}

// Reads the "quotas" object's fields into the optionals that are present.
struct QuotaFields {
  std::optional<int64_t> requests_per_min, tokens_per_min, tokens_per_month;
};
absl::StatusOr<QuotaFields> GetQuotas(const json& j, bool tenant) {
  const json& q = j.at("quotas");
  if (!q.is_object()) return api::InvalidParam("quotas", "'quotas' must be an object");
  if (tenant) {
    WEFT_RETURN_IF_ERROR(
        CheckFields(q, {"requests_per_min", "tokens_per_min", "tokens_per_month"}, "quotas."));
  } else {
    WEFT_RETURN_IF_ERROR(CheckFields(q, {"requests_per_min", "tokens_per_min"}, "quotas."));
  }
  QuotaFields f;
  if (q.contains("requests_per_min")) {
    WEFT_ASSIGN_OR_RETURN(f.requests_per_min, GetCount(q, "requests_per_min", "quotas."));
  }
  if (q.contains("tokens_per_min")) {
    WEFT_ASSIGN_OR_RETURN(f.tokens_per_min, GetCount(q, "tokens_per_min", "quotas."));
  }
  if (q.contains("tokens_per_month")) {
    WEFT_ASSIGN_OR_RETURN(f.tokens_per_month, GetCount(q, "tokens_per_month", "quotas."));
  }
  return f;
}

}  // namespace

json TenantJson(const auth::Tenant& t) {
  return json{{"object", "tenant"},
              {"id", t.id},
              {"name", t.name},
              {"deployments", t.deployments},
              {"quotas",
               {{"requests_per_min", t.quotas.requests_per_min},
                {"tokens_per_min", t.quotas.tokens_per_min},
                {"tokens_per_month", t.quotas.tokens_per_month}}},
              {"created", t.created_unix_s}};
}

json KeyJson(const auth::ApiKey& k) {
  return json{{"object", "api_key"},
              {"id", k.key_id},
              {"tenant", k.tenant},
              {"name", k.name},
              {"created", k.created_unix_s},
              {"expires_at", k.expires_unix_s == 0 ? json(nullptr) : json(k.expires_unix_s)},
              {"revoked", k.revoked},
              {"quotas",
               {{"requests_per_min", k.quotas.requests_per_min},
                {"tokens_per_min", k.quotas.tokens_per_min}}}};
}

absl::StatusOr<auth::Tenant> ParseTenantCreate(std::string_view body) {
  WEFT_ASSIGN_OR_RETURN(json j, ParseObject(body));
  WEFT_RETURN_IF_ERROR(CheckFields(j, {"id", "name", "deployments", "quotas"}, ""));
  if (!j.contains("id")) return api::InvalidParam("id", "'id' is required");
  auth::Tenant t;
  WEFT_ASSIGN_OR_RETURN(t.id, GetString(j, "id"));
  if (auto s = auth::ValidateTenantId(t.id); !s.ok())
    return api::InvalidParam("id", std::string(s.message()));
  if (j.contains("name")) {
    WEFT_ASSIGN_OR_RETURN(t.name, GetString(j, "name"));
  }
  if (j.contains("deployments")) {
    WEFT_ASSIGN_OR_RETURN(t.deployments, GetDeployments(j));
  }
  if (j.contains("quotas")) {
    WEFT_ASSIGN_OR_RETURN(QuotaFields q, GetQuotas(j, /*tenant=*/true));
    t.quotas.requests_per_min = q.requests_per_min.value_or(0);
    t.quotas.tokens_per_min = q.tokens_per_min.value_or(0);
    t.quotas.tokens_per_month = q.tokens_per_month.value_or(0);
  }
  return t;
}

absl::StatusOr<auth::TenantPatch> ParseTenantPatch(std::string_view body) {
  WEFT_ASSIGN_OR_RETURN(json j, ParseObject(body));
  WEFT_RETURN_IF_ERROR(CheckFields(j, {"name", "deployments", "quotas"}, ""));
  auth::TenantPatch patch;
  if (j.contains("name")) {
    WEFT_ASSIGN_OR_RETURN(patch.name, GetString(j, "name"));
  }
  if (j.contains("deployments")) {
    WEFT_ASSIGN_OR_RETURN(patch.deployments, GetDeployments(j));
  }
  if (j.contains("quotas")) {
    WEFT_ASSIGN_OR_RETURN(QuotaFields q, GetQuotas(j, /*tenant=*/true));
    patch.requests_per_min = q.requests_per_min;
    patch.tokens_per_min = q.tokens_per_min;
    patch.tokens_per_month = q.tokens_per_month;
  }
  return patch;
}

absl::StatusOr<auth::KeySpec> ParseKeyCreate(std::string_view body, int64_t now_unix_s) {
  WEFT_ASSIGN_OR_RETURN(json j, ParseObject(body));
  WEFT_RETURN_IF_ERROR(
      CheckFields(j, {"tenant", "name", "expires_in", "expires_at", "quotas"}, ""));
  if (!j.contains("tenant")) return api::InvalidParam("tenant", "'tenant' is required");
  auth::KeySpec spec;
  WEFT_ASSIGN_OR_RETURN(spec.tenant, GetString(j, "tenant"));
  if (auto s = auth::ValidateTenantId(spec.tenant); !s.ok()) {
    return api::InvalidParam("tenant", std::string(s.message()));
  }
  if (j.contains("name")) {
    WEFT_ASSIGN_OR_RETURN(spec.name, GetString(j, "name"));
  }
  if (j.contains("expires_in") && j.contains("expires_at")) {
    return api::InvalidParam("expires_in", "give 'expires_in' or 'expires_at', not both");
  }
  if (j.contains("expires_in")) {
    const json& v = j.at("expires_in");
    absl::StatusOr<int64_t> seconds = v.is_string() ? ParseDurationSeconds(v.get<std::string>())
                                      : v.is_number_integer() && v.get<int64_t>() > 0
                                          ? absl::StatusOr<int64_t>(v.get<int64_t>())
                                          : absl::InvalidArgumentError("must be a duration");
    if (!seconds.ok()) {
      return api::InvalidParam(
          "expires_in", "'expires_in' must be a duration such as \"30d\", \"12h\" or seconds");
    }
    spec.expires_unix_s = now_unix_s + *seconds;
  }
  if (j.contains("expires_at")) {
    WEFT_ASSIGN_OR_RETURN(spec.expires_unix_s, GetCount(j, "expires_at", ""));
    if (spec.expires_unix_s == 0)
      return api::InvalidParam("expires_at", "'expires_at' must be > 0");
  }
  if (j.contains("quotas")) {
    WEFT_ASSIGN_OR_RETURN(QuotaFields q, GetQuotas(j, /*tenant=*/false));
    spec.quotas.requests_per_min = q.requests_per_min.value_or(0);
    spec.quotas.tokens_per_min = q.tokens_per_min.value_or(0);
  }
  return spec;
}

absl::StatusOr<int64_t> ParseDurationSeconds(std::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat("bad duration '", std::string(text),
                                                   "' (a count with s, m, h, d or w, e.g. 30d)"));
  };
  if (text.empty()) return bad();
  int64_t unit = 1;
  std::string_view digits = text;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    case 'w':
      unit = 7 * 86400;
      break;
    default:
      unit = 0;
  }
  if (unit != 0) {
    digits.remove_suffix(1);
  } else {
    unit = 1;  // plain seconds
  }
  int64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || n <= 0 ||
      n > (int64_t{1} << 40) / unit) {
    return bad();
  }
  return n * unit;
}

std::vector<std::string> SplitList(std::string_view csv) {
  std::vector<std::string> out;
  while (!csv.empty()) {
    size_t comma = csv.find(',');
    std::string_view item = csv.substr(0, comma);
    while (!item.empty() && absl::ascii_isspace(static_cast<unsigned char>(item.front()))) {
      item.remove_prefix(1);
    }
    while (!item.empty() && absl::ascii_isspace(static_cast<unsigned char>(item.back()))) {
      item.remove_suffix(1);
    }
    if (!item.empty()) out.emplace_back(item);
    csv = comma == std::string_view::npos ? std::string_view() : csv.substr(comma + 1);
  }
  return out;
}

}  // namespace weft::admin
