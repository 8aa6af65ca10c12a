// SPDX-License-Identifier: Apache-2.0
// The real engine (LlamaEngine on stories260K) behind the real HTTP front, driven over loopback:
// 64 concurrent streaming clients each get exactly the greedy output of their prompt run alone;
// a stream resumed over HTTP with weft_resume continues exactly; a client that disconnects frees
// its KV blocks (visible in /weft/v1/load); a shared prefix reports cached_tokens.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/model.h"
#include "engine/runtime/llama_engine.h"
#include "engine/server/engine_server.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/http_client.h"
#include "testing/test_data.h"

namespace weft {
namespace {

using nlohmann::json;

class EngineHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model =
        model::LoadModel(weft::testing::RequireTestData("models/stories260K/stories260K.gguf"));
    ASSERT_TRUE(model.ok()) << model.status();
    auto tok = tokenizer::LoadTokenizer(**model);
    ASSERT_TRUE(tok.ok()) << tok.status();
    engine::LlamaEngineOptions eo;
    eo.model_id = "stories260K";
    eo.n_threads = 2;
    eo.max_batch_tokens = 256;
    auto e = engine::LlamaEngine::Create(*std::move(model), *std::move(tok), eo);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = *std::move(e);
    engine::ServerOptions so;
    so.port = 0;
    so.threads = 2;
    auto s = engine::EngineServer::Create(*engine_, so);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (server_) server_->Stop(1);
    if (engine_) engine_->Shutdown(0);
  }

  std::unique_ptr<weft::testing::HttpClient> Client() {
    auto c = weft::testing::HttpClient::Connect("127.0.0.1", server_->port());
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }

  json Complete(json body) {
    auto c = Client();
    auto r = c->Request("POST", "/v1/completions", body.dump());
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body);
  }

  struct Streamed {
    std::string text;
    std::vector<int32_t> ids;
    json usage;
    std::string finish_reason;
  };
  // Reads a whole SSE completion stream; stops early (closing the connection) after `stop_after`
  // tokens when >= 0.
  Streamed Stream(json body, int stop_after = -1) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    body["return_token_ids"] = true;
    auto c = Client();
    Streamed out;
    auto head = c->StartStream("POST", "/v1/completions", body.dump());
    EXPECT_TRUE(head.ok()) << head.status();
    EXPECT_EQ(head->status, 200);
    while (true) {
      auto ev = c->NextEvent();
      EXPECT_TRUE(ev.ok()) << ev.status();
      if (!ev.ok() || !ev->has_value() || **ev == "[DONE]") break;
      json chunk = json::parse(**ev);
      if (chunk.contains("usage") && !chunk["usage"].is_null()) out.usage = chunk["usage"];
      for (const json& ch : chunk["choices"]) {
        out.text += ch.value("text", "");
        if (ch.contains("token_ids")) {
          for (int32_t id : ch["token_ids"]) out.ids.push_back(id);
        }
        if (!ch["finish_reason"].is_null()) out.finish_reason = ch["finish_reason"];
      }
      if (stop_after >= 0 && static_cast<int>(out.ids.size()) >= stop_after) {
        c->Close();
        break;
      }
    }
    return out;
  }

  engine::LoadReport WaitIdle() {
    engine::LoadReport r = engine_->Load();
    for (int i = 0; i < 400 && (r.running || r.waiting || r.kv_blocks_free != r.kv_blocks_total);
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      r = engine_->Load();
    }
    return r;
  }

  std::unique_ptr<engine::LlamaEngine> engine_;
  std::unique_ptr<engine::EngineServer> server_;
};

json Request(const std::string& prompt, int max_tokens) {
  return {{"model", "stories260K"},
          {"prompt", prompt},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"ignore_eos", true}};
}

TEST_F(EngineHttpTest, SixtyFourConcurrentStreamsEqualAlone) {
  const std::vector<std::string> prompts = {"Once upon a time", "Zoo",     "Lily and Tom were",
                                            "The little dog",   "One day", "The sun was"};
  std::vector<std::string> alone;
  for (const auto& p : prompts) alone.push_back(Complete(Request(p, 48))["choices"][0]["text"]);
  constexpr int kClients = 64;
  std::vector<Streamed> got(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] { got[i] = Stream(Request(prompts[i % prompts.size()], 48)); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(got[i].text, alone[i % prompts.size()]) << "client " << i;
    EXPECT_EQ(got[i].finish_reason, "length");
    EXPECT_EQ(got[i].usage.value("completion_tokens", -1), 48) << got[i].usage.dump();
  }
  engine::LoadReport idle = WaitIdle();
  EXPECT_EQ(idle.kv_blocks_free, idle.kv_blocks_total);
}

TEST_F(EngineHttpTest, ResumedStreamContinuesExactly) {
  for (bool seeded : {false, true}) {
    json req = Request("Lily and Tom were", 40);
    if (seeded) {
      req["temperature"] = 1.0;
      req["seed"] = 99;
    }
    Streamed full = Stream(req);
    ASSERT_EQ(full.ids.size(), 40u);
    Streamed cut = Stream(req, 11);  // the client goes away after 11 tokens
    ASSERT_GE(cut.ids.size(), 11u);
    cut.ids.resize(11);
    EXPECT_EQ(cut.ids, std::vector<int32_t>(full.ids.begin(), full.ids.begin() + 11));
    json resume = req;
    resume["weft_resume"] = {{"tokens", cut.ids}};
    Streamed rest = Stream(resume);
    EXPECT_EQ(rest.ids, std::vector<int32_t>(full.ids.begin() + 11, full.ids.end()))
        << "seeded " << seeded;
    EXPECT_EQ(rest.usage.value("completion_tokens", -1), 40);
  }
}

TEST_F(EngineHttpTest, DisconnectFreesBlocks) {
  Streamed cut = Stream(Request("Once upon a time", 400), 3);
  EXPECT_GE(cut.ids.size(), 3u);
  engine::LoadReport idle = WaitIdle();
  EXPECT_EQ(idle.running, 0);
  EXPECT_EQ(idle.kv_blocks_free, idle.kv_blocks_total);
  auto c = Client();
  auto r = c->Request("GET", "/weft/v1/load");
  ASSERT_TRUE(r.ok());
  json load = json::parse(r->body);
  EXPECT_EQ(load["kv_blocks_free"], load["kv_blocks_total"]);
}

TEST_F(EngineHttpTest, SharedPrefixReportsCachedTokens) {
  const std::string prefix =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her friends. One day, she saw a big tree";
  json a = Complete(Request(prefix + " and a bird.", 20));
  EXPECT_EQ(a["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  json b1 = Complete(Request(prefix + " and a cat.", 20));
  EXPECT_GT(b1["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 16);
  // Same tokens as without the cache: a fresh engine state is the reference.
  engine_->Shutdown(0);
  server_->Stop(0);
  SetUp();
  json b2 = Complete(Request(prefix + " and a cat.", 20));
  EXPECT_EQ(b2["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(b1["choices"][0]["text"], b2["choices"][0]["text"]);
}

}  // namespace
}  // namespace weft
