// SPDX-License-Identifier: Apache-2.0
#include "engine/runtime/llama_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace weft::engine {

namespace {
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
}  // namespace

// One request's state on the engine thread.
struct LlamaEngine::Sequence {
  int64_t id = 0;  // also the scheduler's and the KV cache's sequence id
  EngineRequest req;
  std::shared_ptr<EventSink> sink;                   // null once finished
  std::shared_ptr<const lora::LoraAdapter> adapter;  // keeps it alive while running
  std::string kv_key;                                // prefix-cache key (adapter identity)
  int32_t n_prompt = 0;
  int32_t n_resumed = 0;
  int32_t n_generated = 0;    // resumed + generated
  int32_t max_new = 0;        // tokens it may still generate (max_tokens, context)
  int32_t cached_tokens = 0;  // prefix-cache hit at the first admission
  bool first_admission = true;
  bool got_first_token = false;
  Clock::time_point submitted;
  double ttft = 0;
  std::unique_ptr<sampling::Sampler> sampler;
  std::unique_ptr<sampling::GenerationLimits> limits;
  std::unique_ptr<sampling::StopMatcher> stops;
  std::unique_ptr<tokenizer::StreamingDecoder> decoder;
};

// Applies each row's LoRA delta after the base projections (see BatchForward's ProjectionHook).
class LlamaEngine::LoraHook final : public model::ProjectionHook {
 public:
  lora::LoraBatch batch;
  lora::LoraScratch scratch;
  void Apply(kernels::Backend& backend, int layer, Target target, const float* x, int64_t,
             std::span<const int32_t>, float* y) override {
    lora::AddLoraDelta(backend, batch, layer, static_cast<lora::LoraTarget>(target), x, y, scratch);
  }
};

LlamaEngine::LlamaEngine(std::unique_ptr<model::Model> model,
                         std::unique_ptr<tokenizer::Tokenizer> tokenizer,
                         const LlamaEngineOptions& options)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      options_(options),
      adapters_(*model_) {}

absl::StatusOr<std::unique_ptr<LlamaEngine>> LlamaEngine::Create(
    std::unique_ptr<model::Model> model, std::unique_ptr<tokenizer::Tokenizer> tokenizer,
    const LlamaEngineOptions& options) {
  if (model == nullptr || tokenizer == nullptr) {
    return absl::InvalidArgumentError("engine needs a model and a tokenizer");
  }
  if (options.block_size <= 0 || options.max_batch_tokens <= 0 || options.max_running <= 0) {
    return absl::InvalidArgumentError("block_size, max_batch_tokens, max_running must be > 0");
  }
  auto e = std::unique_ptr<LlamaEngine>(
      new LlamaEngine(std::move(model), std::move(tokenizer), options));
  const model::ModelConfig& c = e->model_->config;
  e->n_ctx_ = options.n_ctx > 0 ? options.n_ctx : std::clamp(c.max_ctx, 512, 4096);
  const int64_t kv_dim = static_cast<int64_t>(c.n_kv_heads) * c.head_dim;
  const int64_t bytes_per_block =
      2LL * c.n_layers * options.block_size * kv_dim * static_cast<int64_t>(sizeof(float));
  int64_t n_blocks = options.kv_blocks;
  if (n_blocks <= 0 && options.kv_mem_bytes > 0) n_blocks = options.kv_mem_bytes / bytes_per_block;
  if (n_blocks <= 0) {
    // Default: room for 16 full contexts, at most 2 GiB.
    n_blocks = std::min<int64_t>(16LL * ((e->n_ctx_ + options.block_size - 1) / options.block_size),
                                 (2LL << 30) / bytes_per_block);
  }
  if (n_blocks < (e->n_ctx_ + options.block_size - 1) / options.block_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV pool of ", n_blocks, " blocks cannot hold one context of ", e->n_ctx_, " tokens"));
  }
  model::BatchForwardOptions bo;
  bo.n_blocks = static_cast<int>(n_blocks);
  bo.block_size = options.block_size;
  bo.max_batch_tokens = options.max_batch_tokens;
  bo.n_threads = options.n_threads;
  bo.isa = options.isa;
  auto fwd = model::BatchForward::Create(*e->model_, bo);
  if (!fwd.ok()) return fwd.status();
  e->forward_ = *std::move(fwd);
  e->kv_ = std::make_unique<kv::PagedKvCache>(
      kv::PagedKvCacheOptions{static_cast<int32_t>(n_blocks), options.block_size});
  scheduler::SchedulerOptions so;
  so.max_tokens_per_step = options.max_batch_tokens;
  so.max_running = std::min(options.max_running, options.max_batch_tokens);
  auto sched = scheduler::Scheduler::Create(so, e->kv_.get());
  if (!sched.ok()) return sched.status();
  e->scheduler_ = *std::move(sched);
  e->started_ = Clock::now();
  e->eog_ids_ = tokenizer::EndOfGenerationIds(*e->tokenizer_);
  e->lora_hook_ = std::make_unique<LoraHook>();
  e->PublishLoad();
  e->thread_ = std::thread([raw = e.get()] { raw->Loop(); });
  return e;
}

LlamaEngine::~LlamaEngine() { Shutdown(0); }

absl::Status LlamaEngine::Submit(EngineRequest request, std::shared_ptr<EventSink> sink) {
  const int32_t vocab = model_->config.vocab_size;
  if (request.prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  for (const auto* list : {&request.prompt, &request.resume}) {
    for (int32_t t : *list) {
      if (t < 0 || t >= vocab) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", t, " is out of range [0, ", vocab, ")"));
      }
    }
  }
  if (absl::Status s = request.sampling.Validate(vocab); !s.ok()) return s;
  const int64_t total = static_cast<int64_t>(request.prompt.size() + request.resume.size());
  if (total >= n_ctx_) {
    return absl::OutOfRangeError(absl::StrCat("the prompt (", total,
                                              " tokens with resumed ones) does not fit the "
                                              "context of ",
                                              n_ctx_, " tokens"));
  }
  if (!request.adapter.empty() && adapters_.Find(request.adapter) == nullptr) {
    return absl::NotFoundError(absl::StrCat("adapter '", request.adapter, "' is not loaded"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("the engine is shutting down");
    if (queued_ >= options_.max_waiting + options_.max_running) {
      return absl::ResourceExhaustedError("the request queue is full");
    }
    ++queued_;
    intake_.emplace_back(std::move(request), std::move(sink));
  }
  cv_.notify_one();
  return absl::OkStatus();
}

void LlamaEngine::Cancel(const std::string& request_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancels_.push_back(request_id);
  }
  cv_.notify_one();
}

LoadReport LlamaEngine::Load() const {
  std::lock_guard<std::mutex> lock(mu_);
  return load_;
}

absl::Status LlamaEngine::LoadAdapter(const std::string& name, const std::string& path) {
  auto a = adapters_.Load(name, path);
  if (!a.ok()) return a.status();
  std::lock_guard<std::mutex> lock(mu_);
  adapter_keys_[a->get()] = next_adapter_key_++;
  load_.adapters.clear();
  for (const auto& info : adapters_.List()) load_.adapters.push_back(info.name);
  return absl::OkStatus();
}

absl::Status LlamaEngine::UnloadAdapter(const std::string& name) {
  absl::Status s = adapters_.Remove(name);
  std::lock_guard<std::mutex> lock(mu_);
  load_.adapters.clear();
  for (const auto& info : adapters_.List()) load_.adapters.push_back(info.name);
  return s;
}

std::string LlamaEngine::AdapterKey(const lora::LoraAdapter* adapter) {
  if (adapter == nullptr) return "";
  std::lock_guard<std::mutex> lock(mu_);
  auto it = adapter_keys_.find(adapter);
  // Adapters registered outside LoadAdapter get a key on first use.
  if (it == adapter_keys_.end()) it = adapter_keys_.emplace(adapter, next_adapter_key_++).first;
  return absl::StrCat("lora#", it->second);
}

void LlamaEngine::Shutdown(double deadline_seconds) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (deadline_seconds > 0) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(deadline_seconds);
    while (Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queued_ == 0) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_now_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void LlamaEngine::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stop_now_ || !intake_.empty() || !cancels_.empty() || !seqs_.empty();
      });
      if (stop_now_) break;
    }
    DrainIntake();
    Step();
    PublishLoad();
  }
  // Whatever is left is cancelled.
  DrainIntake();
  for (auto& [id, seq] : seqs_) {
    Finish(*seq, absl::CancelledError("the engine shut down"), sampling::FinishReason::kLength);
  }
  seqs_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  queued_ = 0;
}

void LlamaEngine::DrainIntake() {
  std::deque<std::pair<EngineRequest, std::shared_ptr<EventSink>>> intake;
  std::vector<std::string> cancels;
  {
    std::lock_guard<std::mutex> lock(mu_);
    intake.swap(intake_);
    cancels.swap(cancels_);
  }
  for (auto& [req, sink] : intake) {
    auto seq = std::make_unique<Sequence>();
    seq->id = next_seq_id_++;
    seq->submitted = Clock::now();
    seq->sink = std::move(sink);
    if (!req.adapter.empty()) {
      seq->adapter = adapters_.Find(req.adapter);
      if (seq->adapter == nullptr) {  // unloaded between Submit and now
        FinishEvent f;
        f.status = absl::NotFoundError(absl::StrCat("adapter '", req.adapter, "' is not loaded"));
        seq->sink->OnFinish(f);
        std::lock_guard<std::mutex> lock(mu_);
        --queued_;
        continue;
      }
      seq->kv_key = AdapterKey(seq->adapter.get());
    }
    std::vector<int32_t> context = req.prompt;
    seq->n_prompt = static_cast<int32_t>(req.prompt.size());
    seq->sampler = std::make_unique<sampling::Sampler>(req.sampling, model_->config.vocab_size);
    seq->limits = std::make_unique<sampling::GenerationLimits>(req.sampling, eog_ids_);
    seq->stops = std::make_unique<sampling::StopMatcher>(req.sampling.stop);
    seq->decoder = std::make_unique<tokenizer::StreamingDecoder>(*tokenizer_, req.prompt.back());
    // Resumed tokens were already sent: they join the context and advance the decoder and stop
    // matcher silently, so the continuation's text and stops line up with the original stream.
    for (int32_t t : req.resume) {
      context.push_back(t);
      seq->stops->Push(seq->decoder->Push(t));
    }
    seq->n_generated = seq->n_resumed = static_cast<int32_t>(req.resume.size());
    // The KV the sequence may need: up to max_tokens more tokens, within the context.
    const int32_t room = n_ctx_ - static_cast<int32_t>(context.size());
    seq->max_new = req.sampling.max_tokens > 0
                       ? std::min(room, req.sampling.max_tokens - seq->n_resumed)
                       : room;
    scheduler::SequenceRequest sr;
    sr.id = seq->id;
    sr.priority = req.priority == Priority::kBatch ? scheduler::Priority::kBatch
                                                   : scheduler::Priority::kInteractive;
    sr.client = req.client;
    sr.arrival_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(seq->submitted - started_).count();
    sr.tokens = std::move(context);
    sr.extra_key = seq->kv_key;
    sr.max_new_tokens = std::max(seq->max_new, 1);
    seq->req = std::move(req);
    Sequence& ref = *seq;
    seqs_.emplace(seq->id, std::move(seq));
    if (absl::Status s = scheduler_->Add(std::move(sr)); !s.ok()) {
      Finish(ref, s, sampling::FinishReason::kLength);
    }
  }
  for (const std::string& id : cancels) {
    for (auto& [sid, seq] : seqs_) {
      if (seq->req.id == id) {
        Finish(*seq, absl::CancelledError("cancelled by the client"),
               sampling::FinishReason::kStopString);
        break;
      }
    }
  }
  EraseFinished();  // Finish only marks them
}

void LlamaEngine::Finish(Sequence& seq, absl::Status status, sampling::FinishReason reason) {
  if (seq.sink == nullptr) return;                               // already finished
  if (scheduler_->Contains(seq.id)) scheduler_->Remove(seq.id);  // frees its KV blocks now
  FinishEvent f;
  f.status = std::move(status);
  f.reason = reason;
  if (f.status.ok() && reason != sampling::FinishReason::kStopString) {
    f.tail_text = seq.stops->Push(seq.decoder->Flush()).emit + seq.stops->Flush();
  }
  f.prompt_tokens = seq.n_prompt;
  f.cached_tokens = seq.cached_tokens;
  f.completion_tokens = seq.n_generated;
  f.ttft_seconds = seq.ttft;
  std::shared_ptr<EventSink> sink = std::move(seq.sink);
  seq.sink = nullptr;
  sink->OnFinish(f);
  std::lock_guard<std::mutex> lock(mu_);
  --queued_;
}

bool LlamaEngine::Step() {
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
  scheduler::StepPlan plan = scheduler_->Step(now_ms);
  for (const scheduler::Admission& a : plan.admitted) {
    Sequence& s = *seqs_.at(a.id);
    if (s.first_admission) {
      s.cached_tokens = std::min(a.cached_tokens, s.n_prompt);
      s.first_admission = false;
    }
  }
  if (plan.empty()) return false;

  // One forward pass over every planned chunk (decodes first, then prefill chunks).
  std::vector<model::SeqChunk> chunks;
  std::vector<const lora::LoraAdapter*> adapter_of_row;
  bool any_adapter = false;
  int64_t n_prefill = 0, n_decode = 0;
  for (const scheduler::ScheduledChunk& c : plan.chunks) {
    Sequence& s = *seqs_.at(c.id);
    model::SeqChunk ch;
    ch.tokens = scheduler_->Tokens(c.id).subspan(c.pos, c.n_tokens);
    ch.start_pos = c.pos;
    ch.block_table = kv_->BlockTable(c.id);
    ch.want_logits = c.sample;
    ch.adapter = s.adapter != nullptr ? 0 : -1;
    any_adapter |= s.adapter != nullptr;
    for (int32_t i = 0; i < c.n_tokens; ++i) adapter_of_row.push_back(s.adapter.get());
    (c.decode ? n_decode : n_prefill) += c.n_tokens;
    chunks.push_back(ch);
  }
  if (any_adapter) lora_hook_->batch.Reset(adapter_of_row);
  const auto t0 = Clock::now();
  auto logits = forward_->Forward(chunks, any_adapter ? lora_hook_.get() : nullptr);
  const double dt = Since(t0);
  ++steps_;
  if (!logits.ok()) {
    for (const scheduler::ScheduledChunk& c : plan.chunks) {
      Finish(*seqs_.at(c.id), logits.status(), sampling::FinishReason::kLength);
    }
    scheduler_->CompleteStep(plan);
    EraseFinished();
    return true;
  }
  scheduler_->CompleteStep(plan);
  // Recent throughput (EWMA over steps) for the load report.
  const double alpha = 0.2;
  if (n_prefill > 0) prefill_tps_ = (1 - alpha) * prefill_tps_ + alpha * (n_prefill / dt);
  if (n_decode > 0) decode_tps_ = (1 - alpha) * decode_tps_ + alpha * (n_decode / dt);

  // Sample for every chunk that reached the end of its sequence's context.
  const int64_t vocab = model_->config.vocab_size;
  int64_t out_row = 0;
  std::vector<float> row;
  for (const scheduler::ScheduledChunk& c : plan.chunks) {
    if (!c.sample) continue;
    row.assign(logits->begin() + out_row * vocab, logits->begin() + (out_row + 1) * vocab);
    ++out_row;
    Sequence& s = *seqs_.at(c.id);
    if (s.sink == nullptr) continue;
    s.limits->MaskLogits(row, s.n_generated);
    TokenEvent ev;
    sampling::TokenLogprobs lp;
    const int32_t token =
        s.sampler->Sample(row, scheduler_->Tokens(c.id), static_cast<size_t>(s.n_prompt),
                          s.req.logprobs ? &lp : nullptr);
    if (token == sampling::kNoToken) {
      Finish(s, absl::InvalidArgumentError("every token was excluded by logit_bias/penalties"),
             sampling::FinishReason::kLength);
      continue;
    }
    if (!s.got_first_token) {
      s.got_first_token = true;
      s.ttft = Since(s.submitted);
    }
    std::optional<sampling::FinishReason> reason = s.limits->Check(token, s.n_generated + 1);
    if (s.limits->IsEndOfGeneration(token)) {
      Finish(s, absl::OkStatus(), *reason);
      continue;
    }
    ++s.n_generated;
    ev.token = token;
    sampling::StopMatcher::Result r = s.stops->Push(s.decoder->Push(token));
    ev.text = std::move(r.emit);
    if (s.req.logprobs) ev.logprobs = std::move(lp);
    s.sink->OnToken(ev);
    if (r.stopped) reason = sampling::FinishReason::kStopString;
    const int64_t context = static_cast<int64_t>(scheduler_->Tokens(c.id).size()) + 1;
    if (!reason && (context >= n_ctx_ || s.n_generated - s.n_resumed >= s.max_new)) {
      reason = sampling::FinishReason::kLength;  // the context (or the KV bound) is full
    }
    if (reason) {
      Finish(s, absl::OkStatus(), *reason);
    } else {
      scheduler_->AppendToken(c.id, token);
    }
  }
  EraseFinished();
  return true;
}

void LlamaEngine::EraseFinished() {
  for (auto it = seqs_.begin(); it != seqs_.end();) {
    it = it->second->sink == nullptr ? seqs_.erase(it) : std::next(it);
  }
}

void LlamaEngine::PublishLoad() {
  LoadReport r;
  scheduler::SchedulerStats ss = scheduler_->Stats();
  r.running = ss.running;
  r.waiting = ss.waiting;
  r.tokens_in_flight = ss.tokens_in_flight;
  kv::KvStats st = kv_->Stats();
  r.kv_blocks_total = st.total_blocks;
  r.kv_blocks_free = st.free_blocks + st.evictable_blocks;
  r.kv_block_size = kv_->block_size();
  r.prefill_tokens_per_s = prefill_tps_;
  r.decode_tokens_per_s = decode_tps_;
  r.prefix_digest = kv_->PrefixDigest(64);
  r.prefix_hit_tokens = st.prefix_hit_tokens;
  r.step_count = steps_;
  std::lock_guard<std::mutex> lock(mu_);
  r.adapters = std::move(load_.adapters);
  load_ = std::move(r);
}

}  // namespace weft::engine
