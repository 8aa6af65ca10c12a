// SPDX-License-Identifier: Apache-2.0
// LlamaEngine: the Engine of a Llama-family model on CPU. One engine thread runs continuous
// batching: every step mixes the decode tokens of running sequences with chunks of waiting prompts
// (chunked prefill within a token budget), admits by free KV blocks (prefix-cache hits skip their
// prefill), preempts the newest sequence when blocks run out (recomputed later), serves the
// interactive class before batch and round-robins between clients. Requests for different LoRA
// adapters share steps (per-row adapter application). Submit/Cancel/Load are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kv/paged_kv_cache.h"
#include "engine/lora/lora.h"
#include "engine/lora/lora_registry.h"
#include "engine/model/arch/batch_forward.h"
#include "engine/model/model.h"
#include "engine/runtime/engine.h"
#include "engine/sampling/generation_limits.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/stop_matcher.h"
#include "engine/scheduler/scheduler.h"
#include "engine/tokenizer/decoding.h"
#include "engine/tokenizer/tokenizer.h"

namespace weft::engine {

struct LlamaEngineOptions {
  std::string model_id;  // served model name
  int n_threads = 1;
  int n_ctx = 0;      // per-sequence context; 0 = the model's, clamped to [512, 4096]
  int kv_blocks = 0;  // KV pool in blocks; 0 = from kv_mem_bytes, else 16 contexts' worth
  int64_t kv_mem_bytes = 0;
  int block_size = 16;
  int max_batch_tokens = 512;  // token budget per step
  int max_running = 64;        // sequences decoding at once
  int max_waiting = 1024;      // queued requests beyond which Submit answers ResourceExhausted
  kernels::Isa isa = kernels::BestIsa();
};

class LlamaEngine final : public Engine {
 public:
  // Takes ownership of the model and tokenizer, allocates the KV pool and starts the engine thread.
  static absl::StatusOr<std::unique_ptr<LlamaEngine>> Create(
      std::unique_ptr<model::Model> model, std::unique_ptr<tokenizer::Tokenizer> tokenizer,
      const LlamaEngineOptions& options);
  ~LlamaEngine() override;

  absl::Status Submit(EngineRequest request, std::shared_ptr<EventSink> sink) override;
  void Cancel(const std::string& request_id) override;
  LoadReport Load() const override;
  absl::Status LoadAdapter(const std::string& name, const std::string& path) override;
  absl::Status UnloadAdapter(const std::string& name) override;
  void Shutdown(double deadline_seconds) override;
  const tokenizer::Tokenizer& tokenizer() const override { return *tokenizer_; }
  int32_t n_ctx() const override { return n_ctx_; }
  std::string model_id() const override { return options_.model_id; }

  const model::Model& model() const { return *model_; }
  lora::LoraRegistry& adapters() { return adapters_; }

 private:
  struct Sequence;
  class LoraHook;
  LlamaEngine(std::unique_ptr<model::Model> model, std::unique_ptr<tokenizer::Tokenizer> tokenizer,
              const LlamaEngineOptions& options);

  void Loop();
  // One continuous-batching step; returns false when there was nothing to do.
  bool Step();
  void DrainIntake();
  void Finish(Sequence& seq, absl::Status status, sampling::FinishReason reason);
  void EraseFinished();
  void PublishLoad();
  std::string AdapterKey(const lora::LoraAdapter* adapter);

  std::unique_ptr<model::Model> model_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  LlamaEngineOptions options_;
  int32_t n_ctx_ = 0;
  std::vector<int32_t> eog_ids_;
  lora::LoraRegistry adapters_;

  // Engine-thread state.
  std::unique_ptr<model::BatchForward> forward_;
  std::unique_ptr<kv::PagedKvCache> kv_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;  // admission, chunking, preemption
  std::chrono::steady_clock::time_point started_;
  std::map<int64_t, std::unique_ptr<Sequence>> seqs_;  // by sequence id
  int64_t next_seq_id_ = 1;
  std::unique_ptr<LoraHook> lora_hook_;
  double prefill_tps_ = 0, decode_tps_ = 0;
  int64_t steps_ = 0;

  // Shared with the API threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<EngineRequest, std::shared_ptr<EventSink>>> intake_;  // guarded by mu_
  std::vector<std::string> cancels_;                                         // guarded by mu_
  int64_t queued_ = 0;  // requests submitted and not yet finished; guarded by mu_
  bool stopping_ = false;
  bool stop_now_ = false;
  LoadReport load_;                                            // guarded by mu_
  std::map<const lora::LoraAdapter*, uint64_t> adapter_keys_;  // guarded by mu_
  uint64_t next_adapter_key_ = 1;
  std::thread thread_;
};

}  // namespace weft::engine
