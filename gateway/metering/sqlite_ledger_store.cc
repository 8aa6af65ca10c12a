// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/sqlite_ledger_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace weft::gateway {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS usage_records (
  request_id TEXT PRIMARY KEY NOT NULL,
  tenant TEXT NOT NULL,
  key_id TEXT NOT NULL,
  deployment TEXT NOT NULL,
  adapter TEXT NOT NULL,
  replica TEXT NOT NULL,
  provider TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  cached_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  status INTEGER NOT NULL,
  ttft_ms REAL NOT NULL,
  duration_ms REAL NOT NULL,
  time_unix_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_records_time ON usage_records (time_unix_ms);
CREATE INDEX IF NOT EXISTS usage_records_tenant_time ON usage_records (tenant, time_unix_ms);
CREATE TABLE IF NOT EXISTS ledger_syncs (id INTEGER PRIMARY KEY, syncs INTEGER NOT NULL);
)sql";

constexpr const char* kColumns =
    "request_id, tenant, key_id, deployment, adapter, replica, provider, prompt_tokens, "
    "cached_tokens, completion_tokens, status, ttft_ms, duration_ms, time_unix_ms";

// Finalizes a statement on scope exit.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

std::string Text(sqlite3_stmt* s, int col) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, col))) : std::string();
}

void BindText(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}

std::string GroupExpr(UsageGroupBy by) {
  switch (by) {
    case UsageGroupBy::kDay:
      return "strftime('%Y-%m-%d', time_unix_ms / 1000, 'unixepoch')";
    case UsageGroupBy::kDeployment:
      return "deployment";
    case UsageGroupBy::kKey:
      return "key_id";
    case UsageGroupBy::kTenant:
      return "tenant";
  }
  return "''";
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteLedgerStore>> SqliteLedgerStore::Open(
    SqliteLedgerStoreOptions options) {
  sqlite3* db = nullptr;
  // NOMUTEX: every use of the connection is under mu_, so SQLite's own per-call locking (some 30
  // lock/unlock pairs per inserted record) would only repeat it.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                    (options.create_if_missing ? SQLITE_OPEN_CREATE : 0);
  const int rc = sqlite3_open_v2(options.path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    const std::string what = absl::StrCat("open usage ledger store ", options.path, ": ", msg);
    return rc == SQLITE_CANTOPEN && !options.create_if_missing ? absl::NotFoundError(what)
                                                               : absl::UnavailableError(what);
  }
  std::unique_ptr<SqliteLedgerStore> store(new SqliteLedgerStore(db));
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  WEFT_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  WEFT_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=NORMAL"));
  WEFT_RETURN_IF_ERROR(store->Exec(kSchema));
  return store;
}

SqliteLedgerStore::~SqliteLedgerStore() { sqlite3_close(db_); }

absl::Status SqliteLedgerStore::Error(std::string_view what) const {
  const int code = sqlite3_errcode(db_);
  std::string msg =
      absl::StrCat("usage ledger store (sqlite): ", std::string(what), ": ", sqlite3_errmsg(db_));
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

absl::Status SqliteLedgerStore::Exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Error(std::string_view(sql).substr(0, 40));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteLedgerStore::Insert(std::span<const UsageRecord> records) {
  if (records.empty()) return 0;
  std::lock_guard lock(mu_);
  Stmt st;
  const std::string sql = absl::StrCat("INSERT INTO usage_records (", kColumns,
                                       ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                                       "ON CONFLICT (request_id) DO NOTHING");
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) {
    return Error("prepare insert");
  }
  WEFT_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  int64_t added = 0;
  for (const UsageRecord& r : records) {
    sqlite3_reset(st.s);
    BindText(st.s, 1, r.request_id);
    BindText(st.s, 2, r.tenant);
    BindText(st.s, 3, r.key_id);
    BindText(st.s, 4, r.deployment);
    BindText(st.s, 5, r.adapter);
    BindText(st.s, 6, r.replica);
    BindText(st.s, 7, r.provider);
    sqlite3_bind_int64(st.s, 8, r.prompt_tokens);
    sqlite3_bind_int64(st.s, 9, r.cached_tokens);
    sqlite3_bind_int64(st.s, 10, r.completion_tokens);
    sqlite3_bind_int(st.s, 11, r.status);
    sqlite3_bind_double(st.s, 12, r.ttft_ms);
    sqlite3_bind_double(st.s, 13, r.duration_ms);
    sqlite3_bind_int64(st.s, 14, r.time_unix_ms);
    if (sqlite3_step(st.s) != SQLITE_DONE) {
      absl::Status s = Error("insert");
      (void)Exec("ROLLBACK");
      return s;
    }
    added += sqlite3_changes(db_);
  }
  if (absl::Status s = Exec("COMMIT"); !s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  unsynced_ = true;
  return added;
}

absl::Status SqliteLedgerStore::Sync() {
  std::lock_guard lock(mu_);
  if (!unsynced_) return absl::OkStatus();
  // A commit with synchronous=FULL fsyncs SQLite's WAL file after appending to it: every frame
  // before it (the NORMAL commits since the last sync) is on the device with it. An empty
  // transaction would write nothing, hence the counter row.
  WEFT_RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
  absl::Status s = Exec(
      "INSERT INTO ledger_syncs (id, syncs) VALUES (1, 1) "
      "ON CONFLICT (id) DO UPDATE SET syncs = syncs + 1");
  if (absl::Status back = Exec("PRAGMA synchronous=NORMAL"); s.ok()) s = back;
  if (s.ok()) unsynced_ = false;
  return s;
}

// The filters a query does not use are left out of the SQL rather than written as
// "(?3 = '' OR tenant = ?3)": SQLite plans before it sees the values, and with the OR it could
// not use the (tenant, time) index even for one tenant's usage.
std::string QuerySql(const UsageQuery& query) {
  return absl::StrCat(
      "SELECT ", GroupExpr(query.group_by),
      " AS g, COUNT(*), SUM(prompt_tokens), SUM(cached_tokens), SUM(completion_tokens) "
      "FROM usage_records WHERE time_unix_ms >= ?1 AND time_unix_ms < ?2",
      query.tenant.empty() ? "" : " AND tenant = ?3",
      query.deployment.empty() ? "" : " AND deployment = ?4", " GROUP BY g ORDER BY g");
}

absl::StatusOr<std::vector<UsageRow>> SqliteLedgerStore::Query(const UsageQuery& query) {
  std::lock_guard lock(mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_, QuerySql(query).c_str(), -1, &st.s, nullptr) != SQLITE_OK) {
    return Error("prepare query");
  }
  sqlite3_bind_int64(st.s, 1, query.since_unix_ms);
  sqlite3_bind_int64(st.s, 2, query.until_unix_ms);
  if (!query.tenant.empty()) BindText(st.s, 3, query.tenant);
  if (!query.deployment.empty()) BindText(st.s, 4, query.deployment);
  std::vector<UsageRow> rows;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    rows.push_back({Text(st.s, 0), sqlite3_column_int64(st.s, 1), sqlite3_column_int64(st.s, 2),
                    sqlite3_column_int64(st.s, 3), sqlite3_column_int64(st.s, 4)});
  }
  if (rc != SQLITE_DONE) return Error("query");
  return rows;
}

absl::StatusOr<std::string> SqliteLedgerStore::ExplainQuery(const UsageQuery& query) {
  std::lock_guard lock(mu_);
  Stmt st;
  const std::string sql = absl::StrCat("EXPLAIN QUERY PLAN ", QuerySql(query));
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) {
    return Error("prepare explain");
  }
  std::string plan;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) absl::StrAppend(&plan, Text(st.s, 3), "\n");
  if (rc != SQLITE_DONE) return Error("explain");
  return plan;
}

absl::Status SqliteLedgerStore::Scan(int64_t since_unix_ms,
                                     const std::function<void(const UsageRecord&)>& fn) {
  std::lock_guard lock(mu_);
  const std::string sql = absl::StrCat(
      "SELECT ", kColumns,
      " FROM usage_records WHERE time_unix_ms >= ?1 ORDER BY time_unix_ms, request_id");
  Stmt st;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK) {
    return Error("prepare scan");
  }
  sqlite3_bind_int64(st.s, 1, since_unix_ms);
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    UsageRecord r;
    r.request_id = Text(st.s, 0);
    r.tenant = Text(st.s, 1);
    r.key_id = Text(st.s, 2);
    r.deployment = Text(st.s, 3);
    r.adapter = Text(st.s, 4);
    r.replica = Text(st.s, 5);
    r.provider = Text(st.s, 6);
    r.prompt_tokens = sqlite3_column_int64(st.s, 7);
    r.cached_tokens = sqlite3_column_int64(st.s, 8);
    r.completion_tokens = sqlite3_column_int64(st.s, 9);
    r.status = sqlite3_column_int(st.s, 10);
    r.ttft_ms = sqlite3_column_double(st.s, 11);
    r.duration_ms = sqlite3_column_double(st.s, 12);
    r.time_unix_ms = sqlite3_column_int64(st.s, 13);
    fn(r);
  }
  if (rc != SQLITE_DONE) return Error("scan");
  return absl::OkStatus();
}

}  // namespace weft::gateway
