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

// nlohmann's strict parser is the reference for what is valid JSON: the scanner accepts exactly
// the inputs it accepts (the fuzzer checks the same on arbitrary bytes).
TEST(AnswerScanTest, AcceptsExactlyWhatNlohmannAccepts) {
  const std::vector<std::string> cases = {
      R"({"a":"\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\"})", R"({"a":"\ud83d"})", R"({"a":"\ude00"})",
      R"({"a":"\ud83d\u0041"})", R"({"a":"\ud83dx"})", R"({"a":"\u12"})", R"({"a":"\uZZZZ"})",
      R"({"a":"\x"})", "{\"a\":\"\x01\"}", "{\"a\":\"\x7f\"}", "{\"a\":\"\xc3\xa9\"}",
      "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xc1\xbf\"}", "{\"a\":\"\xe0\x9f\xbf\"}",
      "{\"a\":\"\xe0\xa0\x80\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xed\x9f\xbf\"}",
      "{\"a\":\"\xef\xbf\xbf\"}", "{\"a\":\"\xf0\x8f\xbf\xbf\"}", "{\"a\":\"\xf0\x90\x80\x80\"}",
      "{\"a\":\"\xf4\x8f\xbf\xbf\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xf5\x80\x80\x80\"}",
      "{\"a\":\"\xe2\x82\"}", "{\"a\":\"\xe2\x82", "{\"a\":\"\x80\"}",
      "\xef\xbb\xbf{}", "\xef\xbb{}", " \xef\xbb\xbf{}", std::string("{\"a\":\"\0\"}", 9),
      std::string("{}\0", 3), R"({"a":-})", R"({"a":-0})", R"({"a":01})", R"({"a":1.})",
      R"({"a":.5})", R"({"a":1e})", R"({"a":1e+})", R"({"a":1E-5})", R"({"a":+1})",
      R"({"a":1.5e3})", R"({"a":-1.0})", R"({"a":tru})", R"({"a":trueX})", R"({"a":nul})",
      R"({"a":[1,]})", R"({"a":[,1]})", R"({"a":1,})", R"({,"a":1})", R"({"a" 1})", R"({a:1})",
      R"({"a":1 "b":2})", "{\"a\":\v1}", "{\"a\":\f1}", "\t{\"a\"\r\n:\n[ ]\t}\r\n", R"({"":{}})",
      R"({"a":[[[]],{}]})", R"({"a":[}})", R"({"a":{]})", R"({"a":[1]]})", "{} ", "{}}",
  };
  for (const std::string& s : cases) {
    const bool valid = nlohmann::json::accept(s);
    EXPECT_EQ(ScanAnswer(s, "m").has_value(), valid) << s;
  }
}

TEST(AnswerScanTest, EscapedNamesAndModelsCompareDecoded) {
  auto f = ScanAnswer(
      R"({"mod\u0065l":"cl\u0069ent","\u0075sage":{"prompt_tok\u0065ns":3,)"
      R"("completion_tokens":4,"prompt_tokens_details":{"cached_tok\u0065ns":2}}})",
      "client");
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->model_matches);
  EXPECT_TRUE(f->has_usage);
  EXPECT_EQ(f->prompt_tokens, 3);
  EXPECT_EQ(f->completion_tokens, 4);
  EXPECT_EQ(f->cached_tokens, 2);
  EXPECT_TRUE(ScanAnswer(R"({"model":"caf\u00e9 \ud83d\ude00"})", "caf\xc3\xa9 \xf0\x9f\x98\x80")
                  ->model_matches);
  EXPECT_FALSE(ScanAnswer(R"({"model":"client\u0000"})", "client")->model_matches);
  // A count inside an array or a deeper object is not the answer's.
  f = ScanAnswer(R"({"x":{"usage":{"prompt_tokens":9}},"usage":{"a":[{"prompt_tokens":9}]}})",
                 "m");
  EXPECT_TRUE(f->has_usage);
  EXPECT_EQ(f->prompt_tokens, 0);
}

TEST(AnswerScanTest, DeepNestingIsNotACrash) {
  std::string deep(100000, '[');
  EXPECT_FALSE(ScanAnswer(R"({"a":)" + deep, "m").has_value());
  std::string nested = R"({"a":)" + std::string(5000, '[') + std::string(5000, ']') + "}";
  EXPECT_TRUE(ScanAnswer(nested, "m").has_value());
}

}  // namespace
}  // namespace weft::gateway
