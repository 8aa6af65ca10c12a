// SPDX-License-Identifier: Apache-2.0
// CRC32C (Castagnoli), the checksum of WAL frames. SSE4.2 instruction when the CPU has it, else a
// table; both give the same value. Pure functions, any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace weft::gateway {

// CRC32C of `data`, continuing from `crc` (0 to start). Crc32c("123456789") == 0xE3069283.
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace weft::gateway
