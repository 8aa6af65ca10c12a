// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/prefix_keys.h"

#include <algorithm>
#include <cstring>

namespace weft::gateway {
namespace {

// splitmix64's finalizer (Steele, Lea, Flood 2014): a full-avalanche 64-bit mix.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian hosts only (x86-64, aarch64); hashes stay equal across the fleet
}

}  // namespace

uint64_t Hash64(std::string_view data, uint64_t seed) {
  uint64_t h = Mix(seed ^ (0x9e3779b97f4a7c15ULL * (data.size() + 1)));
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) h = Mix(h ^ Load64(data.data() + i)) + 0x9e3779b97f4a7c15ULL;
  uint64_t tail = 0;
  if (i < data.size()) std::memcpy(&tail, data.data() + i, data.size() - i);
  return Mix(h ^ tail ^ (static_cast<uint64_t>(data.size() - i) << 56));
}

std::vector<uint64_t> PrefixKeys(std::string_view text, size_t block_chars, size_t max_blocks,
                                 uint64_t seed) {
  std::vector<uint64_t> keys;
  if (block_chars == 0) return keys;
  size_t n = std::min(max_blocks, text.size() / block_chars);
  keys.reserve(n);
  uint64_t h = seed;
  for (size_t b = 0; b < n; ++b) {
    h = Hash64(text.substr(b * block_chars, block_chars), h);  // chained: covers blocks 0..b
    keys.push_back(h);
  }
  return keys;
}

std::string PrefixText(const api::CompletionRequest& request) {
  std::string text;
  if (request.endpoint == api::Endpoint::kChatCompletions) {
    if (!request.tools.is_null()) text += request.tools.dump() + "\x1e";
    for (const auto& m : request.messages) {
      if (auto role = m.find("role"); role != m.end() && role->is_string()) {
        text += role->get_ref<const std::string&>();
      }
      text += '\x1f';
      if (auto content = m.find("content"); content != m.end()) {
        if (content->is_string()) {
          text += content->get_ref<const std::string&>();
        } else if (!content->is_null()) {
          text += content->dump();
        }
      }
      text += '\x1e';
    }
    return text;
  }
  if (request.prompt_is_tokens) {
    text.resize(request.prompt_tokens.size() * sizeof(int32_t));
    if (!text.empty()) std::memcpy(text.data(), request.prompt_tokens.data(), text.size());
    return text;
  }
  return request.prompt;
}

}  // namespace weft::gateway
