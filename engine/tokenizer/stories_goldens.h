// SPDX-License-Identifier: Apache-2.0
// Test helper: reads ../shared/models/stories260K/greedy_golden.jsonl (run.c's greedy outputs for
// five prompts). Fails the test binary loudly when the file is missing.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "testing/test_data.h"

namespace weft::tokenizer::testing {

struct StoriesGolden {
  std::string prompt;
  std::vector<int32_t> tokens_after_bos;  // the prompt's tokens, then the generated ones
  std::string text;                       // what run.c printed
};

inline std::vector<StoriesGolden> ReadStoriesGoldens() {
  std::ifstream in(weft::testing::RequireTestData("models/stories260K/greedy_golden.jsonl"));
  std::vector<StoriesGolden> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back({j["prompt"].get<std::string>(),
                   j["tokens_after_bos"].get<std::vector<int32_t>>(),
                   j["text"].get<std::string>()});
  }
  return out;
}

}  // namespace weft::tokenizer::testing
