// SPDX-License-Identifier: Apache-2.0
// Scheduler: the continuous-batching policy. Each Step decides which running sequences decode a
// token, which prompt chunks are prefilled (chunked prefill within a token budget, decodes first),
// which waiting sequences are admitted (only when their KV blocks fit) and which are preempted
// (newest, lowest priority first; recomputed later). Pure: no I/O, no clock of its own (callers
// pass now_ms), KV through the KvCache interface. Single-threaded: owned by the engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/kv/kv_cache.h"

namespace weft::scheduler {

using kv::SeqId;

enum class Priority { kInteractive, kBatch };

struct SchedulerOptions {
  int32_t max_tokens_per_step = 512;  // token budget: decode tokens + prefill chunk tokens
  int32_t max_running = 64;           // sequences holding KV; must be <= max_tokens_per_step
  // A batch request waiting longer than this competes as interactive (no starvation under a
  // steady interactive load). <= 0 disables aging.
  int64_t batch_aging_ms = 30'000;
};

struct SequenceRequest {
  SeqId id = -1;
  Priority priority = Priority::kInteractive;
  std::string client;  // fairness key
  int64_t arrival_ms = 0;
  std::vector<int32_t> tokens;  // prompt (+ resumed tokens): the context to compute
  std::string extra_key;        // KV hash key: the LoRA adapter name, "" for the base model
  int32_t max_new_tokens = 0;   // more tokens the engine may append; bounds the KV it can need
};

// A run of positions of one sequence computed in this step: tokens [pos, pos + n_tokens) of its
// context. Their KV slots are reserved (block table ready) when Step returns.
struct ScheduledChunk {
  SeqId id = -1;
  int32_t pos = 0;
  int32_t n_tokens = 0;
  bool decode = false;  // one token after a sampled one (else a prompt / recompute chunk)
  bool sample = false;  // the chunk reaches the end of the context: sample from its last row
};

struct Admission {
  SeqId id = -1;
  int32_t cached_tokens = 0;  // context tokens reused from the prefix cache at this admission
  bool resumed = false;       // re-admitted after a preemption
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;  // decodes first, then prefill chunks
  std::vector<Admission> admitted;     // their first chunk is in `chunks` too
  // Preempted this step: KV freed, back to waiting with their tokens kept (recomputed when
  // re-admitted). The engine keeps their sampler state and emits nothing for them meanwhile.
  std::vector<SeqId> preempted;
  int32_t n_tokens = 0;  // sum of chunk sizes, <= max_tokens_per_step
  bool empty() const { return chunks.empty(); }
};

struct SchedulerStats {
  int32_t running = 0;
  int32_t waiting = 0;
  int64_t tokens_in_flight = 0;  // context tokens of running sequences
  int64_t preemptions = 0;       // cumulative
};

class Scheduler {
 public:
  // InvalidArgument for bad options. `kv` must outlive the scheduler; the scheduler is its only
  // writer for the sequences it knows (ids are shared with the KV cache).
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(const SchedulerOptions& options,
                                                           kv::KvCache* kv);

  // Queues a sequence. InvalidArgument: empty tokens, duplicate id, negative max_new_tokens.
  // OutOfRange: it can never fit the whole KV cache (tokens + max_new_tokens - 1 positions).
  absl::Status Add(SequenceRequest request);
  // Decides and commits one step (KV slots reserved, preemptions done: each KV change is planned,
  // then applied). The previous plan must have been completed with CompleteStep (a plan without
  // chunks needs none). An empty plan with nothing running or waiting means idle.
  StepPlan Step(int64_t now_ms);
  // After the forward pass of `plan`: its tokens' K/V are computed (full blocks become shareable).
  // If the forward pass failed, Remove the affected sequences first, then still call it.
  // Then, for each chunk with sample=true, call AppendToken or Remove before the next Step.
  void CompleteStep(const StepPlan& plan);
  // Appends the token sampled for `id` to its context; the next Step decodes it.
  void AppendToken(SeqId id, int32_t token);
  // Drops a sequence (finished, cancelled, failed) in any state; frees its KV at once. Unknown
  // ids are ignored. Between Step and CompleteStep, CompleteStep then skips it.
  void Remove(SeqId id);

  bool Contains(SeqId id) const { return seqs_.contains(id); }
  bool IsRunning(SeqId id) const;
  // The sequence's context (prompt, resumed and appended tokens): a chunk's input ids are
  // Tokens(id).subspan(chunk.pos, chunk.n_tokens). Valid until the next non-const call.
  std::span<const int32_t> Tokens(SeqId id) const { return seqs_.at(id).req.tokens; }
  SchedulerStats Stats() const;

 private:
  struct Seq {
    SequenceRequest req;
    uint64_t order = 0;  // submission order: FIFO within a client
    bool running = false;
    uint64_t admit_order = 0;                     // when last admitted: newer is preempted first
    int32_t n_kv = 0;                             // tokens with reserved KV slots
    int32_t n_computed = 0;                       // tokens with computed KV
    int32_t n_appended = 0;                       // AppendToken calls (<= req.max_new_tokens)
    Priority run_class = Priority::kInteractive;  // class when admitted (aged batch: interactive)
    bool preempted_before = false;
    bool preempted_this_step = false;  // not re-admitted in the step that preempted it
    bool decoded_this_step = false;
  };

  Scheduler(const SchedulerOptions& options, kv::KvCache* kv);
  bool Fits(const SequenceRequest& r) const;
  // Running order: interactive first, then oldest admission first.
  bool RunsBefore(const Seq& a, const Seq& b) const;
  void Preempt(SeqId id, StepPlan& plan);
  // The waiting sequence to admit next: best class (interactive or aged batch), then the
  // least-recently-served client, then FIFO. Returns -1 when none.
  SeqId PickWaiting(int64_t now_ms) const;

  SchedulerOptions options_;
  kv::KvCache* kv_;
  absl::flat_hash_map<SeqId, Seq> seqs_;
  std::vector<SeqId> running_;                                     // sorted by RunsBefore
  std::vector<SeqId> waiting_;                                     // any order; PickWaiting scans
  absl::flat_hash_map<std::string, uint64_t> client_last_served_;  // admission tick per client
  uint64_t next_order_ = 1;
  uint64_t next_admit_ = 1;
  uint64_t serve_tick_ = 0;
  bool step_outstanding_ = false;
  int64_t preemptions_ = 0;
};

}  // namespace weft::scheduler
