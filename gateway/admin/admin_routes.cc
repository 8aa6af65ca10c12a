// SPDX-License-Identifier: Apache-2.0
#include "gateway/admin/admin_routes.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/openai.h"
#include "gateway/admin/admin_json.h"
#include "gateway/auth/api_key.h"

namespace weft::admin {
namespace {

using json = nlohmann::ordered_json;

http::Response JsonResponse(const json& body) {
  http::Response r;
  r.status = 200;
  r.body = api::Dump(body);
  return r;
}

http::Response ErrorResponse(int status, std::string type, std::string code, std::string message,
                             std::string param = "") {
  api::ApiError e;
  e.status = status;
  e.type = std::move(type);
  e.code = std::move(code);
  e.message = std::move(message);
  e.param = std::move(param);
  http::Response r;
  r.status = e.status;
  r.body = api::ErrorJson(e);
  return r;
}

http::Response FromStatus(const absl::Status& s) {
  std::string message(s.message());
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return ErrorResponse(400, "invalid_request_error", "invalid_value", message,
                           api::ErrorParam(s));
    case absl::StatusCode::kNotFound:
      return ErrorResponse(404, "invalid_request_error", "not_found", message);
    case absl::StatusCode::kAlreadyExists:
      return ErrorResponse(409, "invalid_request_error", "already_exists", message);
    case absl::StatusCode::kUnavailable: {
      http::Response r = ErrorResponse(503, "server_error", "service_unavailable", message);
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    default:
      return ErrorResponse(500, "server_error", "internal_error", message);
  }
}

// "%41b+c" -> "Ab c" (query values).
std::string UrlDecode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The decoded value of `name` in a query string; "" when absent.
std::string QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (UrlDecode(pair.substr(0, eq)) == name) {
      return eq == std::string_view::npos ? "" : UrlDecode(pair.substr(eq + 1));
    }
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return "";
}

struct Admin {
  auth::KeyStore& store;
  std::string admin_key;

  // 401 unless the request carries the admin key.
  std::optional<http::Response> Refuse(const http::Request& r) const {
    if (admin_key.empty()) {
      return ErrorResponse(401, "invalid_request_error", "invalid_api_key",
                           "the admin API is disabled (no admin key is configured)");
    }
    if (!auth::ConstantTimeEquals(auth::BearerToken(r.Header("Authorization")), admin_key)) {
      return ErrorResponse(401, "invalid_request_error", "invalid_api_key",
                           "incorrect or missing admin key");
    }
    return std::nullopt;
  }

  // The store calls below are short SQLite transactions (WAL, no fsync per commit) on a rare,
  // operator-driven path, so they run on the I/O thread rather than on a worker of their own.
  http::Response CreateTenant(const http::Request& r) {
    absl::StatusOr<auth::Tenant> t = ParseTenantCreate(r.body);
    if (!t.ok()) return FromStatus(t.status());
    t = store.CreateTenant(*t);
    return t.ok() ? JsonResponse(TenantJson(*t)) : FromStatus(t.status());
  }
  http::Response ListTenants(const http::Request&) {
    absl::StatusOr<std::vector<auth::Tenant>> all = store.ListTenants();
    if (!all.ok()) return FromStatus(all.status());
    json data = json::array();
    for (const auth::Tenant& t : *all) data.push_back(TenantJson(t));
    return JsonResponse(json{{"object", "list"}, {"data", std::move(data)}});
  }
  http::Response GetTenant(const http::Request& r) {
    absl::StatusOr<auth::Tenant> t = store.GetTenant(r.params.at("id"));
    return t.ok() ? JsonResponse(TenantJson(*t)) : FromStatus(t.status());
  }
  http::Response PatchTenant(const http::Request& r) {
    absl::StatusOr<auth::TenantPatch> patch = ParseTenantPatch(r.body);
    if (!patch.ok()) return FromStatus(patch.status());
    absl::StatusOr<auth::Tenant> t = store.UpdateTenant(r.params.at("id"), *patch);
    return t.ok() ? JsonResponse(TenantJson(*t)) : FromStatus(t.status());
  }
  http::Response CreateKey(const http::Request& r) {
    absl::StatusOr<auth::KeySpec> spec = ParseKeyCreate(r.body, absl::ToUnixSeconds(absl::Now()));
    if (!spec.ok()) return FromStatus(spec.status());
    absl::StatusOr<auth::CreatedKey> created = store.CreateKey(*spec);
    if (!created.ok()) return FromStatus(created.status());
    json body = KeyJson(created->key);
    body["key"] = created->plaintext;  // the only time it is ever shown
    return JsonResponse(body);
  }
  http::Response ListKeys(const http::Request& r) {
    absl::StatusOr<std::vector<auth::ApiKey>> keys = store.ListKeys(QueryParam(r.query, "tenant"));
    if (!keys.ok()) return FromStatus(keys.status());
    json data = json::array();
    for (const auth::ApiKey& k : *keys) data.push_back(KeyJson(k));
    return JsonResponse(json{{"object", "list"}, {"data", std::move(data)}});
  }
  http::Response RevokeKey(const http::Request& r) {
    absl::StatusOr<auth::ApiKey> k = store.RevokeKey(r.params.at("id"));
    return k.ok() ? JsonResponse(KeyJson(*k)) : FromStatus(k.status());
  }
};

}  // namespace

void RegisterAdminRoutes(http::HttpServer& server, auth::KeyStore& store, std::string admin_key) {
  auto admin = std::make_shared<Admin>(Admin{store, std::move(admin_key)});
  using Method = http::Response (Admin::*)(const http::Request&);
  auto route = [&](const char* method, const char* pattern, Method handle) {
    server.Handle(method, pattern,
                  [admin, handle](const http::Request& r, std::shared_ptr<http::ResponseWriter> w) {
                    std::optional<http::Response> refused = admin->Refuse(r);
                    w->Respond(refused ? *std::move(refused) : ((*admin).*handle)(r));
                  });
  };
  route("POST", "/admin/v1/tenants", &Admin::CreateTenant);
  route("GET", "/admin/v1/tenants", &Admin::ListTenants);
  route("GET", "/admin/v1/tenants/{id}", &Admin::GetTenant);
  route("PATCH", "/admin/v1/tenants/{id}", &Admin::PatchTenant);
  route("POST", "/admin/v1/keys", &Admin::CreateKey);
  route("GET", "/admin/v1/keys", &Admin::ListKeys);
  route("DELETE", "/admin/v1/keys/{id}", &Admin::RevokeKey);
}

}  // namespace weft::admin
