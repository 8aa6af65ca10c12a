// SPDX-License-Identifier: Apache-2.0
#include "control/store/postgres_control_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace weft::control {
namespace {

using internal::Row;

// COLLATE "C" on names: the same bytewise order as the other stores, whatever the locale.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS control_objects (
  kind INTEGER NOT NULL,
  name TEXT COLLATE "C" NOT NULL,
  parent TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (kind, name)
);
CREATE INDEX IF NOT EXISTS control_objects_parent ON control_objects (kind, parent, name);
CREATE TABLE IF NOT EXISTS control_meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  revision BIGINT NOT NULL
);
INSERT INTO control_meta (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS control_events (
  id BIGSERIAL PRIMARY KEY,
  time_ms BIGINT NOT NULL,
  object TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS control_events_object ON control_events (object, id);
)sql";

// Clears a PGresult on scope exit.
struct Result {
  PGresult* r = nullptr;
  explicit Result(PGresult* res) : r(res) {}
  ~Result() { PQclear(r); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
};

absl::Status PgError(PGconn* conn, std::string_view what) {
  std::string msg =
      absl::StrCat("control store (postgres): ", std::string(what), ": ", PQerrorMessage(conn));
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (PQstatus(conn) != CONNECTION_OK) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

bool Ok(const Result& res, ExecStatusType want) { return PQresultStatus(res.r) == want; }

absl::Status Exec(PGconn* conn, const char* sql) {
  Result res(PQexec(conn, sql));
  if (!Ok(res, PGRES_COMMAND_OK) && !Ok(res, PGRES_TUPLES_OK)) {
    return PgError(conn, std::string_view(sql).substr(0, 40));
  }
  return absl::OkStatus();
}

int64_t Int(const PGresult* r, int row, int col) {
  int64_t v = 0;
  (void)absl::SimpleAtoi(PQgetvalue(r, row, col), &v);
  return v;
}

std::string Str(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}

// Runs `sql` with text parameters.
PGresult* Query(PGconn* conn, const char* sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.c_str());
  return PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                      nullptr, 0);
}

std::string KindText(RecordKind kind) { return absl::StrCat(static_cast<int>(kind)); }

}  // namespace

class PostgresControlStore::RowTxn : public internal::RowTxn {
 public:
  explicit RowTxn(PGconn* conn) : conn_(conn) {}

  absl::StatusOr<std::optional<Row>> GetRow(RecordKind kind, const std::string& name) override {
    Result res(Query(conn_,
                     "SELECT parent, version, body FROM control_objects "
                     "WHERE kind = $1 AND name = $2",
                     {KindText(kind), name}));
    if (!Ok(res, PGRES_TUPLES_OK)) return PgError(conn_, "get");
    if (PQntuples(res.r) == 0) return std::optional<Row>();
    return std::optional<Row>(
        Row{kind, name, Str(res.r, 0, 0), Int(res.r, 0, 1), Str(res.r, 0, 2)});
  }

  absl::StatusOr<std::vector<Row>> ListRows(RecordKind kind, const std::string& parent) override {
    Result res(Query(conn_,
                     "SELECT name, parent, version, body FROM control_objects "
                     "WHERE kind = $1 AND ($2 = '' OR parent = $2) ORDER BY name",
                     {KindText(kind), parent}));
    if (!Ok(res, PGRES_TUPLES_OK)) return PgError(conn_, "list");
    std::vector<Row> out;
    for (int i = 0; i < PQntuples(res.r); ++i) {
      out.push_back(
          Row{kind, Str(res.r, i, 0), Str(res.r, i, 1), Int(res.r, i, 2), Str(res.r, i, 3)});
    }
    return out;
  }

  absl::StatusOr<int64_t> NextRevision() override {
    // The row lock taken here is held to commit: writers serialise, and since the isolation level
    // is READ COMMITTED, this transaction's later reads see every earlier writer's commit.
    Result res(PQexec(conn_,
                      "UPDATE control_meta SET revision = revision + 1 WHERE id = 1 "
                      "RETURNING revision"));
    if (!Ok(res, PGRES_TUPLES_OK) || PQntuples(res.r) != 1) {
      return PgError(conn_, "next revision");
    }
    return Int(res.r, 0, 0);
  }

  absl::Status WriteRow(const Row& row) override {
    Result res(
        Query(conn_,
              "INSERT INTO control_objects (kind, name, parent, version, body) "
              "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, name) DO UPDATE SET "
              "parent = EXCLUDED.parent, version = EXCLUDED.version, body = EXCLUDED.body",
              {KindText(row.kind), row.name, row.parent, absl::StrCat(row.version), row.body}));
    if (!Ok(res, PGRES_COMMAND_OK)) return PgError(conn_, "write");
    return absl::OkStatus();
  }

  absl::Status DeleteRow(RecordKind kind, const std::string& name) override {
    Result res(Query(conn_, "DELETE FROM control_objects WHERE kind = $1 AND name = $2",
                     {KindText(kind), name}));
    if (!Ok(res, PGRES_COMMAND_OK)) return PgError(conn_, "delete");
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> InsertEvent(const EventRecord& e) override {
    Result res(Query(conn_,
                     "INSERT INTO control_events (time_ms, object, message) VALUES ($1, $2, $3) "
                     "RETURNING id",
                     {absl::StrCat(e.time_ms), e.object, e.message}));
    if (!Ok(res, PGRES_TUPLES_OK)) return PgError(conn_, "append event");
    return Int(res.r, 0, 0);
  }

  absl::Status TrimEventsThrough(int64_t id) override {
    Result res(Query(conn_, "DELETE FROM control_events WHERE id <= $1", {absl::StrCat(id)}));
    if (!Ok(res, PGRES_COMMAND_OK)) return PgError(conn_, "trim events");
    return absl::OkStatus();
  }

 private:
  PGconn* conn_;
};

absl::StatusOr<std::unique_ptr<PostgresControlStore>> PostgresControlStore::Open(
    const std::string& conninfo, ControlStoreOptions options) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    absl::Status s = PgError(conn, "connect");
    PQfinish(conn);
    return absl::UnavailableError(s.message());
  }
  std::unique_ptr<PostgresControlStore> store(new PostgresControlStore(conn, std::move(options)));
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);  // "already exists, skipping"
  // Several instances may start together: serialise schema creation (CREATE ... IF NOT EXISTS
  // races on the catalog otherwise) with a transaction-scoped advisory lock.
  WEFT_RETURN_IF_ERROR(Exec(conn, "BEGIN"));
  WEFT_RETURN_IF_ERROR(Exec(conn, "SELECT pg_advisory_xact_lock(7261531)"));
  if (absl::Status s = Exec(conn, kSchema); !s.ok()) {
    (void)Exec(conn, "ROLLBACK");
    return s;
  }
  WEFT_RETURN_IF_ERROR(Exec(conn, "COMMIT"));
  return store;
}

PostgresControlStore::~PostgresControlStore() { PQfinish(conn_); }

absl::Status PostgresControlStore::EnsureConnected() {
  if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) return PgError(conn_, "reconnect");
  return absl::OkStatus();
}

absl::Status PostgresControlStore::Transaction(const TxnFn& fn) {
  int64_t committed = 0;
  {
    std::lock_guard lock(mu_);
    WEFT_RETURN_IF_ERROR(EnsureConnected());
    WEFT_RETURN_IF_ERROR(Exec(conn_, "BEGIN"));
    RowTxn rows(conn_);
    internal::RowControlTxn txn(&rows, &options_);
    absl::Status s = fn(txn);
    // A statement that failed inside `fn` (and was ignored there) aborted the transaction; COMMIT
    // would then quietly roll back and report success.
    if (s.ok() && PQtransactionStatus(conn_) != PQTRANS_INTRANS) {
      s = PgError(conn_, "transaction failed earlier");
      if (s.ok()) s = absl::InternalError("control store (postgres): transaction failed earlier");
    }
    if (s.ok()) s = Exec(conn_, "COMMIT");
    if (!s.ok()) {
      if (PQtransactionStatus(conn_) != PQTRANS_IDLE) (void)Exec(conn_, "ROLLBACK");
      return s;
    }
    committed = txn.revision();
  }
  if (committed > 0) waiter_.Notify(committed);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PostgresControlStore::Revision() {
  std::lock_guard lock(mu_);
  WEFT_RETURN_IF_ERROR(EnsureConnected());
  Result res(PQexec(conn_, "SELECT revision FROM control_meta WHERE id = 1"));
  if (!Ok(res, PGRES_TUPLES_OK) || PQntuples(res.r) != 1) return PgError(conn_, "revision");
  return Int(res.r, 0, 0);
}

absl::StatusOr<int64_t> PostgresControlStore::WaitForRevision(int64_t after, int64_t timeout_ms) {
  return waiter_.Wait(after, timeout_ms, options_.poll_interval_ms, [this] { return Revision(); });
}

absl::StatusOr<std::vector<EventRecord>> PostgresControlStore::ListEvents(const EventQuery& query) {
  std::lock_guard lock(mu_);
  WEFT_RETURN_IF_ERROR(EnsureConnected());
  Result res(
      Query(conn_,
            "SELECT id, time_ms, object, message FROM control_events WHERE "
            "($1 = '' OR object = $1) AND id > $2 ORDER BY id DESC LIMIT $3",
            {query.object, absl::StrCat(query.after_id), absl::StrCat(std::max(query.limit, 0))}));
  if (!Ok(res, PGRES_TUPLES_OK)) return PgError(conn_, "events");
  std::vector<EventRecord> out;
  for (int i = PQntuples(res.r) - 1; i >= 0; --i) {
    out.push_back({Int(res.r, i, 0), Int(res.r, i, 1), Str(res.r, i, 2), Str(res.r, i, 3)});
  }
  return out;
}

}  // namespace weft::control
