// SPDX-License-Identifier: Apache-2.0
// OpenAI wire types for POST /v1/completions and /v1/chat/completions: request parsing and
// validation (wrong types answered by name, unknown fields tolerated), and the exact response, SSE
// chunk and error shapes. Plain values and pure functions: no engine or tokenizer dependency, safe
// from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace weft::api {

enum class Endpoint { kCompletions, kChatCompletions };

// One parsed completion or chat completion request. Optional fields are unset when the client
// omitted them or sent null; the engine server applies its defaults.
struct CompletionRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;  // "" when omitted

  // /v1/completions: `prompt` is a string, a one-element array of a string, or an array of token
  // ids (pre-tokenized, used as is). Several prompts in one request are not supported (400).
  std::string prompt;
  std::vector<int32_t> prompt_tokens;
  bool prompt_is_tokens = false;

  // /v1/chat/completions: [{"role", "content", ...}], content normalized to a string (text parts
  // joined), other message fields kept for the chat template.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  bool add_generation_prompt = true;  // vLLM extension
  nlohmann::ordered_json tools;       // passed to the template when present; null otherwise

  std::optional<int32_t> max_tokens;  // max_completion_tokens when both are given
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int32_t> top_k;
  std::optional<float> min_p;
  std::optional<float> frequency_penalty;
  std::optional<float> presence_penalty;
  std::optional<float> repetition_penalty;
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> bias
  std::optional<uint64_t> seed;                       // int64 on the wire, two's complement
  std::vector<std::string> stop;
  int32_t n = 1;             // choices, 1..kMaxN
  bool logprobs = false;     // chat: logprobs; completions: logprobs present
  int32_t top_logprobs = 0;  // chat: top_logprobs; completions: the logprobs integer
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string user;
  bool ignore_eos = false;
  int32_t min_tokens = 0;
  bool batch_priority = false;  // `priority`: "batch" (or a vLLM integer > 0) vs interactive
  std::vector<int32_t> resume_tokens;  // weft_resume.tokens: already sent to the client
  // vLLM's return_token_ids: each choice (and each streamed chunk) carries "token_ids", the ids
  // of the tokens it covers; a gateway resuming a stream needs them for weft_resume.
  bool return_token_ids = false;
};

inline constexpr int32_t kMaxN = 128;
inline constexpr int32_t kMaxTopLogprobs = 20;

// Parses and validates a request body. Errors are InvalidArgument with a client-facing message
// ("'temperature' must be a number"); ErrorParam() gives the offending field ("" for the body).
absl::StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body, Endpoint endpoint);
// The same for a body already parsed (a proxy that keeps the JSON to forward it).
absl::StatusOr<CompletionRequest> ParseCompletionRequestJson(const nlohmann::ordered_json& body,
                                                             Endpoint endpoint);
std::string ErrorParam(const absl::Status& status);
// InvalidArgument naming `param` (readable back with ErrorParam).
absl::Status InvalidParam(std::string_view param, std::string_view message);

// An OpenAI error answer: {"error": {"message", "type", "param", "code"}} with its HTTP status.
struct ApiError {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::string param;      // "" -> null
  std::string code;       // "" -> null
  int retry_after_s = 0;  // > 0: a Retry-After header goes with it
};
std::string ErrorJson(const ApiError& error);
// The usual mapping of a Status to an error: InvalidArgument 400, NotFound 404 (model_not_found),
// OutOfRange 413 (context_length_exceeded), ResourceExhausted 429 (rate_limit_exceeded,
// Retry-After), Unavailable 503 (Retry-After), others 500.
ApiError ErrorFromStatus(const absl::Status& status, int retry_after_s = 1);

// ---- responses ----

struct TopLogprob {
  std::string token;  // token text (may be a partial UTF-8 sequence)
  float logprob = 0;
};
struct LogprobEntry {
  std::string token;
  float logprob = 0;
  std::vector<TopLogprob> top;
  int32_t text_offset = 0;  // completions: offset of the token's text in the choice text
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;
};

struct Choice {
  int32_t index = 0;
  std::string text;           // completions text, or the chat message content
  std::string finish_reason;  // "stop", "length"; "" = null (still running)
  bool has_logprobs = false;  // false -> "logprobs": null
  std::vector<LogprobEntry> logprobs;
  bool has_token_ids = false;  // true -> "token_ids": [...] (return_token_ids)
  std::vector<int32_t> token_ids;
};

struct ResponseHead {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;       // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
};

// A fresh id: "cmpl-" / "chatcmpl-" + 24 random alphanumerics.
std::string NewCompletionId(Endpoint endpoint);

// The whole (non-streamed) response: object "text_completion" or "chat.completion".
nlohmann::ordered_json ResponseJson(const ResponseHead& head, const std::vector<Choice>& choices,
                                    const Usage& usage);
// One streamed chunk for one choice ("text_completion" / "chat.completion.chunk"). Chat: `role`
// puts "role": "assistant" in the delta; a choice with a finish_reason has an empty delta when its
// text is empty. `usage_null` adds "usage": null (stream_options.include_usage).
nlohmann::ordered_json ChunkJson(const ResponseHead& head, const Choice& choice, bool role,
                                 bool usage_null);
// The final usage chunk of a stream with include_usage: "choices": [] and "usage".
nlohmann::ordered_json UsageChunkJson(const ResponseHead& head, const Usage& usage);
nlohmann::ordered_json UsageJson(const Usage& usage);

// "data: <json>\n\n" (invalid UTF-8 replaced), and the terminator "data: [DONE]\n\n".
std::string SseEvent(const nlohmann::ordered_json& json);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";
// JSON text with invalid UTF-8 replaced by U+FFFD (never throws).
std::string Dump(const nlohmann::ordered_json& json);

}  // namespace weft::api
