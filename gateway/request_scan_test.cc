// SPDX-License-Identifier: Apache-2.0
#include "gateway/request_scan.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/request_scan_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {
namespace {

using json = nlohmann::ordered_json;

// What the gateway did before the scanner: parse the document, then read it.
absl::StatusOr<api::CompletionRequest> Reference(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("not JSON");
  return api::ParseCompletionRequestJson(j, api::Endpoint::kCompletions);
}

// The scanner agrees with the reference on `body`; returns whether it took it.
bool Agrees(const std::string& body) {
  std::optional<api::CompletionRequest> fast = ScanCompletionRequest(body);
  if (!fast.has_value()) return false;
  absl::StatusOr<api::CompletionRequest> ref = Reference(body);
  EXPECT_TRUE(ref.ok()) << "the scanner took a body the parser rejects (" << ref.status()
                        << "): " << body;
  if (!ref.ok()) return true;
  EXPECT_EQ(testing::RequestDifference(*fast, *ref), "") << body;
  return true;
}

TEST(RequestScanTest, TakesCommonBodiesAndReadsThemAsTheParserDoes) {
  const std::vector<std::string> bodies = {
      R"({"model":"bench","prompt":"The gateway benchmark says hello","max_tokens":8})",
      R"({"model":"m","prompt":"a\nb \"q\" \u00e9\ud83d\ude00 \/","temperature":0.7,"top_p":1,)"
      R"("top_k":-1,"min_p":0.05,"frequency_penalty":-0.5,"presence_penalty":1e-1,)"
      R"("repetition_penalty":1.1,"seed":18446744073709551615,"stop":"\n\n","n":3,)"
      R"("logprobs":2,"stream":true,"user":"u-1","ignore_eos":false,"return_token_ids":true,)"
      R"("min_tokens":4,"priority":"batch","max_completion_tokens":99})",
      // Members the parser does not read, whatever they hold; nulls; a key written with escapes;
      // a key given twice (the last counts); a byte-order mark; white space everywhere.
      "\xEF\xBB\xBF {\n \"extra\" : [1, {\"x\": [null, true, \"}]\"]}] ,\"model\":\"a\","
      "\"prompt\":\"p\",\"temperature\":null,\"stop\":null,\"seed\":-7,"
      "\"mod\\u0065l\":\"b\",\"n\":2,\"n\":1,\"messages\":{\"not\":\"read\"},\"priority\":3}\t",
      R"({"prompt":"no model"})",
      R"({"model":"m","prompt":"","temperature":-0,"top_p":-0.0,"seed":-0,"priority":-0})",
      R"({"model":"m","prompt":"p","temperature":12345678901234567890123,"top_p":1e-300,)"
      R"("min_p":9223372036854775807,"frequency_penalty":18446744073709551615})",
  };
  for (const std::string& body : bodies) EXPECT_TRUE(Agrees(body)) << "declined: " << body;
  EXPECT_EQ(ScanCompletionRequest(bodies[2])->model, "b");
  EXPECT_EQ(ScanCompletionRequest(bodies[2])->n, 1);
}

TEST(RequestScanTest, DeclinesWhatTheParserRejectsOrReadsAsContainers) {
  const std::vector<std::string> bodies = {
      "", "[]", "\"x\"", "{", R"({"model":"m","prompt":"p",})", R"({"model":"m","prompt":"p"} x)",
      R"({"model":"m","prompt":"\ud800"})",  // a lone surrogate: invalid JSON
      R"({"model":"m","prompt":"p","temperature":1e400})",  // overflows: invalid JSON
      R"({"model":"m"})", R"({"model":"m","prompt":null})", R"({"model":"m","prompt":[1,2]})",
      R"({"model":"m","prompt":["x"]})", R"({"model":1,"prompt":"p"})",
      R"({"model":"m","prompt":"p","max_tokens":0})",
      R"({"model":"m","prompt":"p","max_tokens":8.0})",
      R"({"model":"m","prompt":"p","max_tokens":"8"})",
      R"({"model":"m","prompt":"p","max_tokens":2147483648})",
      R"({"model":"m","prompt":"p","temperature":-0.1})",
      R"({"model":"m","prompt":"p","temperature":"hot"})",
      R"({"model":"m","prompt":"p","top_k":-2})", R"({"model":"m","prompt":"p","n":129})",
      R"({"model":"m","prompt":"p","logprobs":true})",
      R"({"model":"m","prompt":"p","seed":1.5})",
      R"({"model":"m","prompt":"p","seed":18446744073709551616})",
      R"({"model":"m","prompt":"p","seed":-9223372036854775809})",
      R"({"model":"m","prompt":"p","stop":""})", R"({"model":"m","prompt":"p","stop":["a"]})",
      R"({"model":"m","prompt":"p","logit_bias":{"1":2}})",
      R"({"model":"m","prompt":"p","stream_options":{"include_usage":true},"stream":true})",
      R"({"model":"m","prompt":"p","weft_resume":{"tokens":[1]}})",
      R"({"model":"m","prompt":"p","stream":1})", R"({"model":"m","prompt":"p","user":7})",
      R"({"model":"m","prompt":"p","priority":"soon"})",
      R"({"model":"m","prompt":"p","priority":18446744073709551615})",
      R"({"model":"m","prompt":"p","min_tokens":-1})",
      R"({"model":"m","prompt":"p","temperature":1e-400})",  // a range error to from_chars
  };
  for (const std::string& body : bodies) {
    EXPECT_FALSE(ScanCompletionRequest(body).has_value()) << body;
  }
}

// Random bodies built from the members the parser reads, with values of every kind (and edge
// numbers), plus members it does not read: whatever the scanner takes, it reads as the parser.
TEST(RequestScanTest, AgreesWithTheParserOnRandomBodies) {
  std::mt19937_64 rng(20261128);
  const std::vector<std::string> keys = {
      "model", "prompt", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
      "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty", "seed", "stop", "n",
      "logprobs", "stream", "user", "ignore_eos", "return_token_ids", "min_tokens", "priority",
      "other", "mod\\u0065l", "logit_bias", "stream_options", "weft_resume", "messages"};
  const std::vector<std::string> values = {
      "null", "true", "false", "0", "-0", "1", "-1", "7", "20", "21", "128", "129", "2147483647",
      "2147483648", "-2147483649", "9223372036854775807", "9223372036854775808",
      "18446744073709551615", "18446744073709551616", "-9223372036854775808", "0.5", "-0.0",
      "1e2", "1E-2", "3.4028235e38", "3.5e38", "1e-45", "2.5e-320", "123456789012345678901234",
      "\"\"", "\"m\"", "\"batch\"", "\"interactive\"", "\"b\\u0061tch\"", "\"a\\nb\"",
      "\"\\ud83d\\ude00\"", "[]", "[1]", "[\"x\"]", "{}", "{\"include_usage\":true}",
      "{\"tokens\":[1,2]}"};
  int taken = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string body = "{";
    const int members = static_cast<int>(rng() % 5);
    bool first = true;
    auto add = [&](const std::string& k, const std::string& v) {
      absl::StrAppend(&body, first ? "" : ",", "\"", k, "\":", v);
      first = false;
    };
    if (rng() % 4 != 0) add("prompt", "\"p\"");
    if (rng() % 4 != 0) add("model", "\"m\"");
    for (int m = 0; m < members; ++m) {
      add(keys[rng() % keys.size()], values[rng() % values.size()]);
    }
    body += "}";
    if (Agrees(body)) ++taken;
  }
  // Most of them decline (a random value is usually wrong for its key), but enough are taken
  // for the comparison to mean something.
  EXPECT_GT(taken, 3000) << taken;
}

}  // namespace
}  // namespace weft::gateway
