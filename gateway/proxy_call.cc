// SPDX-License-Identifier: Apache-2.0
#include "gateway/proxy_call.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gateway/answer_scan.h"
#include "gateway/sse.h"

namespace weft::gateway {
namespace {

using json = nlohmann::ordered_json;

uint64_t RandomSeed() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return rng() >> 1;  // fits the int64 the engines parse
}

bool Retryable(int status) { return status == 429 || status >= 500; }

AttemptResult ResultOf(const absl::Status& s) {
  if (absl::IsCancelled(s)) return AttemptResult::kCancelled;
  if (absl::IsDeadlineExceeded(s)) return AttemptResult::kTimedOut;
  return AttemptResult::kFailed;
}

std::string ErrorBody(int status, std::string_view type, std::string_view message) {
  api::ApiError e;
  e.status = status;
  e.type = std::string(type);
  e.message = std::string(message);
  return api::ErrorJson(e);
}

// Fields of a replica's event, read without throwing: a wrong type counts as absent (nlohmann's
// value() throws type_error, which would escape an I/O thread's handler). Counts: CountField.
std::string StringOrEmpty(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

struct ProxyCall::Attempt {
  RouteChoice choice;
  std::shared_ptr<upstream::Exchange> exchange;
  SseSplitter sse;
  int status = 0;
  std::string body;  // unary body, or the body of a non-200 answer
  bool saw_done = false;
  bool malformed = false;
  std::string held_usage;  // the usage event, sent after the ledger
  bool ended = false;      // on_attempt_end reported
};

void ProxyCall::Start(std::shared_ptr<const ProxyEnv> env, ProxyRequest request,
                      std::shared_ptr<http::ResponseWriter> writer) {
  auto call = std::make_shared<ProxyCall>(std::move(env), std::move(request), std::move(writer));
  call->Begin();
}

ProxyCall::ProxyCall(std::shared_ptr<const ProxyEnv> env, ProxyRequest request,
                     std::shared_ptr<http::ResponseWriter> writer)
    : env_(std::move(env)),
      req_(std::move(request)),
      writer_(std::move(writer)),
      start_(std::chrono::steady_clock::now()) {}

double ProxyCall::MsSinceStart() const {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
      .count();
}

void ProxyCall::Begin() {
  seed_ = RandomSeed();
  decided_ = !(env_->hedge_after_s > 0);
  auto self = shared_from_this();
  writer_->OnCancel([self] { self->OnClientGone(); });
  NextAttempt("");
}

void ProxyCall::RaceLeftovers::Cancel() {
  if (loser) loser->Cancel();
  if (timer) timer->Cancel();
}

ProxyCall::RaceLeftovers ProxyCall::Decide(const std::shared_ptr<Attempt>& winner) {
  RaceLeftovers left;
  decided_ = true;
  std::shared_ptr<Attempt> loser = winner == hedge_ ? current_ : hedge_;
  current_ = winner;
  hedge_ = nullptr;
  if (loser && loser != winner) left.loser = loser->exchange;
  left.timer = std::move(hedge_timer_);
  return left;
}

void ProxyCall::StartHedge() {
  std::vector<std::string> exclude;
  {
    std::lock_guard lock(mu_);
    if (decided_ || ended_ || client_gone_ || hedge_ || !current_) return;
    exclude = failed_replicas_;
    exclude.push_back(current_->choice.replica_id);
  }
  if (env_->may_retry && !env_->may_retry()) return;
  std::optional<RouteChoice> choice = env_->pick(exclude);
  if (!choice) return;  // nowhere else to go: the first attempt carries on alone
  auto a = std::make_shared<Attempt>();
  a->choice = std::move(*choice);
  {
    std::lock_guard lock(mu_);
    if (decided_ || ended_ || client_gone_ || hedge_) return;
    hedge_ = a;
    ++outcome_.attempts;
    ++outcome_.hedges;
  }
  SendAttempt(std::move(a), /*hedge=*/true);
}

void ProxyCall::NextAttempt(const std::string& why) {
  std::optional<RouteChoice> choice;
  {
    std::unique_lock lock(mu_);
    if (ended_) return;
    if (client_gone_) {
      lock.unlock();
      return Finish(499, "client went away", nullptr);
    }
    const bool first = outcome_.attempts == 0;
    if (!first &&
        (outcome_.attempts >= env_->max_attempts || (env_->may_retry && !env_->may_retry()))) {
      lock.unlock();
      return FailClient(502, "upstream_error", absl::StrCat("no replica could serve: ", why));
    }
    std::vector<std::string> exclude = failed_replicas_;
    lock.unlock();
    choice = env_->pick(exclude);
    if (!choice && !exclude.empty()) choice = env_->pick({});  // all failed once: any healthy one
    lock.lock();
    if (!choice) {
      const bool hold = first && env_->holds != nullptr && !held_;
      held_ = held_ || hold;
      lock.unlock();
      if (hold) return Hold();
      return FailClient(503, "service_unavailable",
                        why.empty() ? "no replica available" : absl::StrCat("no replica: ", why));
    }
    ++outcome_.attempts;
    if (stream_started_) ++outcome_.migrations;
  }
  auto a = std::make_shared<Attempt>();
  a->choice = std::move(*choice);
  SendAttempt(std::move(a));
}

void ProxyCall::SendAttempt(std::shared_ptr<Attempt> a, bool hedge) {
  // The model name the replica knows this deployment (and adapter) by; nullopt: its default.
  std::optional<std::string> model;
  if (a->choice.engine_model.empty()) {
    if (!req_.adapter.empty()) model = req_.adapter;  // an alias the engine knows
  } else {
    model = req_.adapter.empty() ? a->choice.engine_model
                                 : absl::StrCat(a->choice.engine_model, ":", req_.adapter);
  }
  std::vector<int32_t> resume;
  {
    std::lock_guard lock(mu_);
    resume = sent_tokens_;
    if (!hedge) current_ = a;
  }
  // A unary request the replica knows by the client's model name (the body's "model" string) goes
  // out byte for byte; others are rewritten (model, streaming options, resume). The document is
  // parsed here when the request scanner read the request without one; its bytes are one valid
  // JSON object (the scanner checked exactly what the parser accepts), so the parse succeeds.
  const bool as_is = !req_.stream && !req_.raw_body.empty() && model &&
                     !req_.client_model.empty() && *model == req_.client_model;
  std::string wire;
  json body;
  if (!as_is) body = req_.body.is_null() ? json::parse(req_.raw_body, nullptr, false) : req_.body;
  if (as_is || !body.is_object()) {
    wire = req_.raw_body;
  } else {
    // Fixed seed when the client gave none, the same in every attempt: a resumed stream samples
    // exactly as the uninterrupted one would have. (A unary request sent as it is needs none: it
    // is only retried before its answer's first byte.)
    if (auto s = body.find("seed"); s == body.end() || s->is_null()) body["seed"] = seed_;
    if (model) {
      body["model"] = *model;
    } else {
      body.erase("model");
    }
    if (req_.stream) {
      body["stream"] = true;
      body["stream_options"] = {{"include_usage", true}};
      body["return_token_ids"] = true;
      if (!resume.empty()) body["weft_resume"] = {{"tokens", resume}};
    }
    wire = body.dump();
  }
  upstream::UpstreamRequest ur;
  ur.method = "POST";
  ur.target = req_.path;
  ur.headers = req_.pass_headers;
  ur.headers.emplace_back("Content-Type", "application/json");
  ur.body = std::move(wire);
  if (env_->on_attempt_start) env_->on_attempt_start(a->choice);
  auto self = shared_from_this();
  upstream::Callbacks cb;
  cb.on_head = [self, a](int status, const upstream::Headers& h) { self->OnHead(a, status, h); };
  cb.on_data = [self, a](std::string_view chunk) { self->OnData(a, chunk); };
  cb.on_done = [self, a](absl::Status s) { self->OnDone(a, std::move(s)); };
  cb.want_headers = false;  // the client's answer carries the gateway's own headers
  auto ex = env_->client->Send(a->choice.target, std::move(ur), std::move(cb),
                               req_.stream ? env_->stream_timeouts : env_->unary_timeouts);
  bool cancel = false;
  bool arm = false;
  {
    std::lock_guard lock(mu_);
    a->exchange = ex;
    cancel = client_gone_ || ended_ || (hedge && hedge_ != a) || (!hedge && current_ != a);
    arm = !cancel && !hedge && !decided_ && !hedge_timer_;
  }
  if (cancel) ex->Cancel();
  if (arm) {
    std::weak_ptr<ProxyCall> weak = self;
    auto timer = env_->client->RunAfter(env_->hedge_after_s, [weak] {
      if (auto call = weak.lock()) call->StartHedge();
    });
    std::lock_guard lock(mu_);
    if (decided_ || ended_) {
      timer->Cancel();
    } else {
      hedge_timer_ = std::move(timer);
    }
  }
}

void ProxyCall::OnHead(const std::shared_ptr<Attempt>& a, int status, const upstream::Headers&) {
  bool start_stream = false;
  RaceLeftovers left;
  {
    std::lock_guard lock(mu_);
    if ((a != current_ && a != hedge_) || ended_) return;
    a->status = status;
    // A unary answer's head wins a race; a stream's first event does (OnData).
    if (!decided_ && status == 200 && !req_.stream) left = Decide(a);
    if (decided_ && a == current_ && status == 200 && req_.stream && !stream_started_) {
      stream_started_ = true;
      start_stream = true;
    }
  }
  left.Cancel();
  if (start_stream) writer_->StartStream(200, "text/event-stream", req_.response_headers);
}

void ProxyCall::OnData(const std::shared_ptr<Attempt>& a, std::string_view chunk) {
  std::string out;
  RaceLeftovers left;
  bool start_stream = false;
  {
    std::lock_guard lock(mu_);
    if ((a != current_ && a != hedge_) || ended_ || a->malformed) return;
    if (a->status != 200 || !req_.stream) {
      // A unary body or an error answer: buffered (bounded by the upstream client's limits only
      // for Fetch; here by this cap).
      if (a->body.size() + chunk.size() > (64u << 20)) {
        a->malformed = true;
      } else {
        a->body.append(chunk);
      }
      return;
    }
    if (!decided_) {
      left = Decide(a);  // the first stream to produce wins the race
      if (!stream_started_) {
        stream_started_ = true;
        start_stream = true;
      }
    }
    std::vector<std::string> events;
    if (!a->sse.Feed(chunk, &events)) {
      a->malformed = true;
    }
    for (const std::string& ev : events) {
      if (!HandleEvent(a, ev, &out)) {
        a->malformed = true;
        break;
      }
    }
  }
  left.Cancel();
  if (start_stream) writer_->StartStream(200, "text/event-stream", req_.response_headers);
  if (!out.empty()) writer_->Write(std::move(out));
  bool cancel = false;
  {
    std::lock_guard lock(mu_);
    cancel = a->malformed && a == current_;
  }
  if (cancel && a->exchange) a->exchange->Cancel();  // OnDone sees malformed: migrate
}

bool ProxyCall::HandleEvent(const std::shared_ptr<Attempt>& a, const std::string& data,
                            std::string* out) {
  if (data == "[DONE]") {
    a->saw_done = true;
    return true;
  }
  if (a->saw_done) return true;  // nothing follows [DONE]
  json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  if (j.contains("error")) {
    // The engine failed this request mid-stream: the client gets the error event as is.
    absl::StrAppend(out, "data: ", data, "\n\n");
    outcome_.error = data;
    outcome_.status = 500;
    return true;
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    outcome_.prompt_tokens = CountField(*u, "prompt_tokens");
    outcome_.completion_tokens = CountField(*u, "completion_tokens");
    if (auto d = u->find("prompt_tokens_details"); d != u->end() && d->is_object()) {
      outcome_.cached_tokens = CountField(*d, "cached_tokens");
    }
  }
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array()) return false;
  // Read before the keys below are set: adding a key the event lacks (an ordered_json object is a
  // vector) moves every member, so no reference into `j` survives it.
  const bool usage_chunk = choices->empty();
  if (stream_id_.empty()) {
    stream_id_ = StringOrEmpty(j, "id");
    stream_created_ = CountField(j, "created");
  }
  j["id"] = stream_id_;
  j["created"] = stream_created_;
  j["model"] = req_.client_model;
  if (usage_chunk) {  // the usage chunk
    if (req_.client_wants_usage) a->held_usage = absl::StrCat("data: ", j.dump(), "\n\n");
    return true;
  }
  if (!req_.client_wants_usage) j.erase("usage");
  json& choice = j["choices"][0];
  if (!choice.is_object()) return false;
  int64_t n_new = 0;
  if (choice.contains("token_ids") && choice["token_ids"].is_array()) {
    for (const json& t : choice["token_ids"]) {
      if (!t.is_number_integer()) return false;
      sent_tokens_.push_back(t.get<int32_t>());
      ++n_new;
    }
  }
  if (!req_.client_wants_token_ids) choice.erase("token_ids");
  if (finish_sent_) return true;  // a resumed replica repeating the end: the client has it
  if (n_new > 0) {
    outcome_.replica = a->choice.replica_id;
    outcome_.provider = a->choice.provider;
    if (outcome_.ttft_ms == 0) outcome_.ttft_ms = MsSinceStart();
  }
  if (outcome_.migrations > 0 && choice.contains("delta") && choice["delta"].is_object()) {
    choice["delta"].erase("role");  // the client got the role in its first chunk
  }
  if (choice.contains("finish_reason") && !choice["finish_reason"].is_null()) finish_sent_ = true;
  absl::StrAppend(out, "data: ", j.dump(), "\n\n");
  return true;
}

void ProxyCall::OnDone(const std::shared_ptr<Attempt>& a, absl::Status status) {
  std::unique_lock lock(mu_);
  if (a->ended) return;
  if ((a != current_ && a != hedge_) || ended_) {
    // The loser of a hedging race, or an attempt outliving its call: only its accounting is left.
    a->ended = true;
    const RouteChoice choice = a->choice;
    lock.unlock();
    if (env_->on_attempt_end) env_->on_attempt_end(choice, AttemptResult::kCancelled);
    return;
  }
  const bool client_gone = client_gone_;
  const RouteChoice choice = a->choice;
  AttemptResult result;
  if (client_gone) {
    result = AttemptResult::kCancelled;
  } else if (!status.ok()) {
    result = ResultOf(status);
  } else if (a->malformed || (req_.stream && a->status == 200 && !a->saw_done)) {
    result = AttemptResult::kFailed;
  } else if (a->status == 429 || a->status == 503) {
    result = AttemptResult::kOverloaded;
  } else if (a->status >= 500 || (stream_started_ && a->status != 200)) {
    result = AttemptResult::kFailed;  // (a resumed attempt must stream)
  } else {
    result = AttemptResult::kOk;
  }
  a->ended = true;
  if (!decided_ && !client_gone && result != AttemptResult::kOk) {
    // One side of an open race failed before its first byte: the other (if any) races on alone.
    std::shared_ptr<Attempt> other = a == hedge_ ? current_ : hedge_;
    if (other && !other->ended) {
      failed_replicas_.push_back(choice.replica_id);
      current_ = other;
      hedge_ = nullptr;
      lock.unlock();
      if (env_->on_attempt_end) env_->on_attempt_end(choice, result);
      return;
    }
  }
  if (a == hedge_) hedge_ = nullptr;  // (a hedge that ended OK without winning: client gone)
  lock.unlock();
  if (env_->on_attempt_end) env_->on_attempt_end(choice, result);
  lock.lock();
  if (ended_) return;

  if (client_gone_) {
    lock.unlock();
    return Finish(499, "client went away", nullptr);
  }
  const std::string why = status.ok() ? (a->malformed       ? "malformed answer"
                                         : a->status != 200 ? absl::StrCat("status ", a->status)
                                                            : "stream ended early")
                                      : std::string(status.message());
  if (result == AttemptResult::kOk) {
    if (!req_.stream || a->status != 200) {
      lock.unlock();
      return HandleUnaryBody(a);
    }
    // A complete stream: the ledger first, then the usage chunk and [DONE].
    std::string final_bytes = std::move(a->held_usage);
    final_bytes.append(api::kSseDone);
    lock.unlock();
    auto w = writer_;
    return Finish(outcome_.status == 0 ? 200 : outcome_.status, "",
                  [w, final_bytes = std::move(final_bytes)]() mutable {
                    w->Write(std::move(final_bytes));
                    w->End();
                  });
  }
  // A failed attempt: retry (nothing sent yet) or migrate (the stream goes on elsewhere).
  if (!stream_started_ && a->status != 0 && !Retryable(a->status)) {
    lock.unlock();
    return HandleUnaryBody(a);
  }
  failed_replicas_.push_back(choice.replica_id);
  if (stream_started_ && !req_.resumable) {
    lock.unlock();
    return FailClient(502, "upstream_error", absl::StrCat("the replica failed mid-stream: ", why));
  }
  lock.unlock();
  NextAttempt(why);
}

void ProxyCall::HandleUnaryBody(const std::shared_ptr<Attempt>& a) {
  // Non-streaming answers, and error answers to either kind: relayed with the client's model name.
  std::string body = std::move(a->body);
  const int status = a->status;
  {
    std::lock_guard lock(mu_);
    if (status == 200) {
      // One SAX pass reads the usage and checks the model name; the body is parsed into a
      // document and rewritten only when the replica named another model.
      if (std::optional<AnswerFacts> f = ScanAnswer(body, req_.client_model); f.has_value()) {
        if (f->has_usage) {
          outcome_.prompt_tokens = f->prompt_tokens;
          outcome_.completion_tokens = f->completion_tokens;
          outcome_.cached_tokens = f->cached_tokens;
        }
        if (!f->model_matches) {
          json j = json::parse(body, nullptr, false);
          if (j.is_object()) {
            j["model"] = req_.client_model;
            body = j.dump();
          }
        }
      }
      outcome_.replica = a->choice.replica_id;
      outcome_.provider = a->choice.provider;
      outcome_.ttft_ms = MsSinceStart();
    }
  }
  auto w = writer_;
  Finish(status, status == 200 ? "" : body,
         [w, status, body = std::move(body), headers = req_.response_headers]() mutable {
           http::Response r;
           r.status = status;
           r.body = std::move(body);
           r.headers = std::move(headers);
           w->Respond(std::move(r));
         });
}

void ProxyCall::FailClient(int status, std::string type, std::string message) {
  bool started;
  {
    std::lock_guard lock(mu_);
    started = stream_started_;
  }
  auto w = writer_;
  std::string body = ErrorBody(status, type, message);
  Finish(status, message, [w, started, status, body, headers = req_.response_headers]() mutable {
    if (started) {
      // The client already has a 200 head: the error travels as an event, as engines send them.
      w->Write(absl::StrCat("data: ", body, "\n\n", std::string(api::kSseDone)));
      w->End();
    } else {
      http::Response r;
      r.status = status;
      r.body = std::move(body);
      r.headers = std::move(headers);
      if (status == 503) r.headers.emplace_back("Retry-After", "1");
      w->Respond(std::move(r));
    }
  });
}

void ProxyCall::Finish(int status, std::string error, std::function<void()> deliver) {
  ProxyOutcome outcome;
  RaceLeftovers left;
  {
    std::lock_guard lock(mu_);
    if (ended_) return;
    ended_ = true;
    decided_ = true;
    if (hedge_) left.loser = hedge_->exchange;
    hedge_ = nullptr;
    left.timer = std::move(hedge_timer_);
    outcome_.status = status;
    if (!error.empty()) outcome_.error = std::move(error);
    outcome_.duration_ms = MsSinceStart();
    if (req_.stream) {
      // The client was sent (or, gone, was being sent) exactly these tokens.
      outcome_.completion_tokens =
          std::max<int64_t>(outcome_.completion_tokens, static_cast<int64_t>(sent_tokens_.size()));
    }
    outcome = outcome_;
  }
  left.Cancel();
  if (!deliver) deliver = [] {};
  if (env_->finish) {
    env_->finish(outcome, std::move(deliver));
  } else {
    deliver();
  }
}

void ProxyCall::Hold() {
  auto self = shared_from_this();
  HoldQueue::Ticket t = env_->holds->Hold(env_->deployment, [self](HoldQueue::Resume r) {
    {
      std::lock_guard lock(self->mu_);
      self->hold_id_ = 0;
    }
    if (r == HoldQueue::Resume::kReady) return self->NextAttempt("");
    self->FailClient(503, "service_unavailable",
                     r == HoldQueue::Resume::kTimedOut
                         ? absl::StrCat("no replica of ", self->env_->deployment,
                                        " became ready in time (it is starting)")
                         : std::string("the gateway is shutting down"));
  });
  switch (t.admission) {
    case HoldQueue::Admission::kHeld: {
      std::unique_lock lock(mu_);
      if (!ended_ && !client_gone_) {
        hold_id_ = t.id;
        return;
      }
      lock.unlock();
      env_->holds->Cancel(t.id);  // the client left before we got here (OnClientGone finishes)
      return;
    }
    case HoldQueue::Admission::kReady:  // a replica came between the pick and now
      return NextAttempt("");
    case HoldQueue::Admission::kFull:
      return FailClient(
          503, "service_unavailable",
          absl::StrCat("too many requests wait for a replica of ", env_->deployment, " to start"));
  }
}

void ProxyCall::OnClientGone() {
  std::shared_ptr<upstream::Exchange> ex;
  uint64_t held = 0;
  {
    std::lock_guard lock(mu_);
    if (ended_ || client_gone_) return;
    client_gone_ = true;
    held = std::exchange(hold_id_, 0);
    if (current_) ex = current_->exchange;
    if (hedge_ && hedge_->exchange) hedge_->exchange->Cancel();  // (Cancel never blocks)
  }
  if (held != 0) env_->holds->Cancel(held);  // its place in the queue goes to others
  if (ex) {
    ex->Cancel();  // OnDone(Cancelled) finishes the call with 499
  } else {
    Finish(499, "client went away", nullptr);  // releases its quota reservation
  }
}

}  // namespace weft::gateway
