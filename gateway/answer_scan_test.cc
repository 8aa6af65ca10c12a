// SPDX-License-Identifier: Apache-2.0
#include "gateway/answer_scan.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

TEST(AnswerScanTest, ReadsModelAndUsage) {
  auto f = ScanAnswer(
      R"({"id":"cmpl-1","object":"text_completion","model":"m","choices":[{"index":0,"text":"hi",)"
      R"("finish_reason":"length","logprobs":null}],"usage":{"prompt_tokens":7,)"
      R"("completion_tokens":8,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}})",
      "m");
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->model_matches);
  EXPECT_TRUE(f->has_usage);
  EXPECT_EQ(f->prompt_tokens, 7);
  EXPECT_EQ(f->completion_tokens, 8);
  EXPECT_EQ(f->cached_tokens, 4);
}

TEST(AnswerScanTest, ModelMismatchOrWrongTypeAsksForARewrite) {
  EXPECT_FALSE(ScanAnswer(R"({"model":"engine-name"})", "client")->model_matches);
  EXPECT_FALSE(ScanAnswer(R"({"model":5})", "client")->model_matches);
  EXPECT_FALSE(ScanAnswer(R"({"model":{"name":"client"}})", "client")->model_matches);
  EXPECT_TRUE(ScanAnswer(R"({"choices":[]})", "client")->model_matches);  // absent
  // The last of a repeated key counts, as in a parsed document.
  EXPECT_TRUE(ScanAnswer(R"({"model":"x","model":"client"})", "client")->model_matches);
  EXPECT_FALSE(ScanAnswer(R"({"model":"client","model":"x"})", "client")->model_matches);
}

TEST(AnswerScanTest, OnlyTheTopLevelUsageCounts) {
  auto f = ScanAnswer(
      R"({"choices":[{"usage":{"prompt_tokens":99}}],"x":{"usage":{"completion_tokens":98}},)"
      R"("usage":{"prompt_tokens":1,"deep":{"prompt_tokens":97,"prompt_tokens_details":)"
      R"({"cached_tokens":96}},"prompt_tokens_details":{"x":{"cached_tokens":95}}}})",
      "m");
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->has_usage);
  EXPECT_EQ(f->prompt_tokens, 1);
  EXPECT_EQ(f->completion_tokens, 0);
  EXPECT_EQ(f->cached_tokens, 0);
}

TEST(AnswerScanTest, WrongTypesReadAsZeroNeverThrow) {
  auto f = ScanAnswer(
      R"({"usage":{"prompt_tokens":"7","completion_tokens":-3,"prompt_tokens_details":[1]}})", "m");
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->has_usage);
  EXPECT_EQ(f->prompt_tokens, 0);
  EXPECT_EQ(f->completion_tokens, 0);
  EXPECT_EQ(f->cached_tokens, 0);
  EXPECT_FALSE(ScanAnswer(R"({"usage":[1,2]})", "m")->has_usage);
  EXPECT_FALSE(ScanAnswer(R"({"usage":null})", "m")->has_usage);
  EXPECT_EQ(
      ScanAnswer(R"({"usage":{"prompt_tokens":1e3,"completion_tokens":2.5}})", "m")->prompt_tokens,
      0);
  EXPECT_EQ(ScanAnswer(R"({"usage":{"prompt_tokens":18446744073709551615}})", "m")->prompt_tokens,
            INT64_MAX);
  // A later "usage" replaces an earlier one entirely.
  f = ScanAnswer(
      R"({"usage":{"prompt_tokens":5,"completion_tokens":6},"usage":{"prompt_tokens":1}})", "m");
  EXPECT_EQ(f->prompt_tokens, 1);
  EXPECT_EQ(f->completion_tokens, 0);
}

TEST(AnswerScanTest, CountFieldOfAParsedEventFollowsTheSameRule) {
  const auto j = nlohmann::ordered_json::parse(
      R"({"a":7,"b":"7","c":-3,"d":2.5,"e":18446744073709551615,"f":null})");
  EXPECT_EQ(CountField(j, "a"), 7);
  EXPECT_EQ(CountField(j, "b"), 0);
  EXPECT_EQ(CountField(j, "c"), 0);
  EXPECT_EQ(CountField(j, "d"), 0);
  EXPECT_EQ(CountField(j, "e"), INT64_MAX);
  EXPECT_EQ(CountField(j, "f"), 0);
  EXPECT_EQ(CountField(j, "absent"), 0);
}

TEST(AnswerScanTest, NotOneObjectIsNullopt) {
  for (const char* bad : {"", "[]", "5", "\"s\"", "null", "{", R"({"a":1} x)", R"({"a":1}{})",
                          R"({"usage":{"prompt_tokens":1})", "{\"a\":\"\xff\"}", "<html>"}) {
    EXPECT_FALSE(ScanAnswer(bad, "m").has_value()) << bad;
  }
  EXPECT_TRUE(ScanAnswer("  {}  \n", "m").has_value());
}

TEST(AnswerScanTest, DeepNestingIsNotACrash) {
  std::string deep(100000, '[');
  EXPECT_FALSE(ScanAnswer(R"({"a":)" + deep, "m").has_value());
  std::string nested = R"({"a":)" + std::string(5000, '[') + std::string(5000, ']') + "}";
  EXPECT_TRUE(ScanAnswer(nested, "m").has_value());
}

}  // namespace
}  // namespace weft::gateway
