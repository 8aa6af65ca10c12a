// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/sqlite_key_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"

namespace weft::auth {
namespace {

absl::Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string message = absl::StrCat("sqlite: ", std::string(what), ": ",
                                     db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

// One prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  absl::Status prepared() const {
    return rc_ == SQLITE_OK ? absl::OkStatus() : SqliteError(db_, rc_, "prepare");
  }
  void Bind(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindBlob(int i, const uint8_t* data, size_t n) {
    sqlite3_bind_blob(stmt_, i, data, static_cast<int>(n), SQLITE_TRANSIENT);
  }
  // SQLITE_ROW, SQLITE_DONE, or an error code.
  int Step() { return sqlite3_step(stmt_); }
  // Steps a statement that returns no rows.
  absl::Status Run(std::string_view what) {
    WEFT_RETURN_IF_ERROR(prepared());
    int rc = Step();
    return rc == SQLITE_DONE ? absl::OkStatus() : SqliteError(db_, rc, what);
  }

  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  template <size_t N>
  bool Blob(int col, std::array<uint8_t, N>& out) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    if (p == nullptr || sqlite3_column_bytes(stmt_, col) != static_cast<int>(N)) return false;
    std::memcpy(out.data(), p, N);
    return true;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

absl::Status Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string message = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  std::string what = absl::StrCat(std::string(std::string_view(sql).substr(0, 40)), ": ", message);
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return absl::UnavailableError(absl::StrCat("sqlite: ", what));
  }
  return absl::InternalError(absl::StrCat("sqlite: ", what));
}

// BEGIN IMMEDIATE (takes the write lock up front, so no deadlock between readers upgrading);
// rolled back on scope exit unless committed.
class WriteTransaction {
 public:
  explicit WriteTransaction(sqlite3* db) : db_(db) { status_ = Exec(db, "BEGIN IMMEDIATE"); }
  ~WriteTransaction() {
    if (status_.ok() && !done_) Exec(db_, "ROLLBACK").IgnoreError();
  }
  const absl::Status& status() const { return status_; }
  absl::Status Commit() {
    done_ = true;
    return Exec(db_, "COMMIT");
  }

 private:
  sqlite3* db_;
  absl::Status status_;
  bool done_ = false;
};

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS weft_auth_meta(
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL);
INSERT OR IGNORE INTO weft_auth_meta(name, value) VALUES('generation', 0);
INSERT OR IGNORE INTO weft_auth_meta(name, value) VALUES('schema_version', 1);
CREATE TABLE IF NOT EXISTS tenants(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  deployments TEXT NOT NULL,           -- comma-separated (names hold no commas); '*' = all
  requests_per_min INTEGER NOT NULL,   -- 0 = unlimited
  tokens_per_min INTEGER NOT NULL,
  tokens_per_month INTEGER NOT NULL,
  created_unix_s INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys(
  key_id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  created_unix_s INTEGER NOT NULL,
  expires_unix_s INTEGER NOT NULL,     -- 0 = never
  revoked INTEGER NOT NULL,
  requests_per_min INTEGER NOT NULL,   -- 0 = no per-key limit
  tokens_per_min INTEGER NOT NULL,
  salt BLOB NOT NULL,                  -- 16 random bytes
  hash BLOB NOT NULL);                 -- SHA-256(salt || secret); the key itself is never stored
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys(tenant, created_unix_s);
)sql";

std::string JoinDeployments(const std::vector<std::string>& d) { return absl::StrJoin(d, ","); }
std::vector<std::string> SplitDeployments(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view part = s.substr(0, comma);
    if (!part.empty()) out.emplace_back(part);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
  }
  return out;
}

constexpr const char* kTenantColumns =
    "id, name, deployments, requests_per_min, tokens_per_min, tokens_per_month, created_unix_s";
Tenant ReadTenant(const Stmt& s) {
  Tenant t;
  t.id = s.Text(0);
  t.name = s.Text(1);
  t.deployments = SplitDeployments(s.Text(2));
  t.quotas.requests_per_min = s.Int(3);
  t.quotas.tokens_per_min = s.Int(4);
  t.quotas.tokens_per_month = s.Int(5);
  t.created_unix_s = s.Int(6);
  return t;
}

constexpr const char* kKeyColumns =
    "key_id, tenant, name, created_unix_s, expires_unix_s, revoked, requests_per_min, "
    "tokens_per_min";
ApiKey ReadKey(const Stmt& s) {
  ApiKey k;
  k.key_id = s.Text(0);
  k.tenant = s.Text(1);
  k.name = s.Text(2);
  k.created_unix_s = s.Int(3);
  k.expires_unix_s = s.Int(4);
  k.revoked = s.Int(5) != 0;
  k.quotas.requests_per_min = s.Int(6);
  k.quotas.tokens_per_min = s.Int(7);
  return k;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteKeyStore>> SqliteKeyStore::Open(
    const std::string& path, SqliteKeyStoreOptions options) {
  bool existed = ::access(path.c_str(), F_OK) == 0;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, rc, absl::StrCat("open ", path));
    sqlite3_close(db);
    return s;
  }
  // Hashes only, but still nobody else's business. Best effort.
  if (!existed) ::chmod(path.c_str(), 0600);
  std::unique_ptr<SqliteKeyStore> store(new SqliteKeyStore(db, std::move(options)));
  sqlite3_busy_timeout(db,
                       static_cast<int>(absl::ToInt64Milliseconds(store->options_.busy_timeout)));
  std::lock_guard lock(store->db_mu_);
  WEFT_RETURN_IF_ERROR(Exec(db, "PRAGMA journal_mode=WAL"));
  // WAL + NORMAL: a commit is durable once the WAL is synced at checkpoints; a power cut may lose
  // the last commits but never corrupts the file. Keys are rare writes; that is acceptable.
  WEFT_RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous=NORMAL"));
  WEFT_RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys=ON"));
  {
    WriteTransaction tx(db);
    WEFT_RETURN_IF_ERROR(tx.status());
    WEFT_RETURN_IF_ERROR(Exec(db, kSchema));
    WEFT_RETURN_IF_ERROR(tx.Commit());
  }
  Stmt gen(db, "SELECT value FROM weft_auth_meta WHERE name = 'generation'");
  WEFT_RETURN_IF_ERROR(gen.prepared());
  if (gen.Step() == SQLITE_ROW) store->seen_generation_ = gen.Int(0);
  return store;
}

SqliteKeyStore::SqliteKeyStore(sqlite3* db, SqliteKeyStoreOptions options)
    : options_(std::move(options)), db_(db) {}

SqliteKeyStore::~SqliteKeyStore() { sqlite3_close(db_); }

size_t SqliteKeyStore::cached_keys() const {
  std::shared_lock lock(cache_mu_);
  return cache_.size();
}

absl::StatusOr<Principal> SqliteKeyStore::Check(const CachedKey& key, std::string_view secret,
                                                absl::Time now) const {
  // The secret is checked first: only the key's holder learns that it is revoked or expired.
  if (!VerifySecret(key.salt, key.hash, secret)) {
    return absl::UnauthenticatedError("incorrect API key");
  }
  if (key.revoked) return absl::UnauthenticatedError("API key revoked");
  if (key.expires_unix_s != 0 && absl::ToUnixSeconds(now) >= key.expires_unix_s) {
    return absl::UnauthenticatedError("API key expired");
  }
  return key.principal;
}

absl::StatusOr<Principal> SqliteKeyStore::Authenticate(std::string_view bearer) {
  if (bearer.empty()) return absl::UnauthenticatedError("missing API key");
  WEFT_ASSIGN_OR_RETURN(ParsedKey parsed, ParseKey(bearer));
  absl::Time now = options_.clock();
  MaybeRefresh(now);
  uint64_t epoch = 0;
  {
    std::shared_lock lock(cache_mu_);
    auto it = cache_.find(parsed.key_id);
    if (it != cache_.end()) return Check(it->second, parsed.secret, now);
    epoch = cache_epoch_;
  }
  absl::StatusOr<CachedKey> loaded = LoadKey(parsed.key_id);
  if (absl::IsNotFound(loaded.status())) return absl::UnauthenticatedError("incorrect API key");
  if (!loaded.ok()) return loaded.status();
  absl::StatusOr<Principal> result = Check(*loaded, parsed.secret, now);
  {
    std::unique_lock lock(cache_mu_);
    // An invalidation since our read means the row may already be stale: do not cache it.
    if (epoch == cache_epoch_) {
      if (cache_.size() >= options_.max_cached_keys) cache_.clear();
      cache_.try_emplace(std::string(parsed.key_id), *std::move(loaded));
    }
  }
  return result;
}

absl::StatusOr<SqliteKeyStore::CachedKey> SqliteKeyStore::LoadKey(std::string_view key_id) {
  key_reads_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(db_mu_);
  Stmt s(db_,
         "SELECT k.revoked, k.expires_unix_s, k.requests_per_min, k.tokens_per_min, k.salt, "
         "k.hash, t.deployments, t.requests_per_min, t.tokens_per_min, t.tokens_per_month, "
         "k.tenant FROM api_keys k JOIN tenants t ON t.id = k.tenant WHERE k.key_id = ?");
  WEFT_RETURN_IF_ERROR(s.prepared());
  s.Bind(1, key_id);
  int rc = s.Step();
  if (rc == SQLITE_DONE) return absl::NotFoundError("no such key");
  if (rc != SQLITE_ROW) return SqliteError(db_, rc, "read key");
  CachedKey k;
  k.revoked = s.Int(0) != 0;
  k.expires_unix_s = s.Int(1);
  k.principal.key_quotas.requests_per_min = s.Int(2);
  k.principal.key_quotas.tokens_per_min = s.Int(3);
  if (!s.Blob(4, k.salt) || !s.Blob(5, k.hash)) {
    return absl::InternalError("sqlite: key row with a bad salt or hash");
  }
  k.principal.deployments = SplitDeployments(s.Text(6));
  k.principal.tenant_quotas.requests_per_min = s.Int(7);
  k.principal.tenant_quotas.tokens_per_min = s.Int(8);
  k.principal.tenant_quotas.tokens_per_month = s.Int(9);
  k.principal.tenant = s.Text(10);
  k.principal.key_id = std::string(key_id);
  return k;
}

void SqliteKeyStore::MaybeRefresh(absl::Time now) {
  int64_t now_ns = absl::ToUnixNanos(now);
  int64_t next = next_refresh_unix_ns_.load(std::memory_order_relaxed);
  if (now_ns < next) return;
  // One thread per interval does the read; the others go on with the cache.
  if (!next_refresh_unix_ns_.compare_exchange_strong(
          next, now_ns + absl::ToInt64Nanoseconds(options_.refresh_interval))) {
    return;
  }
  bool changed = false;
  {
    std::lock_guard lock(db_mu_);
    Stmt s(db_, "SELECT value FROM weft_auth_meta WHERE name = 'generation'");
    if (s.prepared().ok() && s.Step() == SQLITE_ROW) {
      int64_t generation = s.Int(0);
      changed = generation != seen_generation_;
      seen_generation_ = generation;
    }
    // A failed read keeps the cache; the next interval tries again.
  }
  if (changed) InvalidateCache();
}

void SqliteKeyStore::InvalidateCache() {
  std::unique_lock lock(cache_mu_);
  cache_.clear();
  ++cache_epoch_;
}

absl::Status SqliteKeyStore::BumpGenerationLocked() {
  Stmt s(db_, "UPDATE weft_auth_meta SET value = value + 1 WHERE name = 'generation'");
  return s.Run("bump generation");
}

absl::StatusOr<Tenant> SqliteKeyStore::CreateTenant(const Tenant& tenant) {
  WEFT_RETURN_IF_ERROR(ValidateTenant(tenant));
  Tenant t = tenant;
  if (t.name.empty()) t.name = t.id;
  t.created_unix_s = absl::ToUnixSeconds(options_.clock());
  std::lock_guard lock(db_mu_);
  WriteTransaction tx(db_);
  WEFT_RETURN_IF_ERROR(tx.status());
  {
    Stmt exists(db_, "SELECT 1 FROM tenants WHERE id = ?");
    WEFT_RETURN_IF_ERROR(exists.prepared());
    exists.Bind(1, t.id);
    if (exists.Step() == SQLITE_ROW) {
      return absl::AlreadyExistsError(absl::StrCat("tenant '", t.id, "' already exists"));
    }
  }
  Stmt s(db_,
         "INSERT INTO tenants(id, name, deployments, requests_per_min, tokens_per_min, "
         "tokens_per_month, created_unix_s) VALUES(?, ?, ?, ?, ?, ?, ?)");
  s.Bind(1, t.id);
  s.Bind(2, t.name);
  s.Bind(3, JoinDeployments(t.deployments));
  s.Bind(4, t.quotas.requests_per_min);
  s.Bind(5, t.quotas.tokens_per_min);
  s.Bind(6, t.quotas.tokens_per_month);
  s.Bind(7, t.created_unix_s);
  WEFT_RETURN_IF_ERROR(s.Run("insert tenant"));
  WEFT_RETURN_IF_ERROR(tx.Commit());
  return t;
}

absl::StatusOr<Tenant> SqliteKeyStore::GetTenantLocked(std::string_view id) {
  Stmt s(db_, absl::StrCat("SELECT ", kTenantColumns, " FROM tenants WHERE id = ?").c_str());
  WEFT_RETURN_IF_ERROR(s.prepared());
  s.Bind(1, id);
  int rc = s.Step();
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(absl::StrCat("tenant '", std::string(id), "' not found"));
  }
  if (rc != SQLITE_ROW) return SqliteError(db_, rc, "read tenant");
  return ReadTenant(s);
}

absl::StatusOr<Tenant> SqliteKeyStore::GetTenant(std::string_view id) {
  std::lock_guard lock(db_mu_);
  return GetTenantLocked(id);
}

absl::StatusOr<std::vector<Tenant>> SqliteKeyStore::ListTenants() {
  std::lock_guard lock(db_mu_);
  Stmt s(db_, absl::StrCat("SELECT ", kTenantColumns, " FROM tenants ORDER BY id").c_str());
  WEFT_RETURN_IF_ERROR(s.prepared());
  std::vector<Tenant> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadTenant(s));
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "list tenants");
  return out;
}

absl::StatusOr<Tenant> SqliteKeyStore::UpdateTenant(std::string_view id, const TenantPatch& patch) {
  Tenant t;
  {
    std::lock_guard lock(db_mu_);
    WriteTransaction tx(db_);
    WEFT_RETURN_IF_ERROR(tx.status());
    WEFT_ASSIGN_OR_RETURN(t, GetTenantLocked(id));
    WEFT_RETURN_IF_ERROR(ApplyPatch(patch, t));
    Stmt s(db_,
           "UPDATE tenants SET name = ?, deployments = ?, requests_per_min = ?, "
           "tokens_per_min = ?, tokens_per_month = ? WHERE id = ?");
    s.Bind(1, t.name);
    s.Bind(2, JoinDeployments(t.deployments));
    s.Bind(3, t.quotas.requests_per_min);
    s.Bind(4, t.quotas.tokens_per_min);
    s.Bind(5, t.quotas.tokens_per_month);
    s.Bind(6, id);
    WEFT_RETURN_IF_ERROR(s.Run("update tenant"));
    WEFT_RETURN_IF_ERROR(BumpGenerationLocked());
    WEFT_RETURN_IF_ERROR(tx.Commit());
  }
  // Cached principals carry the tenant's quotas and deployments.
  InvalidateCache();
  return t;
}

absl::StatusOr<CreatedKey> SqliteKeyStore::CreateKey(const KeySpec& spec) {
  WEFT_RETURN_IF_ERROR(ValidateKeySpec(spec));
  WEFT_ASSIGN_OR_RETURN(std::string secret, NewSecret());
  WEFT_ASSIGN_OR_RETURN(Salt salt, NewSalt());
  SecretHash hash = HashSecret(salt, secret);
  ApiKey key;
  key.tenant = spec.tenant;
  key.name = spec.name;
  key.created_unix_s = absl::ToUnixSeconds(options_.clock());
  key.expires_unix_s = spec.expires_unix_s;
  key.quotas = spec.quotas;

  std::lock_guard lock(db_mu_);
  WriteTransaction tx(db_);
  WEFT_RETURN_IF_ERROR(tx.status());
  WEFT_RETURN_IF_ERROR(GetTenantLocked(spec.tenant).status());
  for (int attempt = 0;; ++attempt) {
    WEFT_ASSIGN_OR_RETURN(key.key_id, NewKeyId());
    Stmt s(db_,
           "INSERT OR IGNORE INTO api_keys(key_id, tenant, name, created_unix_s, expires_unix_s, "
           "revoked, requests_per_min, tokens_per_min, salt, hash) "
           "VALUES(?, ?, ?, ?, ?, 0, ?, ?, ?, ?)");
    s.Bind(1, key.key_id);
    s.Bind(2, key.tenant);
    s.Bind(3, key.name);
    s.Bind(4, key.created_unix_s);
    s.Bind(5, key.expires_unix_s);
    s.Bind(6, key.quotas.requests_per_min);
    s.Bind(7, key.quotas.tokens_per_min);
    s.BindBlob(8, salt.data(), salt.size());
    s.BindBlob(9, hash.data(), hash.size());
    WEFT_RETURN_IF_ERROR(s.Run("insert key"));
    if (sqlite3_changes(db_) == 1) break;
    // 64 random bits collided with an existing id: draw again.
    if (attempt == 8) return absl::InternalError("could not draw a fresh key id");
  }
  WEFT_RETURN_IF_ERROR(tx.Commit());
  return CreatedKey{key, FormatKey(key.key_id, secret)};
}

absl::StatusOr<std::vector<ApiKey>> SqliteKeyStore::ListKeys(std::string_view tenant) {
  std::lock_guard lock(db_mu_);
  std::string sql =
      absl::StrCat("SELECT ", kKeyColumns, " FROM api_keys",
                   tenant.empty() ? "" : " WHERE tenant = ?", " ORDER BY created_unix_s, rowid");
  Stmt s(db_, sql.c_str());
  WEFT_RETURN_IF_ERROR(s.prepared());
  if (!tenant.empty()) s.Bind(1, tenant);
  std::vector<ApiKey> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadKey(s));
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "list keys");
  return out;
}

absl::StatusOr<ApiKey> SqliteKeyStore::GetKeyLocked(std::string_view key_id) {
  Stmt s(db_, absl::StrCat("SELECT ", kKeyColumns, " FROM api_keys WHERE key_id = ?").c_str());
  WEFT_RETURN_IF_ERROR(s.prepared());
  s.Bind(1, key_id);
  int rc = s.Step();
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(absl::StrCat("API key '", std::string(key_id), "' not found"));
  }
  if (rc != SQLITE_ROW) return SqliteError(db_, rc, "read key");
  return ReadKey(s);
}

absl::StatusOr<ApiKey> SqliteKeyStore::RevokeKey(std::string_view key_id) {
  ApiKey key;
  {
    std::lock_guard lock(db_mu_);
    WriteTransaction tx(db_);
    WEFT_RETURN_IF_ERROR(tx.status());
    WEFT_ASSIGN_OR_RETURN(key, GetKeyLocked(key_id));
    if (!key.revoked) {
      Stmt s(db_, "UPDATE api_keys SET revoked = 1 WHERE key_id = ?");
      s.Bind(1, key_id);
      WEFT_RETURN_IF_ERROR(s.Run("revoke key"));
      WEFT_RETURN_IF_ERROR(BumpGenerationLocked());
      key.revoked = true;
    }
    WEFT_RETURN_IF_ERROR(tx.Commit());
  }
  InvalidateCache();
  return key;
}

}  // namespace weft::auth
