// SPDX-License-Identifier: Apache-2.0
#include "engine/server/engine_server.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/load_report.h"
#include "api/openai.h"
#include "base/http/http_server.h"
#include "engine/sampling/generation_limits.h"
#include "engine/server/metrics.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace weft::engine {
namespace {

using json = nlohmann::ordered_json;
using api::Endpoint;

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

http::Response JsonResponse(int status, const json& body) {
  http::Response r;
  r.status = status;
  r.body = api::Dump(body);
  return r;
}

http::Response ErrorResponse(const api::ApiError& e) {
  http::Response r;
  r.status = e.status;
  r.body = api::ErrorJson(e);
  if (e.retry_after_s > 0) r.headers.emplace_back("Retry-After", std::to_string(e.retry_after_s));
  return r;
}

api::ApiError NotFoundModel(const std::string& model) {
  api::ApiError e;
  e.status = 404;
  e.message = absl::StrCat("The model `", model, "` does not exist");
  e.param = "model";
  e.code = "model_not_found";
  return e;
}

}  // namespace

struct EngineServer::State {
  State(Engine& e, ServerOptions o) : engine(e), options(std::move(o)) {}

  Engine& engine;
  ServerOptions options;
  std::string model_id;
  std::optional<tokenizer::ChatTemplate> chat_template;
  ServerMetrics metrics;
  std::unique_ptr<http::HttpServer> http;
  std::atomic<bool> ready{true};
  int64_t created = UnixSeconds();

  // Blocking control work (adapter loads read files) runs here, off the I/O threads.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> tasks;  // guarded by mu
  bool stop_worker = false;                 // guarded by mu
  std::thread worker;

  void RunWorker() {
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stop_worker || !tasks.empty(); });
        if (tasks.empty()) return;
        task = std::move(tasks.front());
        tasks.pop_front();
      }
      task();
    }
  }
  void PostTask(std::function<void()> task) {
    {
      std::lock_guard lock(mu);
      tasks.push_back(std::move(task));
    }
    cv.notify_one();
  }

  void Reply(const std::string& endpoint, const std::shared_ptr<http::ResponseWriter>& w,
             http::Response r) {
    metrics.CountRequest(endpoint, r.status);
    w->Respond(std::move(r));
  }
  void ReplyError(const std::string& endpoint, const std::shared_ptr<http::ResponseWriter>& w,
                  const api::ApiError& e) {
    Reply(endpoint, w, ErrorResponse(e));
  }

  // model -> adapter ("" = base), or 404.
  absl::StatusOr<std::string> ResolveModel(const std::string& model) const {
    if (model.empty() || model == model_id) return std::string();
    if (auto it = options.aliases.find(model); it != options.aliases.end()) return it->second;
    if (model.size() > model_id.size() + 1 && model.compare(0, model_id.size(), model_id) == 0 &&
        model[model_id.size()] == ':') {
      return model.substr(model_id.size() + 1);
    }
    return absl::NotFoundError(model);
  }

  // The chat prompt text for a parsed chat request (InvalidArgument from the template).
  absl::StatusOr<std::string> RenderChat(const api::CompletionRequest& req) const {
    const tokenizer::Tokenizer& tok = engine.tokenizer();
    tokenizer::ChatTemplateOptions o;
    if (tok.bos_id() >= 0) o.bos_token = std::string(tok.TokenText(tok.bos_id()));
    if (tok.eos_id() >= 0) o.eos_token = std::string(tok.TokenText(tok.eos_id()));
    o.add_generation_prompt = req.add_generation_prompt;
    o.tools = req.tools;
    o.extra_vars = req.chat_template_kwargs;
    absl::StatusOr<std::string> text = tokenizer::RenderChat(*chat_template, req.messages, o);
    if (!text.ok()) {
      return api::InvalidParam("messages",
                               absl::StrCat("chat template: ", text.status().message()));
    }
    return text;
  }

  // Tokenizes a chat prompt: special-token text is parsed; BOS is added unless the template
  // already wrote it.
  std::vector<int32_t> EncodeChat(const std::string& text) const {
    const tokenizer::Tokenizer& tok = engine.tokenizer();
    tokenizer::EncodeOptions eo;
    eo.parse_special = true;
    eo.add_bos = tok.add_bos_default();
    if (eo.add_bos && tok.bos_id() >= 0) {
      std::string_view bos = tok.TokenText(tok.bos_id());
      if (!bos.empty() && text.starts_with(bos)) eo.add_bos = false;
    }
    return tok.Encode(text, eo);
  }

  void HandleCompletion(Endpoint endpoint, const http::Request& req,
                        std::shared_ptr<http::ResponseWriter> w);
  void HandleRender(const http::Request& req, std::shared_ptr<http::ResponseWriter> w);
  void Register();
};

namespace {

// One completion request (n choices) in flight. Lives on its connection's strand: the handler
// creates it there and every engine event is posted there, so nothing here needs a lock.
class Completion : public std::enable_shared_from_this<Completion> {
 public:
  struct ChoiceState {
    api::Choice choice;  // accumulated (non-streamed) result
    int32_t prev_token = -1;
    double last_token_s = 0;
    bool finished = false;
    std::string id;
  };

  Completion(EngineServer::State* server, std::shared_ptr<http::ResponseWriter> writer,
             std::string endpoint_name, api::ResponseHead head, const api::CompletionRequest& req,
             int32_t last_prompt_token)
      : server_(server),
        writer_(std::move(writer)),
        endpoint_name_(std::move(endpoint_name)),
        head_(std::move(head)),
        stream_(req.stream),
        include_usage_(req.include_usage),
        logprobs_(req.logprobs),
        token_ids_(req.return_token_ids),
        start_s_(NowSeconds()),
        choices_(req.n) {
    for (int32_t i = 0; i < req.n; ++i) {
      choices_[i].choice.index = i;
      choices_[i].choice.has_logprobs = logprobs_;
      choices_[i].choice.has_token_ids = token_ids_;
      choices_[i].id = absl::StrCat(head_.id, "-", i);
      choices_[i].prev_token =
          req.resume_tokens.empty() ? last_prompt_token : req.resume_tokens.back();
    }
    remaining_ = req.n;
  }

  const std::string& id(int i) const { return choices_[i].id; }
  int n() const { return static_cast<int>(choices_.size()); }

  // After every Submit succeeded (on the strand).
  void Begin() {
    if (!stream_) return;
    server_->metrics.CountRequest(endpoint_name_, 200);
    writer_->StartStream(200, "text/event-stream");
    if (head_.endpoint == Endpoint::kChatCompletions) {
      for (auto& c : choices_) {
        api::Choice first;
        first.index = c.choice.index;
        Send(first, /*role=*/true);
      }
    }
  }

  // A Submit failed: the answer is the error; later events are dropped.
  void Abandon() { done_ = true; }

  void OnClientGone() {
    if (done_) return;
    done_ = true;
    server_->metrics.CountClientCancel();
    server_->metrics.CountRequest(endpoint_name_, 499);  // nginx's "client closed request"
    for (auto& c : choices_) {
      if (!c.finished) server_->engine.Cancel(c.id);
    }
  }

  void OnToken(int i, const TokenEvent& ev) {
    if (done_) return;
    ChoiceState& c = choices_[i];
    const double now = NowSeconds();
    if (!first_token_seen_) {
      first_token_seen_ = true;
      server_->metrics.ObserveTtft(now - start_s_);
    } else if (c.last_token_s > 0) {
      server_->metrics.ObserveInterToken(now - c.last_token_s);
    }
    c.last_token_s = now;
    api::Choice delta;
    delta.index = c.choice.index;
    delta.text = ev.text;
    delta.has_logprobs = logprobs_;
    delta.has_token_ids = token_ids_;
    if (token_ids_) delta.token_ids.push_back(ev.token);
    if (logprobs_) {
      const tokenizer::Tokenizer& tok = server_->engine.tokenizer();
      api::LogprobEntry e;
      e.token = tok.DecodeToken(ev.token, c.prev_token);
      e.text_offset = static_cast<int32_t>(c.choice.text.size());
      if (ev.logprobs) {
        e.logprob = ev.logprobs->chosen;
        for (const sampling::TokenLogprob& t : ev.logprobs->top) {
          e.top.push_back({tok.DecodeToken(t.id, c.prev_token), t.logprob});
        }
      }
      delta.logprobs.push_back(std::move(e));
    }
    c.prev_token = ev.token;
    if (stream_) {
      if (!delta.text.empty() || logprobs_ || token_ids_) Send(delta, false);
    } else {
      c.choice.text += delta.text;
      for (auto& e : delta.logprobs) c.choice.logprobs.push_back(std::move(e));
      for (int32_t t : delta.token_ids) c.choice.token_ids.push_back(t);
    }
  }

  void OnFinish(int i, const FinishEvent& ev) {
    ChoiceState& c = choices_[i];
    if (c.finished) return;
    c.finished = true;
    remaining_--;
    if (done_) return;
    if (!ev.status.ok()) {
      return Fail(api::ErrorFromStatus(ev.status, server_->options.retry_after_s));
    }
    if (i == 0) {
      usage_.prompt_tokens = ev.prompt_tokens;
      usage_.cached_tokens = ev.cached_tokens;
    }
    usage_.completion_tokens += ev.completion_tokens;
    std::string reason(sampling::FinishReasonName(ev.reason));
    if (stream_) {
      api::Choice last;
      last.index = c.choice.index;
      last.text = ev.tail_text;
      last.finish_reason = reason;
      Send(last, false);
    } else {
      c.choice.text += ev.tail_text;
      c.choice.finish_reason = reason;
    }
    if (remaining_ > 0) return;
    done_ = true;
    server_->metrics.AddTokens(usage_.prompt_tokens, usage_.completion_tokens,
                               usage_.cached_tokens);
    if (stream_) {
      if (include_usage_) writer_->Write(api::SseEvent(api::UsageChunkJson(head_, usage_)));
      writer_->Write(std::string(api::kSseDone));
      writer_->End();
    } else {
      std::vector<api::Choice> out;
      for (auto& s : choices_) out.push_back(std::move(s.choice));
      server_->Reply(endpoint_name_, writer_,
                     JsonResponse(200, api::ResponseJson(head_, out, usage_)));
    }
  }

 private:
  void Send(const api::Choice& choice, bool role) {
    writer_->Write(api::SseEvent(api::ChunkJson(head_, choice, role, include_usage_)));
  }

  // An engine failure: cancel the other choices; the error goes as the answer, or mid-stream as
  // an error event before [DONE].
  void Fail(const api::ApiError& e) {
    done_ = true;
    for (auto& c : choices_) {
      if (!c.finished) server_->engine.Cancel(c.id);
    }
    if (stream_) {
      writer_->Write(absl::StrCat("data: ", api::ErrorJson(e), "\n\n"));
      writer_->Write(std::string(api::kSseDone));
      writer_->End();
    } else {
      server_->ReplyError(endpoint_name_, writer_, e);
    }
  }

  EngineServer::State* server_;
  std::shared_ptr<http::ResponseWriter> writer_;
  std::string endpoint_name_;
  api::ResponseHead head_;
  bool stream_;
  bool include_usage_;
  bool logprobs_;
  bool token_ids_;
  double start_s_;
  std::vector<ChoiceState> choices_;
  int remaining_ = 0;
  bool first_token_seen_ = false;
  bool done_ = false;  // answered, failed or the client is gone: later events are dropped
  api::Usage usage_;
};

// Forwards one choice's engine events (engine thread) to the Completion's strand.
class ChoiceSink : public EventSink {
 public:
  ChoiceSink(std::shared_ptr<Completion> c, int index, std::shared_ptr<http::ResponseWriter> w)
      : c_(std::move(c)), index_(index), w_(std::move(w)) {}
  void OnToken(const TokenEvent& event) override {
    w_->Post([c = c_, i = index_, event] { c->OnToken(i, event); });
  }
  void OnFinish(const FinishEvent& event) override {
    w_->Post([c = c_, i = index_, event] { c->OnFinish(i, event); });
  }

 private:
  std::shared_ptr<Completion> c_;
  int index_;
  std::shared_ptr<http::ResponseWriter> w_;
};

}  // namespace

void EngineServer::State::HandleCompletion(Endpoint endpoint, const http::Request& http_req,
                                           std::shared_ptr<http::ResponseWriter> w) {
  const std::string endpoint_name = http_req.path;
  const bool chat = endpoint == Endpoint::kChatCompletions;
  absl::StatusOr<api::CompletionRequest> parsed =
      api::ParseCompletionRequest(http_req.body, endpoint);
  if (!parsed.ok()) return ReplyError(endpoint_name, w, api::ErrorFromStatus(parsed.status()));
  api::CompletionRequest& req = *parsed;

  absl::StatusOr<std::string> adapter = ResolveModel(req.model);
  if (!adapter.ok()) return ReplyError(endpoint_name, w, NotFoundModel(req.model));

  const tokenizer::Tokenizer& tok = engine.tokenizer();
  std::vector<int32_t> prompt;
  if (chat) {
    absl::StatusOr<std::string> text = RenderChat(req);
    if (!text.ok()) return ReplyError(endpoint_name, w, api::ErrorFromStatus(text.status()));
    prompt = EncodeChat(*text);
  } else if (req.prompt_is_tokens) {
    prompt = req.prompt_tokens;
    for (int32_t t : prompt) {
      if (t >= tok.vocab_size()) {
        return ReplyError(endpoint_name, w,
                          api::ErrorFromStatus(
                              api::InvalidParam("prompt", absl::StrCat("token id ", t,
                                                                       " is outside the vocabulary "
                                                                       "of ",
                                                                       tok.vocab_size()))));
      }
    }
  } else {
    tokenizer::EncodeOptions eo;
    eo.add_bos = tok.add_bos_default();
    eo.parse_special = true;
    prompt = tok.Encode(req.prompt, eo);
  }
  if (prompt.empty()) {
    return ReplyError(endpoint_name, w,
                      api::ErrorFromStatus(api::InvalidParam("prompt", "the prompt is empty")));
  }
  const int64_t context_needed = static_cast<int64_t>(prompt.size() + req.resume_tokens.size());
  if (context_needed >= engine.n_ctx()) {
    api::ApiError e = api::ErrorFromStatus(absl::OutOfRangeError(
        absl::StrCat("This model's maximum context length is ", engine.n_ctx(),
                     " tokens, but the prompt has ", context_needed, " tokens")));
    e.param = chat ? "messages" : "prompt";
    return ReplyError(endpoint_name, w, e);
  }

  sampling::SamplingParams sp;
  sp.temperature = req.temperature.value_or(1.0f);
  sp.top_p = req.top_p.value_or(1.0f);
  sp.top_k = std::max(0, req.top_k.value_or(0));
  sp.min_p = req.min_p.value_or(0.0f);
  sp.repetition_penalty = req.repetition_penalty.value_or(1.0f);
  sp.frequency_penalty = req.frequency_penalty.value_or(0.0f);
  sp.presence_penalty = req.presence_penalty.value_or(0.0f);
  sp.logit_bias = req.logit_bias;
  sp.max_tokens = req.max_tokens.value_or(chat ? options.default_chat_max_tokens
                                               : options.default_completion_max_tokens);
  sp.min_tokens = req.min_tokens;
  sp.ignore_eos = req.ignore_eos;
  sp.stop = req.stop;
  sp.top_logprobs = req.logprobs ? req.top_logprobs : 0;
  if (absl::Status s = sp.Validate(tok.vocab_size()); !s.ok()) {
    return ReplyError(endpoint_name, w,
                      api::ErrorFromStatus(api::InvalidParam("", std::string(s.message()))));
  }
  // n > 1 without a seed: distinct seeds from one random base, so choices differ.
  uint64_t seed = req.seed.has_value() ? *req.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull;

  api::ResponseHead head{endpoint, api::NewCompletionId(endpoint), UnixSeconds(),
                         req.model.empty() ? model_id : req.model};
  auto completion = std::make_shared<Completion>(this, w, endpoint_name, head, req, prompt.back());
  std::weak_ptr<Completion> weak = completion;
  w->OnCancel([weak] {
    if (auto c = weak.lock()) c->OnClientGone();
  });
  for (int i = 0; i < completion->n(); ++i) {
    EngineRequest er;
    er.id = completion->id(i);
    er.prompt = prompt;
    er.adapter = *adapter;
    er.sampling = sp;
    er.sampling.seed = seed + static_cast<uint64_t>(i);
    er.resume = req.resume_tokens;
    er.priority = req.batch_priority ? engine::Priority::kBatch : engine::Priority::kInteractive;
    er.client = req.user.empty() ? http_req.remote.substr(0, http_req.remote.rfind(':')) : req.user;
    er.logprobs = req.logprobs;
    absl::Status s = engine.Submit(std::move(er), std::make_shared<ChoiceSink>(completion, i, w));
    if (!s.ok()) {
      for (int j = 0; j < i; ++j) engine.Cancel(completion->id(j));
      api::ApiError e = api::ErrorFromStatus(s, options.retry_after_s);
      if (s.code() == absl::StatusCode::kNotFound) e.param = "model";
      // Events of the cancelled choices still arrive; the Completion drops them.
      completion->Abandon();
      return ReplyError(endpoint_name, w, e);
    }
  }
  completion->Begin();
}

void EngineServer::State::HandleRender(const http::Request& http_req,
                                       std::shared_ptr<http::ResponseWriter> w) {
  const std::string endpoint_name = http_req.path;
  absl::StatusOr<api::CompletionRequest> parsed =
      api::ParseCompletionRequest(http_req.body, Endpoint::kChatCompletions);
  if (!parsed.ok()) return ReplyError(endpoint_name, w, api::ErrorFromStatus(parsed.status()));
  if (!ResolveModel(parsed->model).ok()) {
    return ReplyError(endpoint_name, w, NotFoundModel(parsed->model));
  }
  absl::StatusOr<std::string> text = RenderChat(*parsed);
  if (!text.ok()) return ReplyError(endpoint_name, w, api::ErrorFromStatus(text.status()));
  json body = {{"prompt", *text}, {"tokens", EncodeChat(*text)}};
  Reply(endpoint_name, w, JsonResponse(200, body));
}

void EngineServer::State::Register() {
  http->Handle("POST", "/v1/completions", [this](const http::Request& r, auto w) {
    HandleCompletion(Endpoint::kCompletions, r, std::move(w));
  });
  http->Handle("POST", "/v1/chat/completions", [this](const http::Request& r, auto w) {
    HandleCompletion(Endpoint::kChatCompletions, r, std::move(w));
  });
  http->Handle("POST", "/weft/v1/render",
               [this](const http::Request& r, auto w) { HandleRender(r, std::move(w)); });
  http->Handle("GET", "/v1/models", [this](const http::Request& r, auto w) {
    json data = json::array();
    auto entry = [&](const std::string& id, const char* parent) {
      json m = {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "weft"}};
      if (parent != nullptr) m["parent"] = parent;
      data.push_back(std::move(m));
    };
    entry(model_id, nullptr);
    for (const std::string& a : engine.Load().adapters) {
      entry(absl::StrCat(model_id, ":", a), model_id.c_str());
    }
    for (const auto& [alias, adapter] : options.aliases) entry(alias, model_id.c_str());
    Reply(r.path, w, JsonResponse(200, json{{"object", "list"}, {"data", std::move(data)}}));
  });
  http->Handle("GET", "/health", [this](const http::Request& r, auto w) {
    bool ok = ready.load();
    Reply(r.path, w, JsonResponse(ok ? 200 : 503, json{{"status", ok ? "ok" : "unavailable"}}));
  });
  http->Handle("GET", "/metrics", [this](const http::Request& r, auto w) {
    http::Response resp;
    resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp.body = metrics.Render(engine.Load());
    Reply(r.path, w, std::move(resp));
  });
  http->Handle("GET", "/weft/v1/load", [this](const http::Request& r, auto w) {
    LoadReport l = engine.Load();
    api::LoadReport w_report;
    w_report.model = model_id;
    w_report.ready = ready.load();
    w_report.running = l.running;
    w_report.waiting = l.waiting;
    w_report.tokens_in_flight = l.tokens_in_flight;
    w_report.kv_blocks_total = l.kv_blocks_total;
    w_report.kv_blocks_free = l.kv_blocks_free;
    w_report.kv_block_size = l.kv_block_size;
    w_report.prefill_tokens_per_s = l.prefill_tokens_per_s;
    w_report.decode_tokens_per_s = l.decode_tokens_per_s;
    w_report.adapters = std::move(l.adapters);
    w_report.prefix_digest = std::move(l.prefix_digest);
    w_report.prefix_hit_tokens = l.prefix_hit_tokens;
    w_report.step_count = l.step_count;
    const RecentLatency::Summary ttft = metrics.RecentTtft();
    w_report.ttft_p95_ms = ttft.p95_ms;
    w_report.ttft_samples = ttft.samples;
    Reply(r.path, w, JsonResponse(200, api::LoadReportJson(w_report)));
  });
  http->Handle("POST", "/weft/v1/adapters", [this](const http::Request& r, auto w) {
    const std::string endpoint = r.path;
    json body = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.contains("name") || !body["name"].is_string() ||
        !body.contains("path") || !body["path"].is_string()) {
      return ReplyError(endpoint, w,
                        api::ErrorFromStatus(api::InvalidParam(
                            "", "body must be {\"name\": string, \"path\": string}")));
    }
    std::string name = body["name"], path = body["path"];
    PostTask([this, w, name, path, endpoint] {
      absl::Status s = engine.LoadAdapter(name, path);
      if (!s.ok()) {
        api::ApiError e = api::ErrorFromStatus(s);
        if (s.code() == absl::StatusCode::kAlreadyExists) e.status = 409;
        if (s.code() == absl::StatusCode::kNotFound) e.code = "adapter_not_found";
        return ReplyError(endpoint, w, e);
      }
      Reply(endpoint, w,
            JsonResponse(200, json{{"name", name},
                                   {"model", absl::StrCat(model_id, ":", name)},
                                   {"loaded", true}}));
    });
  });
  http->Handle("DELETE", "/weft/v1/adapters/{name}", [this](const http::Request& r, auto w) {
    std::string name = r.params.at("name");
    std::string endpoint = "/weft/v1/adapters/{name}";
    PostTask([this, w, name, endpoint] {
      absl::Status s = engine.UnloadAdapter(name);
      if (!s.ok()) {
        api::ApiError e = api::ErrorFromStatus(s);
        if (s.code() == absl::StatusCode::kNotFound) e.code = "adapter_not_found";
        return ReplyError(endpoint, w, e);
      }
      Reply(endpoint, w, JsonResponse(200, json{{"name", name}, {"loaded", false}}));
    });
  });
}

absl::StatusOr<std::unique_ptr<EngineServer>> EngineServer::Create(Engine& engine,
                                                                   ServerOptions options) {
  auto state = std::make_shared<State>(engine, std::move(options));
  state->model_id = state->options.model_id.empty() ? engine.model_id() : state->options.model_id;
  std::string_view source = state->options.chat_template.empty()
                                ? tokenizer::DefaultChatTemplate()
                                : std::string_view(state->options.chat_template);
  absl::StatusOr<tokenizer::ChatTemplate> tmpl = tokenizer::ChatTemplate::Parse(source);
  if (!tmpl.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", tmpl.status().message()));
  }
  state->chat_template.emplace(*std::move(tmpl));

  http::ServerOptions ho;
  ho.host = state->options.host;
  ho.port = state->options.port;
  ho.threads = state->options.threads;
  ho.max_body_bytes = state->options.max_body_bytes;
  ho.header_timeout_s = state->options.header_timeout_s;
  ho.idle_timeout_s = state->options.idle_timeout_s;
  ho.write_timeout_s = state->options.write_timeout_s;
  State* raw = state.get();
  ho.error_response = [raw](int status, std::string message) {
    api::ApiError e;
    e.status = status;
    e.message = std::move(message);
    if (status >= 500) e.type = "server_error";
    http::Response r = ErrorResponse(e);
    raw->metrics.CountRequest("other", status);
    return r;
  };
  state->http = std::make_unique<http::HttpServer>(std::move(ho));
  state->Register();
  return std::unique_ptr<EngineServer>(new EngineServer(std::move(state)));
}

EngineServer::EngineServer(std::shared_ptr<State> state) : state_(std::move(state)) {}

EngineServer::~EngineServer() { Stop(0); }

absl::Status EngineServer::Start() {
  state_->worker = std::thread([s = state_.get()] { s->RunWorker(); });
  return state_->http->Start();
}

uint16_t EngineServer::port() const { return state_->http->port(); }

void EngineServer::SetReady(bool ready) { state_->ready = ready; }

const std::string& EngineServer::model_id() const { return state_->model_id; }

void EngineServer::Stop(double deadline_s) {
  state_->ready = false;
  state_->http->Stop(deadline_s);
  {
    std::lock_guard lock(state_->mu);
    state_->stop_worker = true;
  }
  state_->cv.notify_all();
  if (state_->worker.joinable()) state_->worker.join();
}

}  // namespace weft::engine
