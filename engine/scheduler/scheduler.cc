// SPDX-License-Identifier: Apache-2.0
#include "engine/scheduler/scheduler.h"

#include <algorithm>
#include <span>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace weft::scheduler {

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerOptions& options,
                                                             kv::KvCache* kv) {
  if (kv == nullptr) return absl::InvalidArgumentError("scheduler needs a KV cache");
  if (options.max_tokens_per_step <= 0 || options.max_running <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens_per_step (", options.max_tokens_per_step, ") and max_running (",
                     options.max_running, ") must be positive"));
  }
  // Every running sequence's decode token must fit one step's budget, so decodes never stall.
  if (options.max_running > options.max_tokens_per_step) {
    return absl::InvalidArgumentError(absl::StrCat("max_running (", options.max_running,
                                                   ") must not exceed max_tokens_per_step (",
                                                   options.max_tokens_per_step, ")"));
  }
  return std::unique_ptr<Scheduler>(new Scheduler(options, kv));
}

Scheduler::Scheduler(const SchedulerOptions& options, kv::KvCache* kv)
    : options_(options), kv_(kv) {}

bool Scheduler::Fits(const SequenceRequest& r) const {
  // The last generated token's K/V is never computed, hence max_new_tokens - 1.
  const int64_t positions =
      static_cast<int64_t>(r.tokens.size()) + std::max<int64_t>(0, r.max_new_tokens - 1);
  const int64_t blocks = (positions + kv_->block_size() - 1) / kv_->block_size();
  return blocks <= kv_->total_blocks();
}

absl::Status Scheduler::Add(SequenceRequest request) {
  if (request.tokens.empty()) return absl::InvalidArgumentError("empty prompt");
  if (request.max_new_tokens < 0) {
    return absl::InvalidArgumentError("max_new_tokens must not be negative");
  }
  if (seqs_.contains(request.id)) {
    return absl::InvalidArgumentError(absl::StrCat("duplicate sequence id ", request.id));
  }
  if (!Fits(request)) {
    return absl::OutOfRangeError(
        absl::StrCat("request needs ", request.tokens.size(), " prompt + ", request.max_new_tokens,
                     " new tokens of KV, more than the whole cache (", kv_->total_blocks(),
                     " blocks of ", kv_->block_size(), " tokens)"));
  }
  const SeqId id = request.id;
  Seq& s = seqs_[id];
  s.req = std::move(request);
  s.order = next_order_++;
  waiting_.push_back(id);
  return absl::OkStatus();
}

bool Scheduler::RunsBefore(const Seq& a, const Seq& b) const {
  return std::tie(a.run_class, a.admit_order) < std::tie(b.run_class, b.admit_order);
}

bool Scheduler::IsRunning(SeqId id) const {
  auto it = seqs_.find(id);
  return it != seqs_.end() && it->second.running;
}

void Scheduler::Preempt(SeqId id, StepPlan& plan) {
  Seq& s = seqs_.at(id);
  WEFT_CHECK(s.running);
  kv_->Free(id);
  s.running = false;
  s.n_kv = 0;
  s.n_computed = 0;
  s.preempted_before = true;
  s.preempted_this_step = true;
  running_.erase(std::find(running_.begin(), running_.end(), id));
  waiting_.push_back(id);
  plan.preempted.push_back(id);
  ++preemptions_;
}

SeqId Scheduler::PickWaiting(int64_t now_ms) const {
  SeqId best = -1;
  std::tuple<int, uint64_t, uint64_t> best_key;
  for (SeqId id : waiting_) {
    const Seq& s = seqs_.at(id);
    if (s.preempted_this_step) continue;
    const bool aged =
        options_.batch_aging_ms > 0 && now_ms - s.req.arrival_ms >= options_.batch_aging_ms;
    const int cls = s.req.priority == Priority::kInteractive || aged ? 0 : 1;
    auto served = client_last_served_.find(s.req.client);
    // Least-recently-served client first (never served = 0), FIFO within a client.
    const std::tuple<int, uint64_t, uint64_t> key{
        cls, served == client_last_served_.end() ? 0 : served->second, s.order};
    if (best == -1 || key < best_key) {
      best = id;
      best_key = key;
    }
  }
  return best;
}

StepPlan Scheduler::Step(int64_t now_ms) {
  WEFT_CHECK(!step_outstanding_);  // CompleteStep(previous plan) first
  StepPlan plan;
  for (SeqId id : waiting_) seqs_.at(id).preempted_this_step = false;
  for (SeqId id : running_) seqs_.at(id).decoded_this_step = false;
  int32_t budget = options_.max_tokens_per_step;

  // 1. Decodes first, in running order, so generation never stalls behind a long prompt. When
  // blocks run out, the newest lowest-priority sequence not yet scheduled is preempted
  // (recompute later, as vLLM does); if that is this one, it yields itself.
  for (size_t i = 0; i < running_.size();) {
    const SeqId id = running_[i];
    Seq& s = seqs_.at(id);
    const int32_t len = static_cast<int32_t>(s.req.tokens.size());
    WEFT_CHECK(s.n_computed < len);  // a sampled sequence got AppendToken or Remove
    if (s.n_kv == len) {             // still prefilling: phase 2
      ++i;
      continue;
    }
    WEFT_CHECK(s.n_kv == len - 1 && s.n_computed == s.n_kv);
    std::optional<kv::AllocationPlan> alloc =
        kv_->PlanAppend(id, std::span<const int32_t>(&s.req.tokens.back(), 1));
    if (!alloc.has_value()) {
      Preempt(running_.back(), plan);  // may be this sequence itself: then i now points past it
      continue;
    }
    kv_->Apply(*alloc);
    s.n_kv = len;
    s.decoded_this_step = true;
    plan.chunks.push_back(
        ScheduledChunk{.id = id, .pos = len - 1, .n_tokens = 1, .decode = true, .sample = true});
    --budget;
    ++i;
  }
  WEFT_CHECK(budget >= 0);

  // 2. Prompt chunks of admitted sequences (their KV was reserved at admission), in running order.
  for (SeqId id : running_) {
    if (budget == 0) break;
    Seq& s = seqs_.at(id);
    if (s.decoded_this_step) continue;
    const int32_t n = std::min(s.n_kv - s.n_computed, budget);
    const int32_t len = static_cast<int32_t>(s.req.tokens.size());
    plan.chunks.push_back(ScheduledChunk{
        .id = id, .pos = s.n_computed, .n_tokens = n, .sample = s.n_computed + n == len});
    budget -= n;
  }

  // 3. Admissions while budget and running slots remain. The whole context's KV is reserved up
  // front, so later chunks never block on blocks. Head-of-line: when the chosen sequence does not
  // fit, nothing behind it is admitted (a big request is not starved by small ones).
  while (budget > 0 && static_cast<int32_t>(running_.size()) < options_.max_running) {
    const SeqId id = PickWaiting(now_ms);
    if (id == -1) break;
    Seq& s = seqs_.at(id);
    std::optional<kv::AllocationPlan> alloc = kv_->PlanAdd(id, s.req.tokens, s.req.extra_key);
    if (!alloc.has_value()) break;
    kv_->Apply(*alloc);
    const int32_t len = static_cast<int32_t>(s.req.tokens.size());
    s.running = true;
    s.admit_order = next_admit_++;
    const bool aged =
        options_.batch_aging_ms > 0 && now_ms - s.req.arrival_ms >= options_.batch_aging_ms;
    s.run_class = aged ? Priority::kInteractive : s.req.priority;
    s.n_kv = len;
    s.n_computed = alloc->n_cached_tokens;
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), id));
    running_.insert(
        std::upper_bound(running_.begin(), running_.end(), id,
                         [&](SeqId a, SeqId b) { return RunsBefore(seqs_.at(a), seqs_.at(b)); }),
        id);
    client_last_served_[s.req.client] = ++serve_tick_;
    plan.admitted.push_back(Admission{
        .id = id, .cached_tokens = alloc->n_cached_tokens, .resumed = s.preempted_before});
    const int32_t n = std::min(len - s.n_computed, budget);
    plan.chunks.push_back(ScheduledChunk{
        .id = id, .pos = s.n_computed, .n_tokens = n, .sample = s.n_computed + n == len});
    budget -= n;
  }

  plan.n_tokens = options_.max_tokens_per_step - budget;
  step_outstanding_ = !plan.chunks.empty();
  return plan;
}

void Scheduler::CompleteStep(const StepPlan& plan) {
  if (plan.chunks.empty()) return;
  WEFT_CHECK(step_outstanding_);
  step_outstanding_ = false;
  for (const ScheduledChunk& c : plan.chunks) {
    auto it = seqs_.find(c.id);
    if (it == seqs_.end() || !it->second.running) continue;  // removed meanwhile
    Seq& s = it->second;
    WEFT_CHECK(s.n_computed == c.pos && c.pos + c.n_tokens <= s.n_kv);
    s.n_computed = c.pos + c.n_tokens;
    kv_->MarkComputed(c.id, s.n_computed);
  }
}

void Scheduler::AppendToken(SeqId id, int32_t token) {
  Seq& s = seqs_.at(id);
  WEFT_CHECK(s.running && !step_outstanding_);
  WEFT_CHECK(s.n_computed == static_cast<int32_t>(s.req.tokens.size()));  // it was sampled
  WEFT_CHECK(s.n_appended < s.req.max_new_tokens);  // the KV bound Add checked
  ++s.n_appended;
  s.req.tokens.push_back(token);
}

void Scheduler::Remove(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  if (it->second.running) {
    kv_->Free(id);
    running_.erase(std::find(running_.begin(), running_.end(), id));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), id));
  }
  seqs_.erase(it);
}

SchedulerStats Scheduler::Stats() const {
  SchedulerStats st;
  st.running = static_cast<int32_t>(running_.size());
  st.waiting = static_cast<int32_t>(waiting_.size());
  for (SeqId id : running_) st.tokens_in_flight += seqs_.at(id).req.tokens.size();
  st.preemptions = preemptions_;
  return st;
}

}  // namespace weft::scheduler
