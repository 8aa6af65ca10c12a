// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/postgres_ledger_store.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <limits>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
  prompt_tokens BIGINT NOT NULL,
  cached_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL,
  status INTEGER NOT NULL,
  ttft_ms DOUBLE PRECISION NOT NULL,
  duration_ms DOUBLE PRECISION NOT NULL,
  time_unix_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_records_time ON usage_records (time_unix_ms);
CREATE INDEX IF NOT EXISTS usage_records_tenant_time ON usage_records (tenant, time_unix_ms);
)sql";

constexpr const char* kColumns =
    "request_id, tenant, key_id, deployment, adapter, replica, provider, prompt_tokens, "
    "cached_tokens, completion_tokens, status, ttft_ms, duration_ms, time_unix_ms";
constexpr int kColumnCount = 14;
constexpr size_t kRowsPerStatement = 1000;  // 14k parameters, under libpq's 65535
constexpr int kScanPage = 5000;

// Clears a PGresult on scope exit.
struct Result {
  PGresult* r = nullptr;
  explicit Result(PGresult* res) : r(res) {}
  ~Result() { PQclear(r); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
};

absl::Status PgError(PGconn* conn, std::string_view what) {
  std::string msg = absl::StrCat("usage ledger store (postgres): ", std::string(what), ": ",
                                 PQerrorMessage(conn));
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (PQstatus(conn) != CONNECTION_OK) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

bool Ok(const Result& res, ExecStatusType want) { return PQresultStatus(res.r) == want; }

absl::Status Exec(PGconn* conn, const char* sql) {
  Result res(PQexec(conn, sql));
  if (!Ok(res, PGRES_COMMAND_OK) && !Ok(res, PGRES_TUPLES_OK)) return PgError(conn, sql);
  return absl::OkStatus();
}

// Text-format parameters for one statement.
struct Params {
  std::vector<std::string> values;
  std::vector<const char*> pointers() const {
    std::vector<const char*> p;
    p.reserve(values.size());
    for (const auto& v : values) p.push_back(v.c_str());
    return p;
  }
};

std::string DoubleText(double d) { return absl::StrFormat("%.17g", d); }  // round-trips

int64_t Int(const PGresult* r, int row, int col) {
  int64_t v = 0;
  (void)absl::SimpleAtoi(PQgetvalue(r, row, col), &v);
  return v;
}
double Double(const PGresult* r, int row, int col) {
  return std::strtod(PQgetvalue(r, row, col), nullptr);
}

std::string GroupExpr(UsageGroupBy by) {
  switch (by) {
    case UsageGroupBy::kDay:
      return "to_char(to_timestamp(time_unix_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
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

absl::StatusOr<std::unique_ptr<PostgresLedgerStore>> PostgresLedgerStore::Open(
    const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    absl::Status s = PgError(conn, "connect");
    PQfinish(conn);
    return absl::UnavailableError(s.message());
  }
  std::unique_ptr<PostgresLedgerStore> store(new PostgresLedgerStore(conn));
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);  // "already exists, skipping"
  // Several gateways may start together: serialise schema creation (CREATE ... IF NOT EXISTS
  // races on the catalog otherwise) with a transaction-scoped advisory lock.
  WEFT_RETURN_IF_ERROR(Exec(conn, "BEGIN"));
  WEFT_RETURN_IF_ERROR(Exec(conn, "SELECT pg_advisory_xact_lock(7261530)"));
  absl::Status s = Exec(conn, kSchema);
  if (!s.ok()) {
    (void)Exec(conn, "ROLLBACK");
    return s;
  }
  WEFT_RETURN_IF_ERROR(Exec(conn, "COMMIT"));
  return store;
}

PostgresLedgerStore::~PostgresLedgerStore() { PQfinish(conn_); }

absl::Status PostgresLedgerStore::EnsureConnected() {
  if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) return PgError(conn_, "reconnect");
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PostgresLedgerStore::Insert(std::span<const UsageRecord> records) {
  if (records.empty()) return 0;
  std::lock_guard lock(mu_);
  WEFT_RETURN_IF_ERROR(EnsureConnected());
  WEFT_RETURN_IF_ERROR(Exec(conn_, "BEGIN"));
  int64_t added = 0;
  for (size_t start = 0; start < records.size(); start += kRowsPerStatement) {
    const auto chunk = records.subspan(start, std::min(kRowsPerStatement, records.size() - start));
    std::string sql = absl::StrCat("INSERT INTO usage_records (", kColumns, ") VALUES ");
    Params params;
    params.values.reserve(chunk.size() * kColumnCount);
    for (size_t i = 0; i < chunk.size(); ++i) {
      const UsageRecord& r = chunk[i];
      absl::StrAppend(&sql, i ? "," : "", "(");
      for (int c = 0; c < kColumnCount; ++c) {
        absl::StrAppend(&sql, c ? "," : "", "$", i * kColumnCount + c + 1);
      }
      sql += ")";
      for (const std::string* s : {&r.request_id, &r.tenant, &r.key_id, &r.deployment, &r.adapter,
                                   &r.replica, &r.provider}) {
        params.values.push_back(*s);
      }
      params.values.push_back(absl::StrCat(r.prompt_tokens));
      params.values.push_back(absl::StrCat(r.cached_tokens));
      params.values.push_back(absl::StrCat(r.completion_tokens));
      params.values.push_back(absl::StrCat(r.status));
      params.values.push_back(DoubleText(r.ttft_ms));
      params.values.push_back(DoubleText(r.duration_ms));
      params.values.push_back(absl::StrCat(r.time_unix_ms));
    }
    sql += " ON CONFLICT (request_id) DO NOTHING";
    const std::vector<const char*> values = params.pointers();
    Result res(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0));
    if (!Ok(res, PGRES_COMMAND_OK)) {
      absl::Status s = PgError(conn_, "insert");
      (void)Exec(conn_, "ROLLBACK");
      return s;
    }
    int64_t n = 0;
    (void)absl::SimpleAtoi(PQcmdTuples(res.r), &n);
    added += n;
  }
  if (absl::Status s = Exec(conn_, "COMMIT"); !s.ok()) {
    (void)Exec(conn_, "ROLLBACK");
    return s;
  }
  return added;
}

absl::StatusOr<std::vector<UsageRow>> PostgresLedgerStore::Query(const UsageQuery& query) {
  std::lock_guard lock(mu_);
  WEFT_RETURN_IF_ERROR(EnsureConnected());
  // COLLATE "C": the same bytewise order as the other stores, whatever the database locale.
  const std::string sql =
      absl::StrCat("SELECT (", GroupExpr(query.group_by),
                   ") COLLATE \"C\" AS g, COUNT(*), COALESCE(SUM(prompt_tokens), 0), "
                   "COALESCE(SUM(cached_tokens), 0), "
                   "COALESCE(SUM(completion_tokens), 0) FROM usage_records "
                   "WHERE time_unix_ms >= $1 AND time_unix_ms < $2 AND ($3 = '' OR tenant = $3) "
                   "AND ($4 = '' OR deployment = $4) GROUP BY 1 ORDER BY 1");
  Params params{{absl::StrCat(query.since_unix_ms), absl::StrCat(query.until_unix_ms), query.tenant,
                 query.deployment}};
  const std::vector<const char*> values = params.pointers();
  Result res(PQexecParams(conn_, sql.c_str(), 4, nullptr, values.data(), nullptr, nullptr, 0));
  if (!Ok(res, PGRES_TUPLES_OK)) return PgError(conn_, "query");
  std::vector<UsageRow> rows;
  for (int i = 0; i < PQntuples(res.r); ++i) {
    rows.push_back({PQgetvalue(res.r, i, 0), Int(res.r, i, 1), Int(res.r, i, 2), Int(res.r, i, 3),
                    Int(res.r, i, 4)});
  }
  return rows;
}

absl::Status PostgresLedgerStore::Scan(int64_t since_unix_ms,
                                       const std::function<void(const UsageRecord&)>& fn) {
  std::lock_guard lock(mu_);
  WEFT_RETURN_IF_ERROR(EnsureConnected());
  // Keyset pagination on (time_unix_ms, request_id): bounded memory, no long transaction.
  const std::string sql = absl::StrCat(
      "SELECT ", kColumns,
      " FROM usage_records WHERE time_unix_ms >= $1 AND (time_unix_ms, request_id) > ($2::bigint, "
      "$3::text COLLATE \"C\") ORDER BY time_unix_ms, request_id COLLATE \"C\" LIMIT ",
      kScanPage);
  int64_t last_time = std::numeric_limits<int64_t>::min();
  std::string last_id;
  while (true) {
    Params params{{absl::StrCat(since_unix_ms), absl::StrCat(last_time), last_id}};
    const std::vector<const char*> values = params.pointers();
    Result res(PQexecParams(conn_, sql.c_str(), 3, nullptr, values.data(), nullptr, nullptr, 0));
    if (!Ok(res, PGRES_TUPLES_OK)) return PgError(conn_, "scan");
    const int n = PQntuples(res.r);
    for (int i = 0; i < n; ++i) {
      UsageRecord r;
      r.request_id = PQgetvalue(res.r, i, 0);
      r.tenant = PQgetvalue(res.r, i, 1);
      r.key_id = PQgetvalue(res.r, i, 2);
      r.deployment = PQgetvalue(res.r, i, 3);
      r.adapter = PQgetvalue(res.r, i, 4);
      r.replica = PQgetvalue(res.r, i, 5);
      r.provider = PQgetvalue(res.r, i, 6);
      r.prompt_tokens = Int(res.r, i, 7);
      r.cached_tokens = Int(res.r, i, 8);
      r.completion_tokens = Int(res.r, i, 9);
      r.status = static_cast<int>(Int(res.r, i, 10));
      r.ttft_ms = Double(res.r, i, 11);
      r.duration_ms = Double(res.r, i, 12);
      r.time_unix_ms = Int(res.r, i, 13);
      last_time = r.time_unix_ms;
      last_id = r.request_id;
      fn(r);
    }
    if (n < kScanPage) return absl::OkStatus();
  }
}

}  // namespace weft::gateway
