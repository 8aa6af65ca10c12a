// SPDX-License-Identifier: Apache-2.0
#include "api/openai.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::api {
namespace {

using json = nlohmann::ordered_json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

CompletionRequest ParseOk(std::string_view body, Endpoint e = Endpoint::kCompletions) {
  auto r = ParseCompletionRequest(body, e);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : CompletionRequest{};
}

TEST(OpenAiRequestTest, CompletionAllFields) {
  CompletionRequest r = ParseOk(R"({
    "model": "m", "prompt": "hello", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
    "top_k": 40, "min_p": 0.05, "frequency_penalty": 0.1, "presence_penalty": 0.2,
    "repetition_penalty": 1.1, "logit_bias": {"12": -100, "7": 2.5}, "seed": -1,
    "stop": ["a", "b"], "n": 3, "logprobs": 2, "stream": true,
    "stream_options": {"include_usage": true}, "user": "u", "ignore_eos": true,
    "min_tokens": 2, "weft_resume": {"tokens": [1, 2, 3]}, "some_unknown_field": {"x": 1}})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "hello");
  EXPECT_FALSE(r.prompt_is_tokens);
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(*r.temperature, 0.5f);
  EXPECT_FLOAT_EQ(*r.top_p, 0.9f);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_FLOAT_EQ(*r.min_p, 0.05f);
  EXPECT_FLOAT_EQ(*r.frequency_penalty, 0.1f);
  EXPECT_FLOAT_EQ(*r.presence_penalty, 0.2f);
  EXPECT_FLOAT_EQ(*r.repetition_penalty, 1.1f);
  EXPECT_THAT(r.logit_bias, ElementsAre(Pair(12, -100.0f), Pair(7, 2.5f)));
  EXPECT_EQ(r.seed, ~uint64_t{0});
  EXPECT_THAT(r.stop, ElementsAre("a", "b"));
  EXPECT_EQ(r.n, 3);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.user, "u");
  EXPECT_TRUE(r.ignore_eos);
  EXPECT_EQ(r.min_tokens, 2);
  EXPECT_THAT(r.resume_tokens, ElementsAre(1, 2, 3));
}

TEST(OpenAiRequestTest, PriorityClasses) {
  auto parse = [](const char* body) {
    auto r = ParseCompletionRequest(body, Endpoint::kCompletions);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && r->batch_priority;
  };
  EXPECT_FALSE(parse(R"({"prompt": "x"})"));
  EXPECT_FALSE(parse(R"({"prompt": "x", "priority": "interactive"})"));
  EXPECT_TRUE(parse(R"({"prompt": "x", "priority": "batch"})"));
  EXPECT_TRUE(parse(R"({"prompt": "x", "priority": 10})"));
  EXPECT_FALSE(parse(R"({"prompt": "x", "priority": -1})"));
}

TEST(OpenAiRequestTest, PromptForms) {
  EXPECT_EQ(ParseOk(R"({"prompt": ["one"]})").prompt, "one");
  CompletionRequest t = ParseOk(R"({"prompt": [5, 6, 7]})");
  EXPECT_TRUE(t.prompt_is_tokens);
  EXPECT_THAT(t.prompt_tokens, ElementsAre(5, 6, 7));
  auto multi = ParseCompletionRequest(R"({"prompt": ["a", "b"]})", Endpoint::kCompletions);
  EXPECT_EQ(multi.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorParam(multi.status()), "prompt");
  auto missing = ParseCompletionRequest(R"({"model": "m"})", Endpoint::kCompletions);
  EXPECT_EQ(ErrorParam(missing.status()), "prompt");
  // Nulls mean "not given".
  CompletionRequest n = ParseOk(R"({"prompt": "x", "max_tokens": null, "stop": null})");
  EXPECT_FALSE(n.max_tokens.has_value());
  EXPECT_TRUE(n.stop.empty());
  EXPECT_EQ(ParseOk(R"({"prompt": "x", "stop": "END"})").stop, std::vector<std::string>{"END"});
}

TEST(OpenAiRequestTest, ChatMessagesAndParts) {
  CompletionRequest r = ParseOk(R"({
    "model": "m", "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}],
       "name": "bob"},
      {"role": "assistant", "content": null}],
    "logprobs": true, "top_logprobs": 3, "max_completion_tokens": 9, "max_tokens": 100})",
                                Endpoint::kChatCompletions);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[1]["content"], "hello");
  EXPECT_EQ(r.messages[1]["name"], "bob");
  EXPECT_EQ(r.messages[2]["content"], "");
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(r.max_tokens, 9);  // max_completion_tokens wins
}

struct BadCase {
  Endpoint endpoint;
  const char* body;
  const char* param;
  const char* message;
};

TEST(OpenAiRequestTest, BadRequestsNameTheField) {
  const Endpoint C = Endpoint::kCompletions, H = Endpoint::kChatCompletions;
  const BadCase cases[] = {
      {C, R"({"prompt": "x",)", "", "not valid JSON"},
      {C, R"([1, 2])", "", "must be a JSON object"},
      {C, R"({"prompt": "x", "temperature": "hot"})", "temperature",
       "'temperature' must be a number"},
      {C, R"({"prompt": "x", "temperature": -1})", "temperature", "at least 0"},
      {C, R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens", "'max_tokens' must be an integer"},
      {C, R"({"prompt": "x", "max_tokens": 0})", "max_tokens", "between 1"},
      {C, R"({"prompt": 5})", "prompt", "must be a string or an array"},
      {C, R"({"prompt": [1, -2]})", "prompt", "token ids"},
      {C, R"({"prompt": "x", "model": 3})", "model", "'model' must be a string"},
      {C, R"({"prompt": "x", "stop": 3})", "stop", "'stop' must be a string or an array"},
      {C, R"({"prompt": "x", "priority": "urgent"})", "priority", "'priority' must be"},
      {C, R"({"prompt": "x", "priority": 1.5})", "priority", "'priority' must be"},
      {C, R"({"prompt": "x", "stop": [""]})", "stop", "must not be empty"},
      {C, R"({"prompt": "x", "n": 0})", "n", "between 1"},
      {C, R"({"prompt": "x", "stream": "yes"})", "stream", "'stream' must be a boolean"},
      {C, R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options",
       "only allowed when 'stream' is true"},
      {C, R"({"prompt": "x", "logit_bias": {"abc": 1}})", "logit_bias", "is not a token id"},
      {C, R"({"prompt": "x", "logit_bias": {"1": "x"}})", "logit_bias", "must be numbers"},
      {C, R"({"prompt": "x", "logprobs": true})", "logprobs", "'logprobs' must be an integer"},
      {C, R"({"prompt": "x", "seed": "s"})", "seed", "'seed' must be an integer"},
      {C, R"({"prompt": "x", "top_k": 0.5})", "top_k", "'top_k' must be an integer"},
      {C, R"({"prompt": "x", "ignore_eos": 1})", "ignore_eos", "'ignore_eos' must be a boolean"},
      {C, R"({"prompt": "x", "weft_resume": {"tokens": "a"}})", "weft_resume.tokens", "array"},
      {H, R"({"messages": "hi"})", "messages", "'messages' must be an array"},
      {H, R"({"messages": []})", "messages", "must not be empty"},
      {H, R"({})", "messages", "'messages' is required"},
      {H, R"({"messages": [{"content": "x"}]})", "messages[0].role", "must be a string"},
      {H, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content", "not supported"},
      {H, R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content",
       "must be a string or an array"},
      {H, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 2})", "logprobs",
       "'logprobs' must be a boolean"},
      {H, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs",
       "requires 'logprobs'"},
  };
  for (const BadCase& c : cases) {
    auto r = ParseCompletionRequest(c.body, c.endpoint);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(ErrorParam(r.status()), c.param) << c.body;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message)) << c.body;
    ApiError e = ErrorFromStatus(r.status());
    EXPECT_EQ(e.status, 400);
    json j = json::parse(ErrorJson(e));
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    if (*c.param) {
      EXPECT_EQ(j["error"]["param"], c.param);
    } else {
      EXPECT_TRUE(j["error"]["param"].is_null());
    }
  }
}

TEST(OpenAiErrorTest, StatusMapping) {
  EXPECT_EQ(ErrorFromStatus(absl::NotFoundError("x")).status, 404);
  EXPECT_EQ(ErrorFromStatus(absl::NotFoundError("x")).code, "model_not_found");
  ApiError ctx = ErrorFromStatus(absl::OutOfRangeError("too long"));
  EXPECT_EQ(ctx.status, 413);
  EXPECT_EQ(ctx.code, "context_length_exceeded");
  ApiError full = ErrorFromStatus(absl::ResourceExhaustedError("queue full"), 2);
  EXPECT_EQ(full.status, 429);
  EXPECT_EQ(full.retry_after_s, 2);
  EXPECT_EQ(ErrorFromStatus(absl::UnavailableError("stopping")).status, 503);
  EXPECT_EQ(ErrorFromStatus(absl::InternalError("bug")).status, 500);
  json j = json::parse(ErrorJson(full));
  EXPECT_EQ(j.dump(), R"({"error":{"message":"queue full","type":"rate_limit_error","param":null,)"
                      R"("code":"rate_limit_exceeded"}})");
}

TEST(OpenAiResponseTest, CompletionShape) {
  ResponseHead head{Endpoint::kCompletions, "cmpl-abc", 1700000000, "m"};
  Choice c;
  c.text = "hi";
  c.finish_reason = "length";
  c.has_logprobs = true;
  c.logprobs.push_back({"h", -0.5f, {{"h", -0.5f}, {"x", -2.0f}}, 0});
  json j = ResponseJson(head, {c}, Usage{5, 2, 3});
  EXPECT_EQ(j.dump(),
            R"({"id":"cmpl-abc","object":"text_completion","created":1700000000,"model":"m",)"
            R"("choices":[{"index":0,"text":"hi","logprobs":{"tokens":["h"],)"
            R"("token_logprobs":[-0.5],"top_logprobs":[{"h":-0.5,"x":-2.0}],"text_offset":[0]},)"
            R"("finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2,)"
            R"("total_tokens":7,"prompt_tokens_details":{"cached_tokens":3}}})");
}

TEST(OpenAiResponseTest, ChatShapes) {
  ResponseHead head{Endpoint::kChatCompletions, "chatcmpl-abc", 1, "m"};
  Choice c;
  c.text = "yo";
  c.finish_reason = "stop";
  EXPECT_EQ(ResponseJson(head, {c}, Usage{1, 1, 0}).dump(),
            R"({"id":"chatcmpl-abc","object":"chat.completion","created":1,"model":"m",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":"yo",)"
            R"("refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{)"
            R"("prompt_tokens":1,"completion_tokens":1,"total_tokens":2,)"
            R"("prompt_tokens_details":{"cached_tokens":0}}})");
  Choice first;
  EXPECT_EQ(ChunkJson(head, first, true, true).dump(),
            R"({"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1,"model":"m",)"
            R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,)"
            R"("finish_reason":null}],"usage":null})");
  Choice last;
  last.finish_reason = "length";
  EXPECT_EQ(ChunkJson(head, last, false, false)["choices"][0]["delta"].dump(), "{}");
  Choice lp;
  lp.text = "é";
  lp.has_logprobs = true;
  lp.logprobs.push_back({"é", -1.0f, {{"é", -1.0f}}, 0});
  EXPECT_EQ(ChunkJson(head, lp, false, false)["choices"][0]["logprobs"].dump(),
            R"({"content":[{"token":"é","logprob":-1.0,"bytes":[195,169],)"
            R"("top_logprobs":[{"token":"é","logprob":-1.0,"bytes":[195,169]}]}],)"
            R"("refusal":null})");
  EXPECT_EQ(UsageChunkJson(head, Usage{2, 3, 1})["choices"].dump(), "[]");
  EXPECT_EQ(UsageChunkJson(head, Usage{2, 3, 1})["usage"]["total_tokens"], 5);
}

TEST(OpenAiResponseTest, SseAndInvalidUtf8) {
  ResponseHead head{Endpoint::kCompletions, "cmpl-x", 1, "m"};
  Choice c;
  c.text = "\xE6\x97";  // a partial character never makes serialization throw
  std::string e = SseEvent(ChunkJson(head, c, false, false));
  EXPECT_TRUE(e.starts_with("data: {"));
  EXPECT_TRUE(e.ends_with("}\n\n"));
  EXPECT_THAT(e, HasSubstr("\xEF\xBF\xBD"));
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
}

TEST(OpenAiResponseTest, Ids) {
  std::string a = NewCompletionId(Endpoint::kCompletions);
  std::string b = NewCompletionId(Endpoint::kChatCompletions);
  EXPECT_TRUE(a.starts_with("cmpl-"));
  EXPECT_EQ(a.size(), 5u + 24u);
  EXPECT_TRUE(b.starts_with("chatcmpl-"));
  EXPECT_NE(a, NewCompletionId(Endpoint::kCompletions));
}

}  // namespace
}  // namespace weft::api
