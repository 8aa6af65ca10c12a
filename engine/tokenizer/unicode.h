// SPDX-License-Identifier: Apache-2.0
// UTF-8 helpers for the tokenizers: sequence lengths, validation with U+FFFD replacement, the GPT-2
// byte <-> unicode table used by byte-level BPE, and incomplete-tail detection for streaming.
// Stateless functions over caller-owned bytes; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/utf8.h"

namespace weft::tokenizer {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";         // U+2581 "▁"

// Bytes in the sequence started by `lead`, judged by its high bits only (as llama.cpp's
// unicode_len_utf8): 1 for ASCII and for stray continuation bytes, else 2..4.
int Utf8SeqLen(uint8_t lead);

// Length of the well-formed UTF-8 sequence at text[pos] (no overlongs, surrogates or values past
// U+10FFFF), or 0 if the bytes there are not one.
size_t ValidUtf8SeqLen(std::string_view text, size_t pos);

// `text` with every byte that does not start a well-formed sequence replaced by U+FFFD.
// Valid input is returned unchanged.
std::string SanitizeUtf8(std::string_view text);
bool IsValidUtf8(std::string_view text);

using weft::AppendUtf8;  // base/utf8.h

// GPT-2 byte-level mapping: each byte to a printable code point ('!'..'~', U+00A1..U+00AC,
// U+00AE..U+00FF map to themselves; the other 68 bytes to U+0100..U+0143), as UTF-8.
std::string_view ByteToUnicode(uint8_t b);
// The inverse: the byte for code point `cp`, or -1 if `cp` is not in the table.
int UnicodeToByte(uint32_t cp);
// Encodes raw bytes as byte-level text (each byte becomes its mapped code point).
std::string ByteLevelEncode(std::string_view bytes);
// Decodes byte-level text back to raw bytes. Characters outside the table are copied unchanged.
std::string ByteLevelDecode(std::string_view text);

// Number of bytes at the end of `text` that form the start of a UTF-8 sequence still missing
// continuation bytes (0..3). Streaming decoders hold these back until the rest arrives.
size_t IncompleteUtf8Tail(std::string_view text);

}  // namespace weft::tokenizer
