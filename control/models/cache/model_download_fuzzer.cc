// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the parser of server-sent checksum headers (ETag / X-Linked-Etag).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/models/cache/model_download.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view v(reinterpret_cast<const char*>(data), size);
  if (auto h = weft::control::Sha256FromEtag(v)) {
    if (h->size() != 64) __builtin_trap();
  }
  return 0;
}
