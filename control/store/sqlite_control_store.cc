// SPDX-License-Identifier: Apache-2.0
#include "control/store/sqlite_control_store.h"

#include <sqlite3.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace weft::control {
namespace {

using internal::Row;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS control_objects (
  kind INTEGER NOT NULL,
  name TEXT NOT NULL,
  parent TEXT NOT NULL,
  version INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (kind, name)
);
CREATE INDEX IF NOT EXISTS control_objects_parent ON control_objects (kind, parent, name);
CREATE TABLE IF NOT EXISTS control_meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  revision INTEGER NOT NULL
);
INSERT OR IGNORE INTO control_meta (id, revision) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS control_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ms INTEGER NOT NULL,
  object TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS control_events_object ON control_events (object, id);
)sql";

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

}  // namespace

class SqliteControlStore::RowTxn : public internal::RowTxn {
 public:
  explicit RowTxn(SqliteControlStore* store) : st_(store), db_(store->db_) {}

  absl::StatusOr<std::optional<Row>> GetRow(RecordKind kind, const std::string& name) override {
    Stmt q;
    WEFT_RETURN_IF_ERROR(Prepare(
        "SELECT parent, version, body FROM control_objects WHERE kind = ?1 AND name = ?2", &q));
    sqlite3_bind_int(q.s, 1, static_cast<int>(kind));
    BindText(q.s, 2, name);
    const int rc = sqlite3_step(q.s);
    if (rc == SQLITE_DONE) return std::optional<Row>();
    if (rc != SQLITE_ROW) return st_->Error("get");
    return std::optional<Row>(
        Row{kind, name, Text(q.s, 0), sqlite3_column_int64(q.s, 1), Text(q.s, 2)});
  }

  absl::StatusOr<std::vector<Row>> ListRows(RecordKind kind, const std::string& parent) override {
    Stmt q;
    WEFT_RETURN_IF_ERROR(
        Prepare("SELECT name, parent, version, body FROM control_objects WHERE kind = ?1 AND "
                "(?2 = '' OR parent = ?2) ORDER BY name",
                &q));
    sqlite3_bind_int(q.s, 1, static_cast<int>(kind));
    BindText(q.s, 2, parent);
    std::vector<Row> out;
    int rc;
    while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
      out.push_back(
          Row{kind, Text(q.s, 0), Text(q.s, 1), sqlite3_column_int64(q.s, 2), Text(q.s, 3)});
    }
    if (rc != SQLITE_DONE) return st_->Error("list");
    return out;
  }

  absl::StatusOr<int64_t> NextRevision() override {
    Stmt q;
    WEFT_RETURN_IF_ERROR(Prepare(
        "UPDATE control_meta SET revision = revision + 1 WHERE id = 1 RETURNING revision", &q));
    if (sqlite3_step(q.s) != SQLITE_ROW) return st_->Error("next revision");
    return sqlite3_column_int64(q.s, 0);
  }

  absl::Status WriteRow(const Row& row) override {
    Stmt q;
    WEFT_RETURN_IF_ERROR(
        Prepare("INSERT OR REPLACE INTO control_objects (kind, name, parent, version, body) "
                "VALUES (?1, ?2, ?3, ?4, ?5)",
                &q));
    sqlite3_bind_int(q.s, 1, static_cast<int>(row.kind));
    BindText(q.s, 2, row.name);
    BindText(q.s, 3, row.parent);
    sqlite3_bind_int64(q.s, 4, row.version);
    BindText(q.s, 5, row.body);
    if (sqlite3_step(q.s) != SQLITE_DONE) return st_->Error("write");
    return absl::OkStatus();
  }

  absl::Status DeleteRow(RecordKind kind, const std::string& name) override {
    Stmt q;
    WEFT_RETURN_IF_ERROR(Prepare("DELETE FROM control_objects WHERE kind = ?1 AND name = ?2", &q));
    sqlite3_bind_int(q.s, 1, static_cast<int>(kind));
    BindText(q.s, 2, name);
    if (sqlite3_step(q.s) != SQLITE_DONE) return st_->Error("delete");
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> InsertEvent(const EventRecord& e) override {
    Stmt q;
    WEFT_RETURN_IF_ERROR(
        Prepare("INSERT INTO control_events (time_ms, object, message) VALUES (?1, ?2, ?3)", &q));
    sqlite3_bind_int64(q.s, 1, e.time_ms);
    BindText(q.s, 2, e.object);
    BindText(q.s, 3, e.message);
    if (sqlite3_step(q.s) != SQLITE_DONE) return st_->Error("append event");
    return sqlite3_last_insert_rowid(db_);
  }

  absl::Status TrimEventsThrough(int64_t id) override {
    Stmt q;
    WEFT_RETURN_IF_ERROR(Prepare("DELETE FROM control_events WHERE id <= ?1", &q));
    sqlite3_bind_int64(q.s, 1, id);
    if (sqlite3_step(q.s) != SQLITE_DONE) return st_->Error("trim events");
    return absl::OkStatus();
  }

 private:
  absl::Status Prepare(const char* sql, Stmt* q) {
    if (sqlite3_prepare_v2(db_, sql, -1, &q->s, nullptr) != SQLITE_OK) return st_->Error("prepare");
    return absl::OkStatus();
  }

  SqliteControlStore* st_;
  sqlite3* db_;
};

absl::StatusOr<std::unique_ptr<SqliteControlStore>> SqliteControlStore::Open(
    SqliteControlStoreOptions options) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
  const int rc = sqlite3_open_v2(options.path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("open control store ", options.path, ": ", msg));
  }
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  std::unique_ptr<SqliteControlStore> store(new SqliteControlStore(db, std::move(options)));
  WEFT_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  WEFT_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL"));
  // Schema creation writes; IMMEDIATE so two processes opening a new file at once do not race.
  WEFT_RETURN_IF_ERROR(store->Exec("BEGIN IMMEDIATE"));
  if (absl::Status s = store->Exec(kSchema); !s.ok()) {
    (void)store->Exec("ROLLBACK");
    return s;
  }
  WEFT_RETURN_IF_ERROR(store->Exec("COMMIT"));
  return store;
}

SqliteControlStore::~SqliteControlStore() { sqlite3_close(db_); }

absl::Status SqliteControlStore::Error(std::string_view what) const {
  const int code = sqlite3_errcode(db_);
  std::string msg = absl::StrCat("control store (sqlite ", options_.path, "): ", std::string(what),
                                 ": ", sqlite3_errmsg(db_));
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

absl::Status SqliteControlStore::Exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Error(std::string_view(sql).substr(0, 40));
  }
  return absl::OkStatus();
}

absl::Status SqliteControlStore::Transaction(const TxnFn& fn) {
  int64_t committed = 0;
  {
    std::lock_guard lock(mu_);
    // IMMEDIATE: a deferred transaction that later writes can fail with SQLITE_BUSY_SNAPSHOT
    // instead of waiting, when another process wrote since its read began.
    WEFT_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    RowTxn rows(this);
    internal::RowControlTxn txn(&rows, &options_.store);
    absl::Status s = fn(txn);
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) {
      if (!sqlite3_get_autocommit(db_)) (void)Exec("ROLLBACK");
      return s;
    }
    committed = txn.revision();
  }
  if (committed > 0) waiter_.Notify(committed);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteControlStore::Revision() {
  std::lock_guard lock(mu_);
  Stmt q;
  if (sqlite3_prepare_v2(db_, "SELECT revision FROM control_meta WHERE id = 1", -1, &q.s,
                         nullptr) != SQLITE_OK) {
    return Error("prepare revision");
  }
  if (sqlite3_step(q.s) != SQLITE_ROW) return Error("revision");
  return sqlite3_column_int64(q.s, 0);
}

absl::StatusOr<int64_t> SqliteControlStore::WaitForRevision(int64_t after, int64_t timeout_ms) {
  return waiter_.Wait(after, timeout_ms, options_.store.poll_interval_ms,
                      [this] { return Revision(); });
}

absl::StatusOr<std::vector<EventRecord>> SqliteControlStore::ListEvents(const EventQuery& query) {
  std::lock_guard lock(mu_);
  Stmt q;
  if (sqlite3_prepare_v2(db_,
                         "SELECT id, time_ms, object, message FROM control_events WHERE "
                         "(?1 = '' OR object = ?1) AND id > ?2 ORDER BY id DESC LIMIT ?3",
                         -1, &q.s, nullptr) != SQLITE_OK) {
    return Error("prepare events");
  }
  BindText(q.s, 1, query.object);
  sqlite3_bind_int64(q.s, 2, query.after_id);
  sqlite3_bind_int(q.s, 3, std::max(query.limit, 0));
  std::vector<EventRecord> out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    out.push_back(
        {sqlite3_column_int64(q.s, 0), sqlite3_column_int64(q.s, 1), Text(q.s, 2), Text(q.s, 3)});
  }
  if (rc != SQLITE_DONE) return Error("events");
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace weft::control
