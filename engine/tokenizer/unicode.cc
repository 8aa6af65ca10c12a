// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/unicode.h"

#include <array>

namespace weft::tokenizer {
namespace {

struct ByteTables {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 0x144> to_byte;  // code points 0..0x143
  ByteTables() {
    to_byte.fill(-1);
    // GPT-2 bytes_to_unicode(): printable Latin-1 bytes keep their code point, the rest are
    // numbered from 256 upwards in byte order.
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
      AppendUtf8(cp, &to_unicode[b]);
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& Tables() {
  static const ByteTables* tables = new ByteTables();
  return *tables;
}

// Decodes one code point at text[pos] (any well-formed sequence); returns its length or 0.
size_t DecodeOne(std::string_view text, size_t pos, uint32_t* cp) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size() - pos;
  const uint8_t b0 = s[pos];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  auto cont = [&](size_t i) { return i < n && (s[pos + i] & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (!cont(1)) return 0;
    *cp = ((b0 & 0x1Fu) << 6) | (s[pos + 1] & 0x3Fu);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    const uint32_t c = ((b0 & 0x0Fu) << 12) | ((s[pos + 1] & 0x3Fu) << 6) | (s[pos + 2] & 0x3Fu);
    if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const uint32_t c = ((b0 & 0x07u) << 18) | ((s[pos + 1] & 0x3Fu) << 12) |
                       ((s[pos + 2] & 0x3Fu) << 6) | (s[pos + 3] & 0x3Fu);
    if (c < 0x10000 || c > 0x10FFFF) return 0;
    *cp = c;
    return 4;
  }
  return 0;
}

}  // namespace

int Utf8SeqLen(uint8_t lead) {
  static constexpr int kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

size_t ValidUtf8SeqLen(std::string_view text, size_t pos) {
  uint32_t cp;
  return DecodeOne(text, pos, &cp);
}

bool IsValidUtf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = ValidUtf8SeqLen(text, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = ValidUtf8SeqLen(text, pos);
    if (len == 0) {
      out.append(kReplacementChar);
      ++pos;  // one U+FFFD per offending byte, as llama.cpp's unicode_cpts_from_utf8
    } else {
      out.append(text.substr(pos, len));
      pos += len;
    }
  }
  return out;
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

std::string_view ByteToUnicode(uint8_t b) { return Tables().to_unicode[b]; }

int UnicodeToByte(uint32_t cp) {
  if (cp >= Tables().to_byte.size()) return -1;
  return Tables().to_byte[cp];
}

std::string ByteLevelEncode(std::string_view bytes) {
  const ByteTables& t = Tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out.append(t.to_unicode[static_cast<uint8_t>(c)]);
  return out;
}

std::string ByteLevelDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp = 0;
    const size_t len = DecodeOne(text, pos, &cp);
    if (len == 0) {
      out.push_back(text[pos++]);
      continue;
    }
    const int b = UnicodeToByte(cp);
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else {
      out.append(text.substr(pos, len));
    }
    pos += len;
  }
  return out;
}

size_t IncompleteUtf8Tail(std::string_view text) {
  // Walk back over at most 3 continuation bytes to a lead byte; the tail is incomplete when that
  // lead announces more bytes than are present and what is present could still become valid.
  const size_t n = text.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(text[n - back]);
    if ((b & 0xC0) == 0x80) continue;    // continuation byte: keep looking for the lead
    if (b < 0xC2 || b > 0xF4) return 0;  // ASCII or a byte that never leads a sequence
    const size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
    if (back >= need) return 0;  // complete (valid or not): nothing to wait for
    // Check the second byte's allowed range so e.g. "\xE0\x80" (overlong) is not held back.
    if (back >= 2) {
      const auto b1 = static_cast<uint8_t>(text[n - back + 1]);
      if ((b == 0xE0 && b1 < 0xA0) || (b == 0xED && b1 > 0x9F) || (b == 0xF0 && b1 < 0x90) ||
          (b == 0xF4 && b1 > 0x8F)) {
        return 0;
      }
    }
    return back;
  }
  return 0;
}

}  // namespace weft::tokenizer
