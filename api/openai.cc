// SPDX-License-Identifier: Apache-2.0
#include "api/openai.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <random>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "api/json_number.h"

namespace weft::api {
namespace {

using json = nlohmann::ordered_json;

constexpr char kParamPayload[] = "weft.dev/openai-param";

const json* Get(const json& obj, const char* key) {
  // As a string_view the key compares by length first: most members are not the one looked for.
  auto it = obj.find(std::string_view(key));
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status TypeError(const char* key, const char* what) {
  return InvalidParam(key, absl::StrCat("'", key, "' must be ", what));
}

absl::Status GetBool(const json& obj, const char* key, bool* out) {
  const json* v = Get(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return TypeError(key, "a boolean");
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status GetString(const json& obj, const char* key, std::string* out) {
  const json* v = Get(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return TypeError(key, "a string");
  *out = v->get<std::string>();
  return absl::OkStatus();
}

bool AsInt64(const json& v, int64_t* out) {
  const std::optional<int64_t> x = JsonInteger<int64_t>(v);
  if (x) *out = *x;
  return x.has_value();
}

absl::Status GetInt(const json& obj, const char* key, int64_t lo, int64_t hi,
                    std::optional<int32_t>* out) {
  const json* v = Get(obj, key);
  if (v == nullptr) return absl::OkStatus();
  int64_t x;
  if (!AsInt64(*v, &x)) return TypeError(key, "an integer");
  if (x < lo || x > hi) {
    return InvalidParam(key, absl::StrCat("'", key, "' must be between ", lo, " and ", hi));
  }
  *out = static_cast<int32_t>(x);
  return absl::OkStatus();
}

absl::Status GetFloat(const json& obj, const char* key, std::optional<float>* out) {
  const json* v = Get(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number()) return TypeError(key, "a number");
  double d = v->get<double>();
  if (!std::isfinite(d)) return TypeError(key, "a finite number");
  *out = static_cast<float>(d);
  return absl::OkStatus();
}

absl::Status GetTokenIds(const json& arr, const char* key, std::vector<int32_t>* out) {
  out->clear();
  for (const json& t : arr) {
    int64_t x;
    if (!AsInt64(t, &x) || x < 0 || x > std::numeric_limits<int32_t>::max()) {
      return InvalidParam(key, absl::StrCat("'", key, "' must be an array of token ids"));
    }
    out->push_back(static_cast<int32_t>(x));
  }
  return absl::OkStatus();
}

// Chat content: a string, null, or an array of {"type": "text", "text": ...} parts (joined).
absl::Status NormalizeContent(json* message, size_t index) {
  std::string param = absl::StrCat("messages[", index, "].content");
  auto it = message->find("content");
  if (it == message->end() || it->is_null()) {
    (*message)["content"] = "";
    return absl::OkStatus();
  }
  if (it->is_string()) return absl::OkStatus();
  if (!it->is_array()) return InvalidParam(param, "'" + param + "' must be a string or an array");
  std::string text;
  for (const json& part : *it) {
    if (!part.is_object()) return InvalidParam(param, "'" + param + "' parts must be objects");
    const json* type = Get(part, "type");
    if (type == nullptr || !type->is_string()) {
      return InvalidParam(param, "'" + param + "' parts need a string 'type'");
    }
    if (type->get<std::string>() != "text") {
      return InvalidParam(param, absl::StrCat("content part type '", type->get<std::string>(),
                                              "' is not supported (only 'text')"));
    }
    const json* t = Get(part, "text");
    if (t == nullptr || !t->is_string()) {
      return InvalidParam(param, "'" + param + "' text parts need a string 'text'");
    }
    text += t->get<std::string>();
  }
  *it = text;
  return absl::OkStatus();
}

absl::Status ParseMessages(const json& body, CompletionRequest* req) {
  const json* m = Get(body, "messages");
  if (m == nullptr) return InvalidParam("messages", "'messages' is required");
  if (!m->is_array()) return TypeError("messages", "an array");
  if (m->empty()) return InvalidParam("messages", "'messages' must not be empty");
  req->messages = json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    json msg = (*m)[i];
    std::string param = absl::StrCat("messages[", i, "]");
    if (!msg.is_object()) return InvalidParam(param, "'" + param + "' must be an object");
    const json* role = Get(msg, "role");
    if (role == nullptr || !role->is_string()) {
      return InvalidParam(param + ".role", "'" + param + ".role' must be a string");
    }
    if (absl::Status s = NormalizeContent(&msg, i); !s.ok()) return s;
    req->messages.push_back(std::move(msg));
  }
  return absl::OkStatus();
}

absl::Status ParsePrompt(const json& body, CompletionRequest* req) {
  const json* p = Get(body, "prompt");
  if (p == nullptr) return InvalidParam("prompt", "'prompt' is required");
  if (p->is_string()) {
    req->prompt = p->get<std::string>();
    return absl::OkStatus();
  }
  if (!p->is_array()) {
    return InvalidParam("prompt", "'prompt' must be a string or an array of token ids");
  }
  if (p->size() == 1 && (*p)[0].is_string()) {
    req->prompt = (*p)[0].get<std::string>();
    return absl::OkStatus();
  }
  if (!p->empty() && ((*p)[0].is_string() || (*p)[0].is_array())) {
    return InvalidParam("prompt", "several prompts in one request are not supported");
  }
  if (p->empty()) return InvalidParam("prompt", "'prompt' must not be an empty array");
  req->prompt_is_tokens = true;
  return GetTokenIds(*p, "prompt", &req->prompt_tokens);
}

absl::Status ParseFields(const json& body, CompletionRequest* req) {
  const bool chat = req->endpoint == Endpoint::kChatCompletions;
  if (absl::Status s = GetString(body, "model", &req->model); !s.ok()) return s;
  if (chat) {
    if (absl::Status s = ParseMessages(body, req); !s.ok()) return s;
    if (const json* k = Get(body, "chat_template_kwargs")) {
      if (!k->is_object()) return TypeError("chat_template_kwargs", "an object");
      req->chat_template_kwargs = *k;
    }
    if (absl::Status s = GetBool(body, "add_generation_prompt", &req->add_generation_prompt);
        !s.ok()) {
      return s;
    }
    if (const json* t = Get(body, "tools")) {
      if (!t->is_array()) return TypeError("tools", "an array");
      req->tools = *t;
    }
  } else {
    if (absl::Status s = ParsePrompt(body, req); !s.ok()) return s;
  }

  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  if (absl::Status s = GetInt(body, "max_tokens", 1, kIntMax, &req->max_tokens); !s.ok()) return s;
  if (absl::Status s = GetInt(body, "max_completion_tokens", 1, kIntMax, &req->max_tokens);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = GetFloat(body, "temperature", &req->temperature); !s.ok()) return s;
  if (req->temperature && *req->temperature < 0) {
    return InvalidParam("temperature", "'temperature' must be at least 0");
  }
  if (absl::Status s = GetFloat(body, "top_p", &req->top_p); !s.ok()) return s;
  if (absl::Status s = GetInt(body, "top_k", -1, kIntMax, &req->top_k); !s.ok()) return s;
  if (absl::Status s = GetFloat(body, "min_p", &req->min_p); !s.ok()) return s;
  if (absl::Status s = GetFloat(body, "frequency_penalty", &req->frequency_penalty); !s.ok()) {
    return s;
  }
  if (absl::Status s = GetFloat(body, "presence_penalty", &req->presence_penalty); !s.ok()) {
    return s;
  }
  if (absl::Status s = GetFloat(body, "repetition_penalty", &req->repetition_penalty); !s.ok()) {
    return s;
  }
  if (const json* lb = Get(body, "logit_bias")) {
    if (!lb->is_object()) return TypeError("logit_bias", "an object of token id -> number");
    for (const auto& [key, value] : lb->items()) {
      int32_t id = -1;
      auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
      if (ec != std::errc() || ptr != key.data() + key.size() || id < 0) {
        return InvalidParam("logit_bias",
                            absl::StrCat("'logit_bias' key '", key, "' is not a token id"));
      }
      if (!value.is_number() || !std::isfinite(value.get<double>())) {
        return InvalidParam("logit_bias", "'logit_bias' values must be numbers");
      }
      req->logit_bias.emplace_back(id, value.get<float>());
    }
  }
  if (const json* seed = Get(body, "seed")) {
    int64_t x;
    if (seed->is_number_unsigned()) {
      req->seed = seed->get<uint64_t>();
    } else if (AsInt64(*seed, &x)) {
      req->seed = static_cast<uint64_t>(x);
    } else {
      return TypeError("seed", "an integer");
    }
  }
  if (const json* stop = Get(body, "stop")) {
    if (stop->is_string()) {
      req->stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const json& s : *stop) {
        if (!s.is_string()) return TypeError("stop", "a string or an array of strings");
        req->stop.push_back(s.get<std::string>());
      }
    } else {
      return TypeError("stop", "a string or an array of strings");
    }
    for (const std::string& s : req->stop) {
      if (s.empty()) return InvalidParam("stop", "'stop' strings must not be empty");
    }
  }
  std::optional<int32_t> n;
  if (absl::Status s = GetInt(body, "n", 1, kMaxN, &n); !s.ok()) return s;
  if (n) req->n = *n;

  if (chat) {
    if (absl::Status s = GetBool(body, "logprobs", &req->logprobs); !s.ok()) return s;
    std::optional<int32_t> top;
    if (absl::Status s = GetInt(body, "top_logprobs", 0, kMaxTopLogprobs, &top); !s.ok()) return s;
    if (top) {
      if (!req->logprobs) {
        return InvalidParam("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
      }
      req->top_logprobs = *top;
    }
  } else {
    std::optional<int32_t> lp;
    if (absl::Status s = GetInt(body, "logprobs", 0, kMaxTopLogprobs, &lp); !s.ok()) return s;
    if (lp) {
      req->logprobs = true;
      req->top_logprobs = *lp;
    }
  }
  if (absl::Status s = GetBool(body, "stream", &req->stream); !s.ok()) return s;
  if (const json* so = Get(body, "stream_options")) {
    if (!so->is_object()) return TypeError("stream_options", "an object");
    if (!req->stream) {
      return InvalidParam("stream_options",
                          "'stream_options' is only allowed when 'stream' is true");
    }
    if (const json* iu = Get(*so, "include_usage")) {
      if (!iu->is_boolean()) {
        return InvalidParam("stream_options.include_usage",
                            "'stream_options.include_usage' must be a boolean");
      }
      req->include_usage = iu->get<bool>();
    }
  }
  if (absl::Status s = GetString(body, "user", &req->user); !s.ok()) return s;
  if (absl::Status s = GetBool(body, "ignore_eos", &req->ignore_eos); !s.ok()) return s;
  if (absl::Status s = GetBool(body, "return_token_ids", &req->return_token_ids); !s.ok()) {
    return s;
  }
  std::optional<int32_t> min_tokens;
  if (absl::Status s = GetInt(body, "min_tokens", 0, kIntMax, &min_tokens); !s.ok()) return s;
  if (min_tokens) req->min_tokens = *min_tokens;
  // Scheduling class: "interactive" (default) or "batch"; vLLM's integer `priority` is accepted
  // too (0 or less: interactive; above 0: batch, as a larger value means later there).
  if (const json* pr = Get(body, "priority")) {
    if (pr->is_string() && (*pr == "interactive" || *pr == "batch")) {
      req->batch_priority = *pr == "batch";
    } else if (pr->is_number_integer()) {
      req->batch_priority = pr->get<int64_t>() > 0;
    } else {
      return InvalidParam("priority",
                          "'priority' must be \"interactive\", \"batch\" or an integer");
    }
  }
  if (const json* r = Get(body, "weft_resume")) {
    if (!r->is_object()) return TypeError("weft_resume", "an object");
    const json* t = Get(*r, "tokens");
    if (t == nullptr || !t->is_array()) {
      return InvalidParam("weft_resume.tokens",
                          "'weft_resume.tokens' must be an array of token ids");
    }
    if (absl::Status s = GetTokenIds(*t, "weft_resume.tokens", &req->resume_tokens); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

json LogprobsJson(Endpoint endpoint, const Choice& c) {
  if (!c.has_logprobs) return nullptr;
  if (endpoint == Endpoint::kChatCompletions) {
    auto bytes = [](const std::string& s) {
      json b = json::array();
      for (unsigned char ch : s) b.push_back(static_cast<int>(ch));
      return b;
    };
    json content = json::array();
    for (const LogprobEntry& e : c.logprobs) {
      json top = json::array();
      for (const TopLogprob& t : e.top) {
        top.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes(t.token)}});
      }
      content.push_back({{"token", e.token},
                         {"logprob", e.logprob},
                         {"bytes", bytes(e.token)},
                         {"top_logprobs", std::move(top)}});
    }
    return {{"content", std::move(content)}, {"refusal", nullptr}};
  }
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();
  for (const LogprobEntry& e : c.logprobs) {
    tokens.push_back(e.token);
    token_logprobs.push_back(e.logprob);
    json alts = json::object();
    for (const TopLogprob& t : e.top) alts[t.token] = t.logprob;
    top.push_back(std::move(alts));
    offsets.push_back(e.text_offset);
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top)},
          {"text_offset", std::move(offsets)}};
}

json FinishJson(const std::string& reason) {
  if (reason.empty()) return nullptr;
  return reason;
}

json HeadJson(const ResponseHead& head, const char* object) {
  return {{"id", head.id}, {"object", object}, {"created", head.created}, {"model", head.model}};
}

}  // namespace

absl::Status InvalidParam(std::string_view param, std::string_view message) {
  absl::Status s = absl::InvalidArgumentError(std::string(message));
  s.SetPayload(kParamPayload, absl::Cord(std::string(param)));
  return s;
}

std::string ErrorParam(const absl::Status& status) {
  auto p = status.GetPayload(kParamPayload);
  return p ? std::string(*p) : std::string();
}

absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body, Endpoint endpoint) {
  json parsed;
  try {
    parsed = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    return InvalidParam("", absl::StrCat("request body is not valid JSON: ", e.what()));
  }
  return ParseCompletionRequestJson(parsed, endpoint);
}

absl::StatusOr<CompletionRequest> ParseCompletionRequestJson(const json& parsed,
                                                             Endpoint endpoint) {
  if (!parsed.is_object()) return InvalidParam("", "request body must be a JSON object");
  CompletionRequest req;
  req.endpoint = endpoint;
  try {
    if (absl::Status s = ParseFields(parsed, &req); !s.ok()) return s;
  } catch (const json::exception& e) {  // defensive: a library corner we did not type-check
    return InvalidParam("", absl::StrCat("invalid request: ", e.what()));
  }
  return req;
}

std::string ErrorJson(const ApiError& error) {
  json e = {{"error",
             {{"message", error.message},
              {"type", error.type},
              {"param", error.param.empty() ? json(nullptr) : json(error.param)},
              {"code", error.code.empty() ? json(nullptr) : json(error.code)}}}};
  return Dump(e);
}

ApiError ErrorFromStatus(const absl::Status& status, int retry_after_s) {
  ApiError e;
  e.message = std::string(status.message());
  e.param = ErrorParam(status);
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      e.status = 400;
      break;
    case absl::StatusCode::kNotFound:
      e.status = 404;
      e.code = "model_not_found";
      break;
    case absl::StatusCode::kOutOfRange:
      e.status = 413;
      e.code = "context_length_exceeded";
      break;
    case absl::StatusCode::kResourceExhausted:
      e.status = 429;
      e.type = "rate_limit_error";
      e.code = "rate_limit_exceeded";
      e.retry_after_s = retry_after_s;
      break;
    case absl::StatusCode::kUnavailable:
      e.status = 503;
      e.type = "server_error";
      e.code = "service_unavailable";
      e.retry_after_s = retry_after_s;
      break;
    default:
      e.status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

std::string NewCompletionId(Endpoint endpoint) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string id = endpoint == Endpoint::kChatCompletions ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return id;
}

json UsageJson(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens}}}};
}

json ResponseJson(const ResponseHead& head, const std::vector<Choice>& choices,
                  const Usage& usage) {
  const bool chat = head.endpoint == Endpoint::kChatCompletions;
  json out = HeadJson(head, chat ? "chat.completion" : "text_completion");
  json arr = json::array();
  for (const Choice& c : choices) {
    if (chat) {
      arr.push_back(
          {{"index", c.index},
           {"message", {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}}},
           {"logprobs", LogprobsJson(head.endpoint, c)},
           {"finish_reason", FinishJson(c.finish_reason)}});
    } else {
      arr.push_back({{"index", c.index},
                     {"text", c.text},
                     {"logprobs", LogprobsJson(head.endpoint, c)},
                     {"finish_reason", FinishJson(c.finish_reason)}});
    }
    if (c.has_token_ids) arr.back()["token_ids"] = c.token_ids;
  }
  out["choices"] = std::move(arr);
  out["usage"] = UsageJson(usage);
  return out;
}

json ChunkJson(const ResponseHead& head, const Choice& c, bool role, bool usage_null) {
  const bool chat = head.endpoint == Endpoint::kChatCompletions;
  json out = HeadJson(head, chat ? "chat.completion.chunk" : "text_completion");
  json choice;
  if (chat) {
    json delta = json::object();
    if (role) delta["role"] = "assistant";
    if (role || !c.text.empty() || c.finish_reason.empty()) delta["content"] = c.text;
    choice = {{"index", c.index},
              {"delta", std::move(delta)},
              {"logprobs", LogprobsJson(head.endpoint, c)},
              {"finish_reason", FinishJson(c.finish_reason)}};
  } else {
    choice = {{"index", c.index},
              {"text", c.text},
              {"logprobs", LogprobsJson(head.endpoint, c)},
              {"finish_reason", FinishJson(c.finish_reason)}};
  }
  if (c.has_token_ids) choice["token_ids"] = c.token_ids;
  out["choices"] = json::array({std::move(choice)});
  if (usage_null) out["usage"] = nullptr;
  return out;
}

json UsageChunkJson(const ResponseHead& head, const Usage& usage) {
  json out = HeadJson(head, head.endpoint == Endpoint::kChatCompletions ? "chat.completion.chunk"
                                                                        : "text_completion");
  out["choices"] = json::array();
  out["usage"] = UsageJson(usage);
  return out;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string SseEvent(const json& j) { return absl::StrCat("data: ", Dump(j), "\n\n"); }

}  // namespace weft::api
