// SPDX-License-Identifier: Apache-2.0
// UTF-8 in one place for the whole tree: the length of one well-formed sequence (RFC 3629: no
// overlong forms, no surrogates, nothing past U+10FFFF) and the encoding of a code point. Used
// by the tokenizers and by the gateway's answer scanner. Pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace weft {

// The length (1-4) of the well-formed sequence at text[pos], with its code point in `*cp` when
// given; 0 when the bytes there are not one (pos < text.size()).
size_t Utf8SeqLen(std::string_view text, size_t pos, uint32_t* cp = nullptr);

// Appends the UTF-8 encoding of code point `cp` (<= U+10FFFF).
void AppendUtf8(uint32_t cp, std::string* out);

}  // namespace weft
