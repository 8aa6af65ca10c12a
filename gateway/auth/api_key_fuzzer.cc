// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: bearer tokens as any client may send them. Parsing and authentication must
// never crash, and nothing but the one real key may authenticate.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/auth/api_key.h"
#include "gateway/auth/in_memory_key_store.h"
#include "gateway/auth/principal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace weft::auth;
  static InMemoryKeyStore* store = [] {
    auto* s = new InMemoryKeyStore();
    Tenant t;
    t.id = "t";
    (void)s->CreateTenant(t);
    return s;
  }();
  static const std::string key = [] {
    KeySpec spec;
    spec.tenant = "t";
    return store->CreateKey(spec)->plaintext;
  }();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view token = BearerToken(input);
  (void)ParseKey(input);
  for (std::string_view candidate : {input, token}) {
    auto p = store->Authenticate(candidate);
    if (p.ok() && candidate != key) __builtin_trap();
    if (!p.ok() && !absl::IsUnauthenticated(p.status())) __builtin_trap();
  }
  Principal principal;
  principal.deployments = {"llama", "qwen:support"};
  (void)MayUse(principal, input);
  (void)ConstantTimeEquals(input, key);
  return 0;
}
