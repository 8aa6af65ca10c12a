// SPDX-License-Identifier: Apache-2.0
// Prefix keys: the gateway has no tokenizer, so it approximates the engine's block-aligned prefix
// cache with text: the prompt (or the serialized chat messages) is cut into blocks of block_chars
// bytes and key[i] is a chained hash of blocks 0..i. Two prompts share key[i] exactly when they
// share their first (i+1) x block_chars bytes. The hash is stable across processes and builds, so
// every gateway of a fleet maps a prefix to the same replica. Pure functions, any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/openai.h"

namespace weft::gateway {

// A stable 64-bit hash of `data` (not cryptographic).
uint64_t Hash64(std::string_view data, uint64_t seed = 0);

// Keys of the first min(max_blocks, text.size() / block_chars) full blocks of `text`, each
// covering all blocks before it. `seed` separates key spaces (e.g. by adapter, whose KV differs).
std::vector<uint64_t> PrefixKeys(std::string_view text, size_t block_chars, size_t max_blocks,
                                 uint64_t seed = 0);

// The text a request's prefix keys are computed over: tools, then each chat message as
// role + content, or the completion prompt (token ids as their bytes). The engine renders these
// through a chat template; the order of leading content is what matters, and it is preserved.
std::string PrefixText(const api::CompletionRequest& request);

}  // namespace weft::gateway
