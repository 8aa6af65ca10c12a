// SPDX-License-Identifier: Apache-2.0
#include "control/store/open_control_store.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "control/store/sqlite_control_store.h"
#ifdef WEFT_HAVE_POSTGRES
#include "control/store/postgres_control_store.h"
#endif

namespace weft::control {
namespace {

std::string SqlitePath(const std::string& spec) {
  return spec.empty() ? std::string(kDefaultControlStorePath) : spec;
}

}  // namespace

bool IsPostgresStoreSpec(const std::string& spec) {
  return spec.starts_with("postgres://") || spec.starts_with("postgresql://");
}

absl::StatusOr<std::unique_ptr<ControlStore>> OpenControlStore(const std::string& spec,
                                                               ControlStoreOptions options) {
  if (IsPostgresStoreSpec(spec)) {
#ifdef WEFT_HAVE_POSTGRES
    auto store = PostgresControlStore::Open(spec, std::move(options));
    if (!store.ok()) return store.status();
    return std::unique_ptr<ControlStore>(*std::move(store));
#else
    return absl::UnimplementedError("this weft was built without PostgreSQL (libpq) support");
#endif
  }
  const std::string path = SqlitePath(spec);
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("control store: cannot create ", parent.string(), ": ", ec.message()));
    }
  }
  auto store = SqliteControlStore::Open({.path = path, .store = std::move(options)});
  if (!store.ok()) return store.status();
  return std::unique_ptr<ControlStore>(*std::move(store));
}

absl::StatusOr<std::unique_ptr<LeaderElector>> OpenLeaderElector(const std::string& spec,
                                                                 LeaderElectorOptions options) {
  if (IsPostgresStoreSpec(spec)) {
#ifdef WEFT_HAVE_POSTGRES
    return NewPostgresLeaderElector(spec, std::move(options));
#else
    return absl::UnimplementedError("this weft was built without PostgreSQL (libpq) support");
#endif
  }
  return std::unique_ptr<LeaderElector>(std::make_unique<FlockLeaderElector>(
      LeaderLockPathFor(SqlitePath(spec)), std::move(options)));
}

}  // namespace weft::control
