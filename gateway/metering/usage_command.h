// SPDX-License-Identifier: Apache-2.0
// `weft usage`: prints a usage report from the ledger of a gateway data directory. The cli wires
// it in one line; everything else (flags, opening the ledger, output) lives here.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace weft::gateway {

// `args` are the arguments after `weft usage`:
//   [--data DIR] (default ./weft-data; the store is DIR/ledger.sqlite)  [--store SPEC] (a SQLite
//   path or a postgres:// URL instead)  [--tenant T] [--deployment D]  [--since S] [--until S]
//   (S: YYYY-MM-DD in UTC, or unix milliseconds; until is exclusive)
//   [--by day|deployment|key|tenant] (default day)  [--json]
// Records still in the WAL of a stopped gateway (DIR/ledger-wal) are shipped first. Writes the
// report to `out`, problems to `err`. Returns 0, 1 (runtime failure) or 2 (bad arguments).
int RunUsageCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace weft::gateway
