// SPDX-License-Identifier: Apache-2.0
// PostgresLeaderElector: a session-level advisory lock on a dedicated connection. Queries run
// asynchronously with a deadline, so a server that stops answering ends leadership in bounded
// time instead of hanging the loop.
#include <libpq-fe.h>
#include <poll.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "control/store/leader_elector.h"

namespace weft::control {
namespace {

class PostgresLeaderElector : public PollingLeaderElector {
 public:
  PostgresLeaderElector(std::string conninfo, LeaderElectorOptions options)
      : PollingLeaderElector(std::move(options)),
        conninfo_(std::move(conninfo)),
        key_(absl::StrCat(AdvisoryLockKey(options_.name))) {}
  ~PostgresLeaderElector() override { Resign(); }

 protected:
  bool TryAcquire() override {
    if (!Connect()) return false;
    std::string value;
    if (!QueryOne(absl::StrCat("SELECT pg_try_advisory_lock(", key_, ")"), &value)) {
      Release();
      return false;
    }
    return value == "t";
  }

  bool StillHeld() override {
    // The lock lives as long as this session; a session that answers still holds it.
    std::string value;
    return conn_ != nullptr && QueryOne("SELECT 1", &value) && value == "1";
  }

  void Release() override {
    if (conn_ == nullptr) return;
    std::string ignored;
    if (PQstatus(conn_) == CONNECTION_OK) {
      (void)QueryOne(absl::StrCat("SELECT pg_advisory_unlock(", key_, ")"), &ignored);
    }
    PQfinish(conn_);  // closing the session releases the lock in any case
    conn_ = nullptr;
  }

 private:
  bool Connect() {
    if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return true;
    if (conn_ != nullptr) PQfinish(conn_);
    // Later keywords override the expanded conninfo: bound the connect, and let TCP keepalives
    // notice a dead server (the server side notices a dead leader the same way).
    const std::string timeout =
        absl::StrCat(std::max<int64_t>(options_.check_timeout_ms / 1000, 2));
    const char* keys[] = {"dbname",
                          "connect_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          nullptr};
    const char* values[] = {conninfo_.c_str(), timeout.c_str(), "1", "5", "2", "2", nullptr};
    conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (PQstatus(conn_) != CONNECTION_OK) {
      PQfinish(conn_);
      conn_ = nullptr;
      return false;
    }
    return true;
  }

  // Runs `sql` and returns the first column of its first row, within check_timeout_ms.
  bool QueryOne(const std::string& sql, std::string* value) {
    if (PQsendQuery(conn_, sql.c_str()) != 1) return false;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.check_timeout_ms);
    bool ok = false;
    bool got = false;
    while (true) {
      while (PQflush(conn_) == 1) {
        if (!WaitSocket(POLLOUT, deadline)) return false;
      }
      while (!PQisBusy(conn_)) {
        PGresult* r = PQgetResult(conn_);
        if (r == nullptr) return ok;
        if (!got) {
          got = true;
          ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
          if (ok) *value = PQgetvalue(r, 0, 0);
        }
        PQclear(r);
      }
      if (!WaitSocket(POLLIN, deadline) || PQconsumeInput(conn_) != 1) return false;
    }
  }

  bool WaitSocket(short events, std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{PQsocket(conn_), events, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) == 1;
  }

  const std::string conninfo_;
  const std::string key_;
  PGconn* conn_ = nullptr;
};

}  // namespace

std::unique_ptr<LeaderElector> NewPostgresLeaderElector(std::string conninfo,
                                                        LeaderElectorOptions options) {
  return std::make_unique<PostgresLeaderElector>(std::move(conninfo), std::move(options));
}

}  // namespace weft::control
