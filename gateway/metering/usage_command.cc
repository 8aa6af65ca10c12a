// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/usage_command.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gateway/metering/ledger.h"
#include "gateway/metering/ledger_store.h"
#include "gateway/metering/shipper.h"
#include "gateway/metering/sqlite_ledger_store.h"
#include "gateway/metering/usage_report.h"
#include "gateway/metering/wal.h"

namespace weft::gateway {
namespace {

constexpr const char* kUsageHelp =
    "usage: weft usage [--data DIR] [--store SPEC] [--tenant T] [--deployment D]\n"
    "                  [--since S] [--until S] [--by day|deployment|key|tenant] [--json]\n"
    "  --data DIR     gateway data directory (default ./weft-data; store DIR/ledger.sqlite)\n"
    "  --store SPEC   read this store instead: a SQLite file or a postgres:// URL\n"
    "  --since S      from S on: YYYY-MM-DD (UTC midnight) or unix milliseconds\n"
    "  --until S      before S (same forms)\n"
    "  --by G         group by day (default), deployment, key or tenant\n"
    "  --json         print JSON instead of a table\n";

struct Flags {
  std::string data = "./weft-data";
  std::string store;
  UsageQuery query;
  bool json = false;
  bool help = false;
};

// YYYY-MM-DD (UTC midnight) or a unix-ms integer.
std::optional<int64_t> ParseTimeArg(const std::string& s) {
  int64_t ms = 0;
  if (!s.empty() && absl::ascii_isdigit(static_cast<unsigned char>(s[0])) &&
      s.find('-') == std::string::npos) {
    if (absl::SimpleAtoi(s, &ms)) return ms;
    return std::nullopt;
  }
  absl::Time t;
  std::string error;
  if (!absl::ParseTime("%Y-%m-%d", s, absl::UTCTimeZone(), &t, &error)) return std::nullopt;
  return absl::ToUnixMillis(t);
}

// Returns an error message, or "" when the flags parsed.
std::string ParseFlags(const std::vector<std::string>& args, Flags& flags) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); name.starts_with("--") && eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "-h" || name == "--help") {
      flags.help = true;
      continue;
    }
    if (name == "--json") {
      if (value) return "--json takes no value";
      flags.json = true;
      continue;
    }
    static const char* kWithValue[] = {"--data",  "--store", "--tenant", "--deployment",
                                       "--since", "--until", "--by"};
    if (std::find(std::begin(kWithValue), std::end(kWithValue), name) == std::end(kWithValue)) {
      return absl::StrCat("unknown argument '", name, "'");
    }
    if (!value) {
      if (i + 1 >= args.size()) return absl::StrCat(name, " needs a value");
      value = args[++i];
    }
    if (name == "--data") {
      flags.data = *value;
    } else if (name == "--store") {
      flags.store = *value;
    } else if (name == "--tenant") {
      flags.query.tenant = *value;
    } else if (name == "--deployment") {
      flags.query.deployment = *value;
    } else if (name == "--since" || name == "--until") {
      const std::optional<int64_t> ms = ParseTimeArg(*value);
      if (!ms) {
        return absl::StrCat(name, " '", *value, "': expected YYYY-MM-DD or unix milliseconds");
      }
      (name == "--since" ? flags.query.since_unix_ms : flags.query.until_unix_ms) = *ms;
    } else if (name == "--by") {
      if (!ParseUsageGroupBy(*value, &flags.query.group_by)) {
        return absl::StrCat("--by '", *value, "': expected day, deployment, key or tenant");
      }
    }
  }
  return "";
}

// Ships what a stopped gateway left in its WAL, so the report includes it. A running gateway
// holds the WAL (and ships continuously), which is not an error.
void ShipLeftovers(const std::string& wal_dir, LedgerStore* store, std::ostream& err) {
  auto warn = [&err](std::string_view msg) { err << "weft usage: warning: " << msg << "\n"; };
  WalOptions options;
  options.dir = wal_dir;
  options.warn = warn;
  auto wal = Wal::Open(std::move(options));
  if (!wal.ok()) {
    if (!absl::IsFailedPrecondition(wal.status())) {
      warn(absl::StrCat("records in ", wal_dir, " not included: ", wal.status().ToString()));
    }
    return;
  }
  auto shipper = Shipper::Open(wal->get(), store,
                               {.max_batch_records = 2000,
                                .retry_initial = absl::Milliseconds(50),
                                .retry_max = absl::Seconds(1),
                                .min_interval = absl::ZeroDuration(),
                                .warn = warn});
  absl::Status s = shipper.ok() ? (*shipper)->Flush() : shipper.status();
  if (!s.ok()) warn(absl::StrCat("records in ", wal_dir, " not included: ", s.ToString()));
  (void)(*wal)->Close();
}

}  // namespace

int RunUsageCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags flags;
  if (std::string problem = ParseFlags(args, flags); !problem.empty()) {
    err << "weft usage: " << problem << "\n" << kUsageHelp;
    return 2;
  }
  if (flags.help) {
    out << kUsageHelp;
    return 0;
  }
  if (flags.query.since_unix_ms >= flags.query.until_unix_ms) {
    err << "weft usage: --since must be before --until\n";
    return 2;
  }
  const std::string wal_dir = LedgerWalDir(flags.data);
  const bool have_wal = std::filesystem::is_directory(wal_dir);
  absl::StatusOr<std::unique_ptr<LedgerStore>> store;
  if (!flags.store.empty()) {
    store = OpenLedgerStore(flags.store);
  } else {
    const std::string path = LedgerStorePath(flags.data);
    if (!have_wal && !std::filesystem::exists(path)) {
      err << "weft usage: no usage ledger in " << flags.data << " (neither " << path << " nor "
          << wal_dir << " exists; pass --data DIR of a gateway)\n";
      return 1;
    }
    auto sqlite = SqliteLedgerStore::Open({.path = path, .create_if_missing = true});
    if (sqlite.ok()) {
      store = std::unique_ptr<LedgerStore>(*std::move(sqlite));
    } else {
      store = sqlite.status();
    }
  }
  if (!store.ok()) {
    err << "weft usage: " << store.status().message() << "\n";
    return 1;
  }
  if (have_wal) ShipLeftovers(wal_dir, store->get(), err);
  absl::StatusOr<std::vector<UsageRow>> rows = (*store)->Query(flags.query);
  if (!rows.ok()) {
    err << "weft usage: " << rows.status().message() << "\n";
    return 1;
  }
  out << (flags.json ? FormatUsageJson(*rows, flags.query.group_by)
                     : FormatUsageTable(*rows, flags.query.group_by));
  return 0;
}

}  // namespace weft::gateway
