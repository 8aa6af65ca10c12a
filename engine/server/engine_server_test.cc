// SPDX-License-Identifier: Apache-2.0
// EngineServer over real loopback sockets against FakeEngine: every endpoint, SSE framing, every
// bad-request kind, disconnect -> cancel, keep-alive, 64 concurrent streams, graceful shutdown.
#include "engine/server/engine_server.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/fake_engine.h"
#include "testing/http_client.h"

namespace weft::engine {
namespace {

using json = nlohmann::ordered_json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using weft::testing::FakeEngine;
using weft::testing::FakeEngineOptions;
using weft::testing::FakeTokenizer;
using weft::testing::HttpClient;
using weft::testing::HttpResponse;

bool WaitFor(const std::function<bool()>& cond, double seconds = 10) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

// What FakeEngine generates for `prompt` text (no BOS): n tokens, greedy.
std::string Expected(const std::string& prompt, int n, uint64_t shift = 0) {
  FakeTokenizer tok;
  std::vector<int32_t> ids = tok.Encode(prompt, {});
  std::string out;
  for (int g = 0; g < n; ++g) out += tok.DecodeToken(FakeEngine::TokenAt(ids, g, shift), -1);
  return out;
}

class EngineServerTest : public ::testing::Test {
 protected:
  void Start(FakeEngineOptions engine_options = {}, ServerOptions options = {}) {
    engine_ = std::make_unique<FakeEngine>(engine_options);
    options.port = 0;
    options.threads = 4;
    auto server = EngineServer::Create(*engine_, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (server_) server_->Stop(5);
    if (engine_) engine_->Shutdown(0);
  }
  std::unique_ptr<HttpClient> Client() {
    auto c = HttpClient::Connect("127.0.0.1", server_->port());
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(c).value();
  }
  HttpResponse Post(const std::string& path, const json& body) {
    return PostRaw(path, body.dump());
  }
  HttpResponse PostRaw(const std::string& path, const std::string& body) {
    auto r = Client()->Request("POST", path, body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }
  HttpResponse Get(const std::string& path) {
    auto r = Client()->Request("GET", path);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }
  // Streams a request; returns the parsed data events (the final "[DONE]" as a string).
  std::vector<json> Stream(HttpClient& c, const std::string& path, const json& body,
                           bool* done = nullptr) {
    auto head = c.StartStream("POST", path, body.dump());
    EXPECT_TRUE(head.ok()) << head.status();
    EXPECT_EQ(head->status, 200);
    EXPECT_EQ(head->Header("Content-Type"), "text/event-stream");
    std::vector<json> events;
    while (true) {
      auto e = c.NextEvent();
      EXPECT_TRUE(e.ok()) << e.status();
      if (!e.ok() || !e->has_value()) break;
      if (**e == "[DONE]") {
        if (done) *done = true;
        continue;
      }
      events.push_back(json::parse(**e));
    }
    return events;
  }
  static void ExpectError(const HttpResponse& r, int status, const std::string& type,
                          const std::string& param, const std::string& message_part) {
    EXPECT_EQ(r.status, status) << r.body;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["error"]["type"], type) << r.body;
    if (param.empty()) {
      EXPECT_TRUE(j["error"]["param"].is_null()) << r.body;
    } else {
      EXPECT_EQ(j["error"]["param"], param) << r.body;
    }
    EXPECT_THAT(j["error"]["message"].get<std::string>(), HasSubstr(message_part));
    EXPECT_TRUE(j["error"].contains("code"));
  }

  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<EngineServer> server_;
};

TEST_F(EngineServerTest, Completion) {
  Start();
  HttpResponse r =
      Post("/v1/completions",
           {{"model", "fake-model"}, {"prompt", "abc"}, {"max_tokens", 5}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  json j = json::parse(r.body);
  EXPECT_TRUE(j["id"].get<std::string>().starts_with("cmpl-"));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "fake-model");
  EXPECT_GT(j["created"].get<int64_t>(), 1600000000);
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["text"], Expected("abc", 5));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"].dump(), R"({"prompt_tokens":3,"completion_tokens":5,"total_tokens":8,)"
                               R"("prompt_tokens_details":{"cached_tokens":0}})");
  // The engine got the sampling settings.
  auto sub = engine_->submitted();
  ASSERT_EQ(sub.size(), 1u);
  EXPECT_EQ(sub[0].sampling.max_tokens, 5);
  EXPECT_EQ(sub[0].sampling.temperature, 0.0f);
  EXPECT_TRUE(sub[0].id.starts_with(j["id"].get<std::string>()));
  // Default max_tokens for completions is OpenAI's 16; token-id prompts run as given.
  json d = json::parse(Post("/v1/completions", {{"prompt", {70, 71}}, {"temperature", 0}}).body);
  EXPECT_EQ(d["usage"]["completion_tokens"], 16);
  EXPECT_EQ(engine_->submitted().back().prompt, (std::vector<int32_t>{70, 71}));
}

TEST_F(EngineServerTest, CompletionStopsLogprobsTokenIdsAndResume) {
  FakeEngineOptions eo;
  eo.cached_tokens = 2;
  Start(eo);
  json stop =
      json::parse(Post("/v1/completions",
                       {{"prompt", "abc"}, {"max_tokens", 10}, {"stop", "db"}, {"temperature", 0}})
                      .body);
  EXPECT_EQ(stop["choices"][0]["text"], "bc");
  EXPECT_EQ(stop["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(stop["usage"]["prompt_tokens_details"]["cached_tokens"], 2);

  json lp = json::parse(Post("/v1/completions", {{"prompt", "abc"},
                                                 {"max_tokens", 2},
                                                 {"temperature", 0},
                                                 {"logprobs", 2},
                                                 {"return_token_ids", true}})
                            .body);
  json l = lp["choices"][0]["logprobs"];
  EXPECT_EQ(l["tokens"], json::parse(R"(["b","c"])"));
  EXPECT_EQ(l["text_offset"], json::parse("[0,1]"));
  EXPECT_EQ(l["top_logprobs"][0].size(), 2u);
  EXPECT_FLOAT_EQ(l["token_logprobs"][0].get<float>(), -0.25f);
  EXPECT_EQ(lp["choices"][0]["token_ids"],
            json::array({FakeTokenizer::kByteOffset + 'b', FakeTokenizer::kByteOffset + 'c'}));

  // Resumed after the first two tokens: the rest of the same stream, counted in usage.
  json resumed = json::parse(
      Post("/v1/completions",
           {{"prompt", "abc"},
            {"max_tokens", 5},
            {"temperature", 0},
            {"weft_resume",
             {{"tokens", {FakeTokenizer::kByteOffset + 'b', FakeTokenizer::kByteOffset + 'c'}}}}})
          .body);
  EXPECT_EQ(resumed["choices"][0]["text"], Expected("abc", 5).substr(2));
  EXPECT_EQ(resumed["usage"]["completion_tokens"], 5);
}

TEST_F(EngineServerTest, ChatCompletionUsesTheTemplate) {
  Start();
  json req = {{"model", "fake-model"},
              {"messages",
               {{{"role", "system"}, {"content", "be brief"}},
                {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "hi"}}}}}}},
              {"max_completion_tokens", 4},
              {"temperature", 0},
              {"logprobs", true},
              {"top_logprobs", 1}};
  HttpResponse r = Post("/v1/chat/completions", req);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_TRUE(j["id"].get<std::string>().starts_with("chatcmpl-"));
  EXPECT_EQ(j["object"], "chat.completion");
  const std::string prompt =
      "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], Expected(prompt, 4));
  EXPECT_EQ(j["choices"][0]["logprobs"]["content"].size(), 4u);
  EXPECT_EQ(j["choices"][0]["logprobs"]["content"][0]["top_logprobs"].size(), 1u);
  EXPECT_EQ(j["usage"]["prompt_tokens"], static_cast<int>(prompt.size()));

  // /weft/v1/render shows the exact prompt and ids.
  HttpResponse render = Post("/weft/v1/render", req);
  ASSERT_EQ(render.status, 200) << render.body;
  json rj = json::parse(render.body);
  EXPECT_EQ(rj["prompt"], prompt);
  EXPECT_EQ(rj["tokens"].size(), prompt.size());
  EXPECT_EQ(rj["tokens"][0], FakeTokenizer::kByteOffset + '<');
}

TEST_F(EngineServerTest, ChatTemplateOverrideAndErrors) {
  ServerOptions so;
  so.chat_template =
      "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}"
      "{% endif %}[{{ m.role }}]{{ m.content }}{% endfor %}";
  Start({}, so);
  json ok = json::parse(
      Post("/weft/v1/render", {{"messages", {{{"role", "user"}, {"content", "x"}}}}}).body);
  EXPECT_EQ(ok["prompt"], "[user]x");
  ExpectError(
      Post("/v1/chat/completions", {{"messages", {{{"role", "system"}, {"content", "x"}}}}}), 400,
      "invalid_request_error", "messages", "no system");
  ServerOptions bad;
  bad.chat_template = "{% if %}";
  FakeEngine engine;
  EXPECT_EQ(EngineServer::Create(engine, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineServerTest, StreamingCompletionSseFraming) {
  Start();
  auto c = Client();
  bool done = false;
  std::vector<json> events = Stream(*c, "/v1/completions",
                                    {{"prompt", "hello"},
                                     {"max_tokens", 6},
                                     {"temperature", 0},
                                     {"stream", true},
                                     {"stream_options", {{"include_usage", true}}}},
                                    &done);
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 3u);
  std::string text;
  const std::string id = events[0]["id"];
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json& e = events[i];
    EXPECT_EQ(e["id"], id);
    EXPECT_EQ(e["object"], "text_completion");
    EXPECT_TRUE(e.contains("usage") && e["usage"].is_null());
    ASSERT_EQ(e["choices"].size(), 1u);
    text += e["choices"][0]["text"].get<std::string>();
    if (i + 2 < events.size()) {
      EXPECT_TRUE(e["choices"][0]["finish_reason"].is_null());
    }
  }
  EXPECT_EQ(text, Expected("hello", 6));
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  const json& usage = events.back();
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 6);
  EXPECT_EQ(usage["usage"]["total_tokens"], 11);
  // Keep-alive: the same connection serves the next request.
  auto again = c->Request("GET", "/health");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->status, 200);
}

TEST_F(EngineServerTest, StreamingChatRoleFirstThenDeltas) {
  Start();
  auto c = Client();
  bool done = false;
  std::vector<json> events = Stream(*c, "/v1/chat/completions",
                                    {{"messages", {{{"role", "user"}, {"content", "hey"}}}},
                                     {"max_tokens", 3},
                                     {"temperature", 0},
                                     {"stream", true}},
                                    &done);
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(events[0]["choices"][0]["delta"].dump(), R"({"role":"assistant","content":""})");
  EXPECT_FALSE(events[0].contains("usage"));
  std::string text;
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    text += events[i]["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text.size(), 3u);
  EXPECT_EQ(events.back()["choices"][0]["delta"], json::object());
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "length");
}

TEST_F(EngineServerTest, NChoicesGetConsecutiveSeeds) {
  Start();
  json j = json::parse(
      Post("/v1/completions",
           {{"prompt", "abcd"}, {"max_tokens", 3}, {"n", 3}, {"seed", 10}, {"temperature", 1}})
          .body);
  ASSERT_EQ(j["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["text"], Expected("abcd", 3, 10 + i));
  }
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(j["usage"]["completion_tokens"], 9);
  auto sub = engine_->submitted();
  ASSERT_EQ(sub.size(), 3u);
  EXPECT_EQ(sub[0].sampling.seed, 10u);
  EXPECT_EQ(sub[1].sampling.seed, 11u);
  EXPECT_EQ(sub[2].sampling.seed, 12u);
  // Without a seed the choices still get distinct seeds.
  Post("/v1/completions", {{"prompt", "abcd"}, {"max_tokens", 1}, {"n", 2}});
  sub = engine_->submitted();
  EXPECT_NE(sub[3].sampling.seed, sub[4].sampling.seed);
  // Streams interleave choices by index.
  auto c = Client();
  std::vector<json> events = Stream(
      *c, "/v1/completions", {{"prompt", "ab"}, {"max_tokens", 2}, {"n", 2}, {"stream", true}});
  std::set<int> indices;
  for (const json& e : events) indices.insert(e["choices"][0]["index"].get<int>());
  EXPECT_EQ(indices, (std::set<int>{0, 1}));
}

TEST_F(EngineServerTest, BadRequests) {
  FakeEngineOptions eo;
  eo.n_ctx = 32;
  ServerOptions so;
  so.max_body_bytes = 4096;
  Start(eo, so);
  ExpectError(PostRaw("/v1/completions", "{\"prompt\": "), 400, "invalid_request_error", "",
              "not valid JSON");
  ExpectError(Post("/v1/completions", {{"prompt", "x"}, {"temperature", "hot"}}), 400,
              "invalid_request_error", "temperature", "'temperature' must be a number");
  ExpectError(Post("/v1/chat/completions", {{"messages", "hi"}}), 400, "invalid_request_error",
              "messages", "'messages' must be an array");
  ExpectError(Post("/v1/completions", {{"prompt", "x"}, {"top_p", 5}}), 400,
              "invalid_request_error", "", "top_p");
  ExpectError(Post("/v1/completions", {{"prompt", {1, 5000}}}), 400, "invalid_request_error",
              "prompt", "outside the vocabulary");
  HttpResponse nf = Post("/v1/completions", {{"model", "gpt-4"}, {"prompt", "x"}});
  ExpectError(nf, 404, "invalid_request_error", "model", "`gpt-4` does not exist");
  EXPECT_THAT(nf.body, HasSubstr("model_not_found"));
  ExpectError(Post("/v1/completions", {{"model", "fake-model:nope"}, {"prompt", "x"}}), 404,
              "invalid_request_error", "model", "nope");
  ExpectError(PostRaw("/v1/completions", json{{"prompt", std::string(5000, 'x')}}.dump()), 413,
              "invalid_request_error", "", "too large");
  HttpResponse ctx = Post("/v1/completions", {{"prompt", std::string(40, 'x')}});
  ExpectError(ctx, 413, "invalid_request_error", "prompt", "maximum context length is 32");
  EXPECT_THAT(ctx.body, HasSubstr("context_length_exceeded"));
  ExpectError(Get("/v1/nothing"), 404, "invalid_request_error", "", "no route");
  EXPECT_EQ(Get("/v1/completions").status, 405);
}

TEST_F(EngineServerTest, QueueFullIs429WithRetryAfter) {
  FakeEngineOptions eo;
  eo.max_waiting = 2;
  ServerOptions so;
  so.retry_after_s = 3;
  Start(eo, so);
  engine_->Pause();
  auto a = Client(), b = Client();
  ASSERT_TRUE(a->StartStream("POST", "/v1/completions",
                             json{{"prompt", "a"}, {"max_tokens", 2}, {"stream", true}}.dump())
                  .ok());
  ASSERT_TRUE(b->StartStream("POST", "/v1/completions",
                             json{{"prompt", "b"}, {"max_tokens", 2}, {"stream", true}}.dump())
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return engine_->active() == 2; }));
  HttpResponse full = Post("/v1/completions", {{"prompt", "c"}});
  ExpectError(full, 429, "rate_limit_error", "", "queue is full");
  EXPECT_EQ(full.Header("Retry-After"), "3");
  engine_->Resume();
  ASSERT_TRUE(a->ReadRestOfStream().ok());
  ASSERT_TRUE(b->ReadRestOfStream().ok());
}

TEST_F(EngineServerTest, QueueFullOnTheSecondChoiceCancelsTheFirst) {
  FakeEngineOptions eo;
  eo.max_waiting = 2;
  Start(eo);
  engine_->Pause();
  auto a = Client();
  ASSERT_TRUE(a->StartStream("POST", "/v1/completions",
                             json{{"prompt", "a"}, {"max_tokens", 2}, {"stream", true}}.dump())
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return engine_->active() == 1; }));
  HttpResponse full = Post("/v1/completions", {{"prompt", "c"}, {"n", 2}});
  ExpectError(full, 429, "rate_limit_error", "", "queue is full");
  EXPECT_EQ(full.Header("Retry-After"), "1");
  auto sub = engine_->submitted();
  ASSERT_EQ(sub.size(), 2u);
  EXPECT_THAT(engine_->cancelled(), ElementsAre(sub[1].id));
  engine_->Resume();
  ASSERT_TRUE(a->ReadRestOfStream().ok());
  EXPECT_TRUE(WaitFor([&] { return engine_->active() == 0; }));
}

TEST_F(EngineServerTest, SlowHeadersAreCut) {
  ServerOptions so;
  so.header_timeout_s = 0.2;
  Start({}, so);
  auto c = Client();
  // Sends half a request head and stalls: the server closes the connection at the timeout.
  ASSERT_TRUE(c->SendRaw("POST /v1/completions HTTP/1.1\r\nHost: x\r\n").ok());
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c->ServerClosed(5));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2);
}

TEST_F(EngineServerTest, ModelsHealthMetricsLoad) {
  FakeEngineOptions eo;
  eo.adapters = {"sql"};
  ServerOptions so;
  so.model_id = "stories";
  so.aliases = {{"stories-sql", "sql"}};
  Start(eo, so);
  json models = json::parse(Get("/v1/models").body);
  EXPECT_EQ(models["object"], "list");
  std::vector<std::string> ids;
  for (const json& m : models["data"]) {
    ids.push_back(m["id"]);
    EXPECT_EQ(m["object"], "model");
  }
  EXPECT_THAT(ids, ElementsAre("stories", "stories:sql", "stories-sql"));

  // An alias and "<id>:<adapter>" pick the adapter.
  EXPECT_EQ(Post("/v1/completions", {{"model", "stories-sql"}, {"prompt", "x"}}).status, 200);
  EXPECT_EQ(Post("/v1/completions", {{"model", "stories:sql"}, {"prompt", "x"}}).status, 200);
  EXPECT_EQ(Post("/v1/completions", {{"model", "stories"}, {"prompt", "x"}}).status, 200);
  EXPECT_EQ(Post("/v1/completions", {{"model", "fake-model"}, {"prompt", "x"}}).status, 404);
  auto sub = engine_->submitted();
  ASSERT_EQ(sub.size(), 3u);
  EXPECT_EQ(sub[0].adapter, "sql");
  EXPECT_EQ(sub[1].adapter, "sql");
  EXPECT_EQ(sub[2].adapter, "");

  HttpResponse health = Get("/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  server_->SetReady(false);
  EXPECT_EQ(Get("/health").status, 503);
  server_->SetReady(true);

  HttpResponse metrics = Get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.Header("Content-Type"), HasSubstr("text/plain"));
  EXPECT_THAT(metrics.body,
              HasSubstr("weft_requests_total{endpoint=\"/v1/completions\",code=\"200\"} 3"));
  EXPECT_THAT(metrics.body,
              HasSubstr("weft_requests_total{endpoint=\"/v1/completions\",code=\"404\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("weft_completion_tokens_total 48\n"));
  EXPECT_THAT(metrics.body, HasSubstr("weft_prompt_tokens_total 3\n"));
  EXPECT_THAT(metrics.body, HasSubstr("weft_time_to_first_token_seconds_count 3\n"));
  EXPECT_THAT(metrics.body, HasSubstr("weft_inter_token_latency_seconds_count 45\n"));
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE weft_time_to_first_token_seconds histogram"));
  EXPECT_THAT(metrics.body, HasSubstr("weft_requests_waiting 0\n"));
  EXPECT_THAT(metrics.body, HasSubstr("weft_kv_blocks_free 64\n"));
  EXPECT_THAT(metrics.body, HasSubstr("weft_kv_blocks_used 0\n"));
  EXPECT_THAT(metrics.body, HasSubstr("weft_batch_size 0\n"));
  EXPECT_THAT(metrics.body, HasSubstr("weft_prefix_cache_hit_tokens_total 0\n"));

  json load = json::parse(Get("/weft/v1/load").body);
  EXPECT_EQ(load["model"], "stories");
  EXPECT_EQ(load["running"], 0);
  EXPECT_EQ(load["waiting"], 0);
  EXPECT_EQ(load["kv_blocks_total"], 64);
  EXPECT_EQ(load["kv_blocks_free"], 64);
  EXPECT_EQ(load["adapters"], json::array({"sql"}));
  EXPECT_TRUE(load.contains("prefix_digest"));
  EXPECT_TRUE(load.contains("decode_tokens_per_s"));
  // The three requests above are the recent TTFT window.
  EXPECT_EQ(load["ttft_samples"], 3);
  EXPECT_GT(load["ttft_p95_ms"].get<double>(), 0);
}

TEST_F(EngineServerTest, AdapterLoadAndUnload) {
  Start();
  HttpResponse loaded = Post("/weft/v1/adapters", {{"name", "ad"}, {"path", "/tmp/ad.gguf"}});
  ASSERT_EQ(loaded.status, 200) << loaded.body;
  EXPECT_EQ(json::parse(loaded.body)["model"], "fake-model:ad");
  EXPECT_EQ(Post("/v1/completions", {{"model", "fake-model:ad"}, {"prompt", "x"}}).status, 200);
  EXPECT_EQ(engine_->submitted().back().adapter, "ad");
  EXPECT_EQ(Post("/weft/v1/adapters", {{"name", "ad"}, {"path", "/tmp/ad.gguf"}}).status, 409);
  ExpectError(Post("/weft/v1/adapters", {{"name", "x"}, {"path", "/missing.gguf"}}), 404,
              "invalid_request_error", "", "not found");
  ExpectError(Post("/weft/v1/adapters", {{"name", "x"}}), 400, "invalid_request_error", "", "path");
  auto c = Client();
  auto del = c->Request("DELETE", "/weft/v1/adapters/ad");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->status, 200);
  auto again = c->Request("DELETE", "/weft/v1/adapters/ad");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 404);
  EXPECT_EQ(Post("/v1/completions", {{"model", "fake-model:ad"}, {"prompt", "x"}}).status, 404);
}

TEST_F(EngineServerTest, ClientDisconnectMidStreamCancels) {
  FakeEngineOptions eo;
  eo.step_interval_s = 0.005;
  eo.n_ctx = 100000;
  Start(eo);
  auto c = Client();
  ASSERT_TRUE(
      c->StartStream("POST", "/v1/completions",
                     json{{"prompt", "abc"}, {"max_tokens", 50000}, {"stream", true}}.dump())
          .ok());
  ASSERT_TRUE(c->NextEvent().ok());
  ASSERT_TRUE(c->NextEvent().ok());
  c->Close();
  ASSERT_TRUE(WaitFor([&] { return engine_->cancelled().size() == 1; }));
  EXPECT_EQ(engine_->cancelled()[0], engine_->submitted()[0].id);
  EXPECT_TRUE(WaitFor([&] { return engine_->active() == 0; }));
  EXPECT_EQ(json::parse(Get("/weft/v1/load").body)["running"], 0);
  EXPECT_THAT(Get("/metrics").body, HasSubstr("weft_client_disconnects_total 1\n"));

  // A non-streamed request whose client leaves is cancelled too.
  auto d = Client();
  ASSERT_TRUE(
      d->Send("POST", "/v1/completions", json{{"prompt", "abc"}, {"max_tokens", 50000}}.dump())
          .ok());
  ASSERT_TRUE(WaitFor([&] { return engine_->submitted().size() == 2; }));
  d->Close();
  ASSERT_TRUE(WaitFor([&] { return engine_->cancelled().size() == 2; }));
}

TEST_F(EngineServerTest, KeepAliveReuse) {
  Start();
  auto c = Client();
  for (int i = 0; i < 5; ++i) {
    auto r = c->Request("POST", "/v1/completions",
                        json{{"prompt", "ab"}, {"max_tokens", 2}, {"temperature", 0}}.dump());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(r->keep_alive);
  }
}

TEST_F(EngineServerTest, SixtyFourConcurrentStreams) {
  FakeEngineOptions eo;
  eo.step_interval_s = 0.001;
  Start(eo);
  constexpr int kStreams = 64;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kStreams; ++t) {
    threads.emplace_back([&, t] {
      auto c = HttpClient::Connect("127.0.0.1", server_->port(), 30);
      if (!c.ok()) return;
      std::string prompt = "p" + std::to_string(t);
      auto head = (*c)->StartStream(
          "POST", "/v1/completions",
          json{{"prompt", prompt}, {"max_tokens", 20}, {"temperature", 0}, {"stream", true}}
              .dump());
      if (!head.ok() || head->status != 200) return;
      std::string text;
      bool done = false;
      while (true) {
        auto e = (*c)->NextEvent();
        if (!e.ok() || !e->has_value()) break;
        if (**e == "[DONE]") {
          done = true;
          continue;
        }
        text += json::parse(**e)["choices"][0]["text"].get<std::string>();
      }
      if (done && text == Expected(prompt, 20)) ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, kStreams);
}

TEST_F(EngineServerTest, GracefulShutdownFinishesStreams) {
  FakeEngineOptions eo;
  eo.step_interval_s = 0.01;
  Start(eo);
  auto c = Client();
  ASSERT_TRUE(
      c->StartStream(
           "POST", "/v1/completions",
           json{{"prompt", "abc"}, {"max_tokens", 30}, {"temperature", 0}, {"stream", true}}.dump())
          .ok());
  std::thread stopper([&] { server_->Stop(10); });
  auto rest = c->ReadRestOfStream();
  stopper.join();
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_THAT(*rest, HasSubstr("\"finish_reason\":\"length\""));
  EXPECT_THAT(*rest, HasSubstr("data: [DONE]\n\n"));
  EXPECT_TRUE(engine_->cancelled().empty());
  EXPECT_FALSE(HttpClient::Connect("127.0.0.1", server_->port(), 1).ok());
}

TEST_F(EngineServerTest, ShutdownDeadlineCancelsInEngine) {
  FakeEngineOptions eo;
  eo.step_interval_s = 0.01;
  eo.n_ctx = 100000;
  Start(eo);
  auto c = Client();
  ASSERT_TRUE(
      c->StartStream("POST", "/v1/completions",
                     json{{"prompt", "abc"}, {"max_tokens", 50000}, {"stream", true}}.dump())
          .ok());
  ASSERT_TRUE(c->NextEvent().ok());
  server_->Stop(0.1);
  EXPECT_TRUE(WaitFor([&] { return engine_->cancelled().size() == 1; }));
}

}  // namespace
}  // namespace weft::engine
