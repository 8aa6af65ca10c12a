// SPDX-License-Identifier: Apache-2.0
#include "gateway/admin/keys_command.h"

#include <charconv>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/openai.h"
#include "gateway/admin/admin_json.h"
#include "gateway/auth/sqlite_key_store.h"

namespace weft::admin {
namespace {

constexpr const char* kKeysUsage =
    "usage: weft keys create --tenant T [--name N] [--expires-in 30d] [--deployments a,b]\n"
    "                        [--rpm N] [--tpm N] [--data DIR]\n"
    "       weft keys list [--tenant T] [--json] [--data DIR]\n"
    "       weft keys revoke KEY_ID [--data DIR]\n"
    "The key store is DIR/keys.sqlite (default DIR: ./weft-data). `create` prints the key once;\n"
    "it creates the tenant if needed, allowed --deployments (default: all).\n";
constexpr const char* kTenantsUsage =
    "usage: weft tenants create ID [--name N] [--deployments a,b] [--rpm N] [--tpm N]\n"
    "                           [--monthly-tokens N] [--data DIR]\n"
    "       weft tenants set ID [--name N] [--deployments a,b] [--rpm N] [--tpm N]\n"
    "                           [--monthly-tokens N] [--data DIR]\n"
    "       weft tenants list [--json] [--data DIR]\n"
    "Quotas: 0 = unlimited. --deployments '*' allows every deployment.\n";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // "--flag" -> value ("" for booleans)
  bool Has(const std::string& flag) const { return values.count(flag) > 0; }
  std::string Get(const std::string& flag, const std::string& def = "") const {
    auto it = values.find(flag);
    return it == values.end() ? def : it->second;
  }
};

// Parses args[1..]: `--flag value`, `--flag=value`, boolean flags, positionals.
absl::StatusOr<Args> Parse(const std::vector<std::string>& args,
                           const std::set<std::string>& with_value,
                           const std::set<std::string>& booleans) {
  Args out;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      out.positional.push_back(a);
      continue;
    }
    std::string flag = a, value;
    bool inline_value = false;
    if (size_t eq = a.find('='); eq != std::string::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    if (booleans.count(flag) > 0 && !inline_value) {
      out.values[flag] = "";
    } else if (with_value.count(flag) > 0) {
      if (!inline_value) {
        if (i + 1 >= args.size()) return absl::InvalidArgumentError(flag + " needs a value");
        value = args[++i];
      }
      out.values[flag] = value;
    } else {
      return absl::InvalidArgumentError("unknown flag " + flag);
    }
  }
  return out;
}

absl::StatusOr<int64_t> Count(const Args& args, const std::string& flag) {
  std::string v = args.Get(flag);
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < 0) {
    return absl::InvalidArgumentError(flag + " must be an integer >= 0");
  }
  return n;
}

absl::StatusOr<std::unique_ptr<auth::SqliteKeyStore>> OpenStore(const Args& args, bool create) {
  std::filesystem::path dir = args.Get("--data", "weft-data");
  std::filesystem::path file = dir / "keys.sqlite";
  std::error_code ec;
  if (create) {
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return absl::InternalError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  } else if (!std::filesystem::exists(file, ec)) {
    return absl::NotFoundError(absl::StrCat("no key store at ", file.string(),
                                            " (create a key first, or pass --data DIR)"));
  }
  return auth::SqliteKeyStore::Open(file.string());
}

std::string Utc(int64_t unix_s) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_s), absl::UTCTimeZone());
}

std::string Limit(int64_t n) { return n == 0 ? "-" : absl::StrCat(n); }

int Fail(std::ostream& err, const absl::Status& s) {
  err << "weft: " << s.message() << "\n";
  return 1;
}
int Usage(std::ostream& err, const char* usage, const std::string& problem = "") {
  if (!problem.empty()) err << "weft: " << problem << "\n";
  err << usage;
  return 2;
}

// Applies --rpm/--tpm/--monthly-tokens/--name/--deployments to a patch.
absl::Status ReadTenantFlags(const Args& args, auth::TenantPatch& patch) {
  if (args.Has("--name")) patch.name = args.Get("--name");
  if (args.Has("--deployments")) {
    std::vector<std::string> d = SplitList(args.Get("--deployments"));
    if (d.empty())
      return absl::InvalidArgumentError("--deployments needs at least one name or '*'");
    patch.deployments = d;
  }
  if (args.Has("--rpm")) {
    absl::StatusOr<int64_t> n = Count(args, "--rpm");
    if (!n.ok()) return n.status();
    patch.requests_per_min = *n;
  }
  if (args.Has("--tpm")) {
    absl::StatusOr<int64_t> n = Count(args, "--tpm");
    if (!n.ok()) return n.status();
    patch.tokens_per_min = *n;
  }
  if (args.Has("--monthly-tokens")) {
    absl::StatusOr<int64_t> n = Count(args, "--monthly-tokens");
    if (!n.ok()) return n.status();
    patch.tokens_per_month = *n;
  }
  return absl::OkStatus();
}

int KeysCreate(const Args& args, std::ostream& out, std::ostream& err) {
  if (!args.positional.empty()) return Usage(err, kKeysUsage, "unexpected " + args.positional[0]);
  if (!args.Has("--tenant")) return Usage(err, kKeysUsage, "--tenant is required");
  auth::KeySpec spec;
  spec.tenant = args.Get("--tenant");
  spec.name = args.Get("--name");
  if (auto s = auth::ValidateTenantId(spec.tenant); !s.ok())
    return Usage(err, kKeysUsage, std::string(s.message()));
  if (args.Has("--expires-in")) {
    absl::StatusOr<int64_t> seconds = ParseDurationSeconds(args.Get("--expires-in"));
    if (!seconds.ok()) return Usage(err, kKeysUsage, std::string(seconds.status().message()));
    spec.expires_unix_s = absl::ToUnixSeconds(absl::Now()) + *seconds;
  }
  for (const char* flag : {"--rpm", "--tpm"}) {
    if (!args.Has(flag)) continue;
    absl::StatusOr<int64_t> n = Count(args, flag);
    if (!n.ok()) return Usage(err, kKeysUsage, std::string(n.status().message()));
    (std::string(flag) == "--rpm" ? spec.quotas.requests_per_min : spec.quotas.tokens_per_min) = *n;
  }
  std::optional<std::vector<std::string>> deployments;
  if (args.Has("--deployments")) {
    deployments = SplitList(args.Get("--deployments"));
    if (deployments->empty()) {
      return Usage(err, kKeysUsage, "--deployments needs at least one name or '*'");
    }
  }

  absl::StatusOr<std::unique_ptr<auth::SqliteKeyStore>> store = OpenStore(args, /*create=*/true);
  if (!store.ok()) return Fail(err, store.status());
  absl::StatusOr<auth::Tenant> tenant = (*store)->GetTenant(spec.tenant);
  if (absl::IsNotFound(tenant.status())) {
    auth::Tenant t;
    t.id = spec.tenant;
    if (deployments) t.deployments = *deployments;
    tenant = (*store)->CreateTenant(t);
    if (absl::IsAlreadyExists(tenant.status())) {
      tenant = (*store)->GetTenant(spec.tenant);  // created meanwhile by another process
    } else if (tenant.ok()) {
      err << "created tenant " << tenant->id
          << " (deployments: " << absl::StrJoin(tenant->deployments, ",") << ")\n";
    }
  } else if (tenant.ok() && deployments && *deployments != tenant->deployments) {
    return Fail(
        err, absl::FailedPreconditionError(absl::StrCat(
                 "tenant ", spec.tenant, " exists with deployments ",
                 absl::StrJoin(tenant->deployments, ","), "; change them with `weft tenants set ",
                 spec.tenant, " --deployments ...`")));
  }
  if (!tenant.ok()) return Fail(err, tenant.status());
  absl::StatusOr<auth::CreatedKey> created = (*store)->CreateKey(spec);
  if (!created.ok()) return Fail(err, created.status());
  out << created->plaintext << "\n";
  err << "created key " << created->key.key_id << " for tenant " << spec.tenant
      << (spec.expires_unix_s != 0 ? absl::StrCat(", expires ", Utc(spec.expires_unix_s)) : "")
      << "; this is the only time the key is shown: store it now\n";
  return 0;
}

int KeysList(const Args& args, std::ostream& out, std::ostream& err) {
  if (!args.positional.empty()) return Usage(err, kKeysUsage, "unexpected " + args.positional[0]);
  absl::StatusOr<std::unique_ptr<auth::SqliteKeyStore>> store = OpenStore(args, /*create=*/false);
  if (!store.ok()) return Fail(err, store.status());
  absl::StatusOr<std::vector<auth::ApiKey>> keys = (*store)->ListKeys(args.Get("--tenant"));
  if (!keys.ok()) return Fail(err, keys.status());
  if (args.Has("--json")) {
    nlohmann::ordered_json data = nlohmann::ordered_json::array();
    for (const auth::ApiKey& k : *keys) data.push_back(KeyJson(k));
    out << api::Dump({{"object", "list"}, {"data", data}}) << "\n";
    return 0;
  }
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  out << absl::StrFormat("%-16s  %-16s  %-16s  %-20s  %-20s  %-7s  %s\n", "KEY_ID", "TENANT",
                         "NAME", "CREATED", "EXPIRES", "STATUS", "RPM/TPM");
  for (const auth::ApiKey& k : *keys) {
    std::string status = k.revoked                                            ? "revoked"
                         : (k.expires_unix_s != 0 && now >= k.expires_unix_s) ? "expired"
                                                                              : "active";
    out << absl::StrFormat("%-16s  %-16s  %-16s  %-20s  %-20s  %-7s  %s/%s\n", k.key_id, k.tenant,
                           k.name.empty() ? "-" : k.name, Utc(k.created_unix_s),
                           k.expires_unix_s == 0 ? "never" : Utc(k.expires_unix_s), status,
                           Limit(k.quotas.requests_per_min), Limit(k.quotas.tokens_per_min));
  }
  return 0;
}

int KeysRevoke(const Args& args, std::ostream& out, std::ostream& err) {
  if (args.positional.size() != 1) return Usage(err, kKeysUsage, "revoke takes one KEY_ID");
  absl::StatusOr<std::unique_ptr<auth::SqliteKeyStore>> store = OpenStore(args, /*create=*/false);
  if (!store.ok()) return Fail(err, store.status());
  std::string id = args.positional[0];
  // Accept the whole key too: its id is the part after "wft_".
  if (absl::StatusOr<auth::ParsedKey> parsed = auth::ParseKey(id); parsed.ok()) {
    id = std::string(parsed->key_id);
  }
  absl::StatusOr<auth::ApiKey> key = (*store)->RevokeKey(id);
  if (!key.ok()) return Fail(err, key.status());
  out << "revoked " << key->key_id << " (tenant " << key->tenant << ")\n";
  return 0;
}

void PrintTenants(const std::vector<auth::Tenant>& tenants, std::ostream& out) {
  out << absl::StrFormat("%-16s  %-16s  %-24s  %-8s  %-10s  %s\n", "ID", "NAME", "DEPLOYMENTS",
                         "RPM", "TPM", "MONTHLY_TOKENS");
  for (const auth::Tenant& t : tenants) {
    out << absl::StrFormat("%-16s  %-16s  %-24s  %-8s  %-10s  %s\n", t.id, t.name,
                           absl::StrJoin(t.deployments, ","), Limit(t.quotas.requests_per_min),
                           Limit(t.quotas.tokens_per_min), Limit(t.quotas.tokens_per_month));
  }
}

int TenantsCreateOrSet(const Args& args, bool create, std::ostream& out, std::ostream& err) {
  if (args.positional.size() != 1) return Usage(err, kTenantsUsage, "give one tenant ID");
  auth::TenantPatch patch;
  if (auto s = ReadTenantFlags(args, patch); !s.ok()) {
    return Usage(err, kTenantsUsage, std::string(s.message()));
  }
  const std::string& id = args.positional[0];
  absl::StatusOr<std::unique_ptr<auth::SqliteKeyStore>> store = OpenStore(args, create);
  if (!store.ok()) return Fail(err, store.status());
  absl::StatusOr<auth::Tenant> tenant;
  if (create) {
    auth::Tenant t;
    t.id = id;
    if (auto s = auth::ApplyPatch(patch, t); !s.ok())
      return Usage(err, kTenantsUsage, std::string(s.message()));
    tenant = (*store)->CreateTenant(t);
  } else {
    if (!patch.name && !patch.deployments && !patch.requests_per_min && !patch.tokens_per_min &&
        !patch.tokens_per_month) {
      return Usage(err, kTenantsUsage, "nothing to set");
    }
    tenant = (*store)->UpdateTenant(id, patch);
  }
  if (!tenant.ok()) return Fail(err, tenant.status());
  PrintTenants({*tenant}, out);
  return 0;
}

int TenantsList(const Args& args, std::ostream& out, std::ostream& err) {
  if (!args.positional.empty())
    return Usage(err, kTenantsUsage, "unexpected " + args.positional[0]);
  absl::StatusOr<std::unique_ptr<auth::SqliteKeyStore>> store = OpenStore(args, /*create=*/false);
  if (!store.ok()) return Fail(err, store.status());
  absl::StatusOr<std::vector<auth::Tenant>> tenants = (*store)->ListTenants();
  if (!tenants.ok()) return Fail(err, tenants.status());
  if (args.Has("--json")) {
    nlohmann::ordered_json data = nlohmann::ordered_json::array();
    for (const auth::Tenant& t : *tenants) data.push_back(TenantJson(t));
    out << api::Dump({{"object", "list"}, {"data", data}}) << "\n";
    return 0;
  }
  PrintTenants(*tenants, out);
  return 0;
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") return true;
  }
  return args.empty() || args[0] == "help";
}

}  // namespace

int RunKeysCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (WantsHelp(args)) {
    (args.empty() ? err : out) << kKeysUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string& verb = args[0];
  if (verb == "create") {
    absl::StatusOr<Args> a = Parse(
        args, {"--tenant", "--name", "--expires-in", "--deployments", "--rpm", "--tpm", "--data"},
        {});
    return a.ok() ? KeysCreate(*a, out, err)
                  : Usage(err, kKeysUsage, std::string(a.status().message()));
  }
  if (verb == "list") {
    absl::StatusOr<Args> a = Parse(args, {"--tenant", "--data"}, {"--json"});
    return a.ok() ? KeysList(*a, out, err)
                  : Usage(err, kKeysUsage, std::string(a.status().message()));
  }
  if (verb == "revoke") {
    absl::StatusOr<Args> a = Parse(args, {"--data"}, {});
    return a.ok() ? KeysRevoke(*a, out, err)
                  : Usage(err, kKeysUsage, std::string(a.status().message()));
  }
  return Usage(err, kKeysUsage, "unknown keys command '" + verb + "'");
}

int RunTenantsCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (WantsHelp(args)) {
    (args.empty() ? err : out) << kTenantsUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string& verb = args[0];
  const std::set<std::string> tenant_flags = {"--name", "--deployments",    "--rpm",
                                              "--tpm",  "--monthly-tokens", "--data"};
  if (verb == "create" || verb == "set") {
    absl::StatusOr<Args> a = Parse(args, tenant_flags, {});
    return a.ok() ? TenantsCreateOrSet(*a, verb == "create", out, err)
                  : Usage(err, kTenantsUsage, std::string(a.status().message()));
  }
  if (verb == "list") {
    absl::StatusOr<Args> a = Parse(args, {"--data"}, {"--json"});
    return a.ok() ? TenantsList(*a, out, err)
                  : Usage(err, kTenantsUsage, std::string(a.status().message()));
  }
  return Usage(err, kTenantsUsage, "unknown tenants command '" + verb + "'");
}

}  // namespace weft::admin
