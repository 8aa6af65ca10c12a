// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: admin API bodies (tenant create/patch, key create) and CLI durations. Parsing
// must never crash or throw, and what parses must be valid for the store.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/admin/admin_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace weft;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto t = admin::ParseTenantCreate(body); t.ok()) {
    if (!auth::ValidateTenant(*t).ok()) __builtin_trap();
    (void)admin::TenantJson(*t).dump();
  }
  if (auto p = admin::ParseTenantPatch(body); p.ok()) {
    auth::Tenant t;
    t.id = "t";
    (void)auth::ApplyPatch(*p, t);
  }
  if (auto k = admin::ParseKeyCreate(body, 1'700'000'000); k.ok()) {
    if (!auth::ValidateKeySpec(*k).ok()) __builtin_trap();
  }
  (void)admin::ParseDurationSeconds(body);
  (void)admin::SplitList(body);
  return 0;
}
