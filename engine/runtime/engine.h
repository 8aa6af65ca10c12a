// SPDX-License-Identifier: Apache-2.0
// Engine: one replica's request intake. HTTP threads Submit tokenized requests and Cancel them;
// one engine thread runs continuous-batching steps over the model and delivers each request's
// events to its EventSink from that thread. Submit/Cancel/Load/adapters are thread-safe and never
// touch model state directly. Implementations: LlamaEngine (runtime/), FakeEngine (testing/).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/sampling/generation_limits.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/sampling_params.h"

namespace weft::tokenizer {
class Tokenizer;
}

namespace weft::engine {

enum class Priority { kInteractive, kBatch };

struct EngineRequest {
  std::string id;               // unique per request (the server's completion id + choice index)
  std::vector<int32_t> prompt;  // tokenized prompt, BOS included when the model wants it
  std::string adapter;          // LoRA adapter name; "" = the base model
  sampling::SamplingParams sampling;
  // weft_resume: tokens already sent to the client. They are appended to the context as if
  // generated (not returned again, counted in completion_tokens), and sampling continues from
  // generated index resume.size(), so greedy and seeded output equal the uninterrupted run.
  std::vector<int32_t> resume;
  Priority priority = Priority::kInteractive;
  std::string client;     // fairness key (API user, or the connection)
  bool logprobs = false;  // report the sampled token's logprob (+ top_logprobs)
};

// One generated token, with the text that became final with it (stop strings and incomplete
// UTF-8 held back, so `text` may be empty).
struct TokenEvent {
  int32_t token = -1;
  std::string text;
  std::optional<sampling::TokenLogprobs> logprobs;
};

struct FinishEvent {
  absl::Status status;  // OK, or why the request failed (model error, cancelled, shutdown)
  sampling::FinishReason reason = sampling::FinishReason::kLength;
  std::string tail_text;  // text released at the end (held-back text when no stop matched)
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;      // prompt tokens served from the prefix cache
  int32_t completion_tokens = 0;  // includes resumed tokens
  double ttft_seconds = 0;        // submit -> first generated token
};

// Receives one request's events, on the engine thread. Must not block for long (queue to the
// connection's own thread/strand instead).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnToken(const TokenEvent& event) = 0;
  virtual void OnFinish(const FinishEvent& event) = 0;  // exactly once, last
};

// The load report of DESIGN.md (GET /weft/v1/load). Cheap: a snapshot the engine thread publishes
// after each step.
struct LoadReport {
  int32_t running = 0;
  int32_t waiting = 0;
  int64_t tokens_in_flight = 0;  // prompt + generated tokens of running sequences
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_free = 0;       // free or evictable (cached, unreferenced)
  int32_t kv_block_size = 0;        // tokens per block
  double prefill_tokens_per_s = 0;  // recent (EWMA over steps)
  double decode_tokens_per_s = 0;
  std::vector<std::string> adapters;
  std::vector<uint64_t> prefix_digest;  // hashes of cached block-aligned prefixes (most recent)
  int64_t prefix_hit_tokens = 0;        // cumulative
  int64_t step_count = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // Queues a request. Errors (returned at once, no events follow): InvalidArgument (bad params,
  // token ids out of range), NotFound (unknown adapter), OutOfRange (prompt + resume do not fit the
  // context), ResourceExhausted (queue full: the server answers 429/503 with Retry-After),
  // Unavailable (shutting down).
  virtual absl::Status Submit(EngineRequest request, std::shared_ptr<EventSink> sink) = 0;
  // Cancels a request (client gone): frees its KV blocks within one step; OnFinish follows with a
  // Cancelled status unless it already finished. Unknown ids are ignored.
  virtual void Cancel(const std::string& request_id) = 0;
  virtual LoadReport Load() const = 0;

  // LoRA adapters, loaded and unloaded while traffic runs. NotFound / InvalidArgument name the
  // problem (file, incompatible shapes). Unload waits for no one: requests using the adapter
  // finish first; new ones get NotFound.
  virtual absl::Status LoadAdapter(const std::string& name, const std::string& path) = 0;
  virtual absl::Status UnloadAdapter(const std::string& name) = 0;

  // Stops admitting; running requests continue until done or the deadline, then are cancelled.
  // Blocks until the engine thread has stopped.
  virtual void Shutdown(double deadline_seconds) = 0;

  virtual const tokenizer::Tokenizer& tokenizer() const = 0;
  virtual int32_t n_ctx() const = 0;
  virtual std::string model_id() const = 0;
};

}  // namespace weft::engine
