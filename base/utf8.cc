// SPDX-License-Identifier: Apache-2.0
#include "base/utf8.h"

namespace weft {

size_t Utf8SeqLen(std::string_view text, size_t pos, uint32_t* cp) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size() - pos;
  const uint8_t b0 = s[pos];
  uint32_t c;
  size_t len;
  auto cont = [&](size_t i) { return i < n && (s[pos + i] & 0xC0) == 0x80; };
  if (b0 < 0x80) {
    c = b0;
    len = 1;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (!cont(1)) return 0;
    c = ((b0 & 0x1Fu) << 6) | (s[pos + 1] & 0x3Fu);
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    c = ((b0 & 0x0Fu) << 12) | ((s[pos + 1] & 0x3Fu) << 6) | (s[pos + 2] & 0x3Fu);
    if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    len = 3;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    c = ((b0 & 0x07u) << 18) | ((s[pos + 1] & 0x3Fu) << 12) | ((s[pos + 2] & 0x3Fu) << 6) |
        (s[pos + 3] & 0x3Fu);
    if (c < 0x10000 || c > 0x10FFFF) return 0;
    len = 4;
  } else {
    return 0;
  }
  if (cp != nullptr) *cp = c;
  return len;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace weft
