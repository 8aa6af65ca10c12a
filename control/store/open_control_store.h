// SPDX-License-Identifier: Apache-2.0
// OpenControlStore: the store named by `--store`: "" or a file path -> SQLite (parent directories
// created), "postgres://..." or "postgresql://..." -> PostgreSQL. OpenLeaderElector: the matching
// elector (flock on "<path>.leader" for SQLite, an advisory lock for PostgreSQL).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "control/store/control_store.h"
#include "control/store/leader_elector.h"

namespace weft::control {

inline constexpr char kDefaultControlStorePath[] = "./weft-data/control.sqlite";

// True for "postgres://..." and "postgresql://...".
bool IsPostgresStoreSpec(const std::string& spec);

// Unimplemented for a PostgreSQL spec in a build without libpq; Unavailable when it cannot open.
absl::StatusOr<std::unique_ptr<ControlStore>> OpenControlStore(const std::string& spec,
                                                               ControlStoreOptions options = {});
absl::StatusOr<std::unique_ptr<LeaderElector>> OpenLeaderElector(const std::string& spec,
                                                                 LeaderElectorOptions options = {});

}  // namespace weft::control
