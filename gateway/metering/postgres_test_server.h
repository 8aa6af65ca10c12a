// SPDX-License-Identifier: Apache-2.0
// Test-only: a throwaway PostgreSQL server (initdb + pg_ctl from /usr/lib/postgresql/*/bin) in a
// temp dir, listening only on a unix socket there. As root it runs the server as the `postgres`
// (else `nobody`) user, since PostgreSQL refuses to run as root. Start once per test binary.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace weft::gateway::testing {

class PostgresTestServer {
 public:
  // Starts a server; the error says why none could be started (tests then skip with it).
  static absl::StatusOr<PostgresTestServer*> Start();
  // The shared server of this test binary, started on first use; nullptr with `why_not` set
  // when none can run here.
  static PostgresTestServer* Shared(std::string* why_not);
  ~PostgresTestServer();  // stops the server (immediate mode) and removes its directory

  // A libpq connection string for a fresh, empty database.
  absl::StatusOr<std::string> NewDatabase();

 private:
  PostgresTestServer() = default;
  std::string bin_;
  std::string base_;
  std::string data_;
  int uid_ = -1;
  int gid_ = -1;
  int next_db_ = 0;
};

}  // namespace weft::gateway::testing
