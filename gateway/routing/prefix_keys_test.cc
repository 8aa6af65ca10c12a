// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/prefix_keys.h"

#include <set>

#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

TEST(PrefixKeysTest, CumulativeFullBlocksOnly) {
  std::string a = std::string(100, 'x') + std::string(100, 'y') + "tail";
  EXPECT_EQ(PrefixKeys(a, 100, 10).size(), 2u);  // the 4-byte tail is not a full block
  EXPECT_EQ(PrefixKeys(a, 100, 1).size(), 1u);
  EXPECT_TRUE(PrefixKeys("short", 100, 10).empty());
  EXPECT_TRUE(PrefixKeys(a, 0, 10).empty());

  // Same first block, different second block: key[0] equal, key[1] different.
  std::string b = std::string(100, 'x') + std::string(100, 'z');
  auto ka = PrefixKeys(a, 100, 10);
  auto kb = PrefixKeys(b, 100, 10);
  EXPECT_EQ(ka[0], kb[0]);
  EXPECT_NE(ka[1], kb[1]);
  // Equal second blocks after different first blocks still give different keys (chained).
  std::string c = std::string(100, 'w') + std::string(100, 'y');
  EXPECT_NE(PrefixKeys(c, 100, 10)[1], ka[1]);
  // The seed separates key spaces (adapters).
  EXPECT_NE(PrefixKeys(a, 100, 10, 1)[0], ka[0]);
}

TEST(PrefixKeysTest, StableAcrossBuildsAndProcesses) {
  // These values are part of the fleet contract: every gateway must map a prefix to the same
  // replica. Changing the hash is a deliberate, fleet-wide change.
  EXPECT_EQ(Hash64(""), Hash64("", 0));
  EXPECT_EQ(Hash64("hello, world"), 0xb902b4a85e4d6f55ULL);
  EXPECT_EQ(PrefixKeys("0123456789abcdef", 8, 4)[1], 0x2910d5c1979fc7ecULL);
}

TEST(PrefixKeysTest, FewCollisions) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 100000; ++i) seen.insert(Hash64(std::to_string(i)));
  EXPECT_EQ(seen.size(), 100000u);
}

TEST(PrefixKeysTest, PrefixTextOfChatAndCompletions) {
  api::CompletionRequest chat;
  chat.endpoint = api::Endpoint::kChatCompletions;
  chat.messages = nlohmann::ordered_json::array(
      {{{"role", "system"}, {"content", "You are terse."}}, {{"role", "user"}, {"content", "Hi"}}});
  std::string text = PrefixText(chat);
  EXPECT_EQ(text, "system\x1fYou are terse.\x1euser\x1fHi\x1e");
  // A longer conversation starts with the same text (its prefix keys extend the shorter one's).
  api::CompletionRequest longer = chat;
  longer.messages.push_back({{"role", "assistant"}, {"content", "Hello."}});
  EXPECT_EQ(PrefixText(longer).rfind(text, 0), 0u);

  api::CompletionRequest completion;
  completion.prompt = "Once upon a time";
  EXPECT_EQ(PrefixText(completion), "Once upon a time");
  completion.prompt_is_tokens = true;
  completion.prompt_tokens = {1, 2};
  EXPECT_EQ(PrefixText(completion).size(), 8u);
}

}  // namespace
}  // namespace weft::gateway
