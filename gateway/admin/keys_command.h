// SPDX-License-Identifier: Apache-2.0
// The `weft keys` and `weft tenants` verbs, over the SQLite key store at DIR/keys.sqlite
// (`--data DIR`, default ./weft-data), which a running gateway on the same folder sees within a
// second. `args` are the words after the verb (e.g. {"create", "--tenant", "acme"}). Results go to
// `out` (a created key's plaintext alone on its line, for scripts), notes and errors to `err`.
// Returns the process exit status: 0 ok, 1 failed, 2 usage error.
//
//   weft keys create --tenant T [--name N] [--expires-in 30d] [--deployments a,b] [--rpm N]
//                    [--tpm N]        (creates tenant T on the fly, allowed --deployments or "*")
//   weft keys list [--tenant T] [--json]
//   weft keys revoke KEY_ID
//   weft tenants create ID [--name N] [--deployments a,b] [--rpm N] [--tpm N] [--monthly-tokens N]
//   weft tenants set ID [--name N] [--deployments a,b] [--rpm N] [--tpm N] [--monthly-tokens N]
//   weft tenants list [--json]
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace weft::admin {

int RunKeysCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunTenantsCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace weft::admin
