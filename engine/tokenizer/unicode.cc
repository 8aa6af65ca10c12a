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

}  // namespace

int Utf8SeqLen(uint8_t lead) {
  static constexpr int kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

size_t ValidUtf8SeqLen(std::string_view text, size_t pos) { return weft::Utf8SeqLen(text, pos); }

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
    const size_t len = weft::Utf8SeqLen(text, pos, &cp);
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
