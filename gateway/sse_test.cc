// SPDX-License-Identifier: Apache-2.0
#include "gateway/sse.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

TEST(SseSplitterTest, EventsSplitAcrossArbitraryPieces) {
  const std::string stream =
      "data: {\"a\":1}\n\n: a comment\n\nevent: x\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n";
  // Every split point of the stream into two pieces, and byte-by-byte, give the same events.
  const std::vector<std::string> want = {"{\"a\":1}", "line1\nline2", "[DONE]"};
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SseSplitter s;
    std::vector<std::string> got;
    ASSERT_TRUE(s.Feed(stream.substr(0, cut), &got));
    ASSERT_TRUE(s.Feed(stream.substr(cut), &got));
    EXPECT_EQ(got, want) << "cut at " << cut;
    EXPECT_EQ(s.pending(), 0u);
  }
  SseSplitter s;
  std::vector<std::string> got;
  for (char c : stream) ASSERT_TRUE(s.Feed(std::string(1, c), &got));
  EXPECT_EQ(got, want);
}

TEST(SseSplitterTest, CrLfLineEndsAndNoSpaceAfterColon) {
  SseSplitter s;
  std::vector<std::string> got;
  ASSERT_TRUE(s.Feed("data:x\r\n\r\ndata: y\n\n", &got));
  EXPECT_EQ(got, (std::vector<std::string>{"x", "y"}));
}

TEST(SseSplitterTest, IncompleteEventStaysPending) {
  SseSplitter s;
  std::vector<std::string> got;
  ASSERT_TRUE(s.Feed("data: {\"partial\"", &got));
  EXPECT_TRUE(got.empty());
  EXPECT_GT(s.pending(), 0u);
  s.Reset();
  EXPECT_EQ(s.pending(), 0u);
}

TEST(SseSplitterTest, OversizedEventFails) {
  SseSplitter s(16);
  std::vector<std::string> got;
  EXPECT_FALSE(s.Feed("data: 0123456789abcdefghij", &got));
  EXPECT_FALSE(s.Feed("\n\n", &got));  // sticky
  EXPECT_TRUE(got.empty());
}

}  // namespace
}  // namespace weft::gateway
