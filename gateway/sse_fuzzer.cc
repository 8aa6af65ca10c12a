// SPDX-License-Identifier: Apache-2.0
// Fuzzes the gateway's SSE splitter (upstream bytes are untrusted): arbitrary bytes fed in
// arbitrary pieces must never crash, and feeding in pieces equals feeding at once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gateway/sse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t cut = data[0] % size;
  const std::string s(reinterpret_cast<const char*>(data) + 1, size - 1);
  weft::gateway::SseSplitter whole(1 << 12), pieces(1 << 12);
  std::vector<std::string> a, b;
  const bool ok_whole = whole.Feed(s, &a);
  bool ok_pieces = pieces.Feed(s.substr(0, std::min(cut, s.size())), &b);
  ok_pieces = pieces.Feed(s.substr(std::min(cut, s.size())), &b) && ok_pieces;
  if (ok_whole && ok_pieces && a != b) std::abort();
  return 0;
}
