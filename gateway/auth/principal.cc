// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/principal.h"

namespace weft::auth {

bool MayUse(const Principal& principal, std::string_view deployment) {
  if (deployment.empty()) return false;
  // "dep:adapter" is covered by an allowed "dep" too.
  std::string_view base = deployment.substr(0, deployment.find(':'));
  for (const std::string& allowed : principal.deployments) {
    if (allowed == "*" || allowed == deployment || allowed == base) return true;
  }
  return false;
}

}  // namespace weft::auth
