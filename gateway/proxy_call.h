// SPDX-License-Identifier: Apache-2.0
// ProxyCall: the life of one client request inside the gateway, from the moment it is admitted
// (authenticated, within quota, its body validated) to its usage record. It sends the request to a
// replica the environment picks, relays the answer to the client, and:
//  - before the first byte reaches the client, retries elsewhere on a connect failure, a timeout, a
//    5xx or a 429 from the replica (as the retry budget allows);
//  - after it, MIGRATES a broken stream (reset, EOF, stall past Timeouts::stall_s, a malformed
//    event): it re-issues the request to another replica with `weft_resume.tokens` = the token ids
//    the client already has and the same seed (the gateway fixes one when the client gave none),
//    and continues the client's stream with no error and, for greedy or seeded sampling, the same
//    tokens. Chunks keep the first replica's id/created and the client's model name.
//  - with hedging on (ProxyEnv::hedge_after_s), races a second replica when the first has not
//    produced its first byte in time (unary: the response head; stream: the first event); the
//    first to produce wins and the other is cancelled;
//  - calls Env::finish once with the outcome BEFORE the final bytes go out (the ledger append), and
//    bills a client that went away for the tokens generated so far.
// Ownership and threads: Start() returns at once; the call keeps itself alive (shared_ptr) until it
// ends. Its events come from the upstream client's I/O threads and the listener's strand; a mutex
// orders them. No callback into Env is made with that mutex held.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/openai.h"
#include "base/http/http_server.h"
#include "gateway/hold_queue.h"
#include "gateway/upstream/upstream_client.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {

// A replica chosen for one attempt.
struct RouteChoice {
  std::string replica_id;
  std::string provider;
  std::string region;
  upstream::Target target;
  std::string engine_model;  // the model id the engine serves ("" = unknown: the engine default)
};

// What the gateway knows about the request when it starts proxying.
struct ProxyRequest {
  api::Endpoint endpoint = api::Endpoint::kCompletions;
  std::string path;  // "/v1/completions" or "/v1/chat/completions"
  // The client's body (validated), rewritten per attempt; null when the request scanner read it
  // without a document (parsed from raw_body when an attempt rewrites it).
  nlohmann::ordered_json body;
  std::string raw_body;  // its bytes: sent as they are when an attempt changes nothing
  bool stream = false;
  bool client_wants_usage = false;      // stream_options.include_usage
  bool client_wants_token_ids = false;  // return_token_ids
  std::string client_model;             // "model" as the client sent it (echoed back)
  std::string adapter;                  // "" = the base model
  bool resumable = true;                // n == 1: a broken stream can move (n > 1: only retried)
  http::Headers pass_headers;           // forwarded as is (traceparent, x-request-id, ...)
  http::Headers response_headers;       // added to the client's answer (x-weft-request-id)
};

enum class AttemptResult {
  kOk,           // the replica answered (any status < 500 other than 429)
  kOverloaded,   // 429 / 503 from the replica
  kFailed,       // connect failure, reset, malformed answer, other 5xx
  kTimedOut,     // connect / first byte / stall timeout
  kCancelled,    // the client went away
};

struct ProxyOutcome {
  int status = 0;  // what the client saw; 499 when it went away first
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t completion_tokens = 0;  // generated for the client (stream: every token relayed)
  std::string replica;            // the replica of the last attempt that produced tokens
  std::string provider;
  double ttft_ms = 0;
  double duration_ms = 0;
  int attempts = 0;
  int migrations = 0;
  int hedges = 0;  // second attempts started by hedging (won or not)
  std::string error;  // why it failed, for the access log
};

struct ProxyEnv {
  upstream::UpstreamClient* client = nullptr;
  // A replica for the next attempt, never one of `exclude` (those that failed this request).
  std::function<std::optional<RouteChoice>(const std::vector<std::string>& exclude)> pick;
  // Attempt accounting (outstanding load, passive health): start, then end exactly once.
  std::function<void(const RouteChoice&)> on_attempt_start;
  std::function<void(const RouteChoice&, AttemptResult)> on_attempt_end;
  // Whether one more retry / migration may be spent (the retry budget); default: yes.
  std::function<bool()> may_retry;
  // Called once, before the final bytes go to the client: make the usage durable, then run `done`
  // (from any thread). Also called for failures and client disconnects (then `done` is a no-op).
  std::function<void(const ProxyOutcome&, std::function<void()> done)> finish;
  upstream::Timeouts stream_timeouts;  // streaming: first byte = first token; stall between events
  upstream::Timeouts unary_timeouts;   // non-streaming: first byte = the whole generation
  int max_attempts = 4;                // attempts per request, retries and migrations together
  // > 0: when the first byte has not come this many seconds after the first attempt started, one
  // more attempt races it on another replica (spending the retry budget, like a retry).
  double hedge_after_s = 0;
  // Scale from zero: when the first attempt finds no replica, the call waits in this queue under
  // `deployment` until the route table brings a ready replica (null: 503 at once).
  HoldQueue* holds = nullptr;
  std::string deployment;
};

class ProxyCall : public std::enable_shared_from_this<ProxyCall> {
 public:
  static void Start(std::shared_ptr<const ProxyEnv> env, ProxyRequest request,
                    std::shared_ptr<http::ResponseWriter> writer);

  ProxyCall(std::shared_ptr<const ProxyEnv> env, ProxyRequest request,
            std::shared_ptr<http::ResponseWriter> writer);

 private:
  struct Attempt;  // one exchange with one replica

  void Begin();
  void NextAttempt(const std::string& why);
  void SendAttempt(std::shared_ptr<Attempt> a, bool hedge = false);
  void StartHedge();
  // Ends the race for the first byte (mu_ held): `winner` becomes current_; the loser's exchange
  // and the hedge timer are returned to be cancelled once mu_ is released.
  struct RaceLeftovers {
    std::shared_ptr<upstream::Exchange> loser;
    std::shared_ptr<upstream::Timer> timer;
    void Cancel();
  };
  RaceLeftovers Decide(const std::shared_ptr<Attempt>& winner);
  // Upstream events of attempt `a` (stale attempts are ignored).
  void OnHead(const std::shared_ptr<Attempt>& a, int status, const upstream::Headers& headers);
  void OnData(const std::shared_ptr<Attempt>& a, std::string_view chunk);
  void OnDone(const std::shared_ptr<Attempt>& a, absl::Status status);
  void OnClientGone();
  void Hold();  // scale from zero: wait for a ready replica (mu_ not held)

  // Streaming: one upstream event; returns false when the stream is malformed.
  bool HandleEvent(const std::shared_ptr<Attempt>& a, const std::string& data,
                   std::string* out);
  void HandleUnaryBody(const std::shared_ptr<Attempt>& a);
  // Ends the call: the outcome goes to Env::finish, then `final_bytes` (stream) or `response`.
  void Finish(int status, std::string error, std::function<void()> deliver);
  void FailClient(int status, std::string type, std::string message);

  double MsSinceStart() const;

  const std::shared_ptr<const ProxyEnv> env_;
  ProxyRequest req_;
  const std::shared_ptr<http::ResponseWriter> writer_;
  const std::chrono::steady_clock::time_point start_;
  uint64_t seed_ = 0;  // set in Begin(): the "seed" of every rewritten attempt when the client gave none

  std::mutex mu_;
  std::shared_ptr<Attempt> current_;
  std::shared_ptr<Attempt> hedge_;                  // racing current_ for the first byte
  std::shared_ptr<upstream::Timer> hedge_timer_;  // armed with the first attempt
  bool decided_ = true;                             // false while a race may still start or run
  std::vector<std::string> failed_replicas_;
  bool stream_started_ = false;  // the client has the 200 head
  bool finish_sent_ = false;     // a choice chunk with a finish_reason went out
  bool ended_ = false;
  bool client_gone_ = false;
  bool held_ = false;     // waited in env_->holds once already
  uint64_t hold_id_ = 0;  // while held: the ticket to cancel when the client leaves
  std::string stream_id_;  // id / created of the first replica's stream
  int64_t stream_created_ = 0;
  std::vector<int32_t> sent_tokens_;  // token ids the client has
  ProxyOutcome outcome_;
};

}  // namespace weft::gateway
