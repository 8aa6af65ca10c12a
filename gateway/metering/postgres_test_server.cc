// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/postgres_test_server.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "testing/test_data.h"

namespace weft::gateway::testing {
namespace {

// Runs `argv` (as uid/gid when >= 0), output appended to `log`. Returns the exit status.
int RunAs(const std::vector<std::string>& argv, int uid, int gid, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (gid >= 0 && ::setgid(static_cast<gid_t>(gid)) != 0) ::_exit(126);
    if (uid >= 0 && ::setuid(static_cast<uid_t>(uid)) != 0) ::_exit(126);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  return all.size() > 1500 ? all.substr(all.size() - 1500) : all;
}

}  // namespace

absl::StatusOr<PostgresTestServer*> PostgresTestServer::Start() {
  std::vector<std::string> bins;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    if (std::filesystem::exists(e.path() / "bin" / "initdb") &&
        std::filesystem::exists(e.path() / "bin" / "pg_ctl")) {
      bins.push_back((e.path() / "bin").string());
    }
  }
  if (bins.empty()) {
    return absl::NotFoundError("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)");
  }
  std::sort(bins.begin(), bins.end());
  std::unique_ptr<PostgresTestServer> server(new PostgresTestServer());
  server->bin_ = bins.back();
  server->base_ = weft::testing::MakeTempDir("weft-pg-");
  server->data_ = server->base_ + "/data";
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) pw = ::getpwnam("nobody");
    if (pw == nullptr) return absl::NotFoundError("running as root and no postgres/nobody user");
    server->uid_ = static_cast<int>(pw->pw_uid);
    server->gid_ = static_cast<int>(pw->pw_gid);
    if (::chown(server->base_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", server->base_, " failed"));
    }
  }
  const std::string log = server->base_ + "/setup.log";
  if (RunAs({server->bin_ + "/initdb", "-D", server->data_, "-U", "weft", "--auth=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"},
            server->uid_, server->gid_, log) != 0) {
    return absl::UnavailableError(absl::StrCat("initdb failed: ", Tail(log)));
  }
  // Unix socket only, in our own directory; fsync off: a test server needs no durability.
  const std::string opts =
      absl::StrCat("-k ", server->base_, " -c listen_addresses= -p 5432 -c fsync=off");
  if (RunAs({server->bin_ + "/pg_ctl", "-D", server->data_, "-l", server->base_ + "/server.log",
             "-w", "-t", "60", "-o", opts, "start"},
            server->uid_, server->gid_, log) != 0) {
    return absl::UnavailableError(
        absl::StrCat("pg_ctl start failed: ", Tail(log), Tail(server->base_ + "/server.log")));
  }
  return server.release();
}

PostgresTestServer* PostgresTestServer::Shared(std::string* why_not) {
  static PostgresTestServer* server = nullptr;
  static std::string* error = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    auto s = Start();
    if (s.ok()) {
      server = *s;
      std::atexit([] { delete server; });  // no server outlives the test binary
    } else {
      error = new std::string(s.status().message());
    }
  });
  if (server == nullptr) *why_not = *error;
  return server;
}

PostgresTestServer::~PostgresTestServer() {
  RunAs({bin_ + "/pg_ctl", "-D", data_, "-m", "immediate", "-w", "stop"}, uid_, gid_,
        base_ + "/setup.log");
  std::error_code ec;
  std::filesystem::remove_all(base_, ec);
}

absl::StatusOr<std::string> PostgresTestServer::NewDatabase() {
  const std::string admin = absl::StrCat("host=", base_, " port=5432 user=weft dbname=postgres");
  const std::string name = absl::StrCat("weft_test_", next_db_++);
  PGconn* conn = PQconnectdb(admin.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, absl::StrCat("CREATE DATABASE ", name).c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQerrorMessage(conn);
    PQclear(r);
  }
  PQfinish(conn);
  if (!error.empty()) return absl::UnavailableError(error);
  return absl::StrCat("host=", base_, " port=5432 user=weft dbname=", name);
}

}  // namespace weft::gateway::testing
