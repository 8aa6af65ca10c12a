// SPDX-License-Identifier: Apache-2.0
// Seeded simulation of Scheduler over PagedKvCache: thousands of random workloads (arrivals,
// prompt/output lengths, shared prefixes, KV sizes, budgets, clients, priorities, cancellations),
// with an engine stand-in that "computes" K/V by writing token ids into a shadow pool. Checks
// properties every step and at the end.
#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/kv/paged_kv_cache.h"
#include "engine/scheduler/scheduler.h"
#include "gtest/gtest.h"

namespace weft::scheduler {
namespace {

constexpr int64_t kStepMs = 10;

struct Workload {
  int32_t n_blocks, block_size, budget, max_running, n_clients, n_requests;
  int64_t aging_ms;
  bool bursty;
  bool mixed_priority;
};

enum class State { kPending, kWaiting, kRunning, kDone, kRejected, kCancelled };

struct Request {
  SequenceRequest req;
  int64_t arrival_step = 0;
  int32_t prompt_len = 0;
  int32_t output_len = 0;  // the engine "finishes" the sequence after this many tokens
  State state = State::kPending;
  std::vector<int32_t> context;  // prompt + generated
  int32_t n_computed = 0;
  int32_t generated = 0;
  int64_t wait_start_step = 0;                                 // fairness window start
  std::map<std::string, int64_t> admissions_at_wait_start[2];  // by class, by client
  int64_t first_admit_step = -1;
  int32_t preemptions = 0;
};

struct Totals {
  int64_t finished = 0, rejected = 0, cancelled = 0, preemptions = 0, resumed_finished = 0;
  int64_t prefix_hit_tokens = 0;
  int64_t wait_steps[2] = {0, 0};  // by priority: interactive, batch (contended workloads only)
  int64_t waited[2] = {0, 0};
};

int32_t TokenFor(SeqId id, int32_t index) { return static_cast<int32_t>((id * 7919 + index) % 50); }

class Simulation {
 public:
  Simulation(uint32_t seed, const Workload& w, Totals& totals)
      : rng_(seed),
        w_(w),
        totals_(totals),
        kv_({.n_blocks = w.n_blocks, .block_size = w.block_size}),
        pool_(static_cast<size_t>(w.n_blocks) * w.block_size, -1) {
    auto s = Scheduler::Create({.max_tokens_per_step = w.budget,
                                .max_running = w.max_running,
                                .batch_aging_ms = w.aging_ms},
                               &kv_);
    EXPECT_TRUE(s.ok());
    sched_ = *std::move(s);
    MakeRequests();
  }

  void Run() {
    const int64_t max_steps = 200000;
    for (step_ = 0; step_ < max_steps && !AllDone(); ++step_) {
      Arrivals();
      MaybeCancel();
      OneStep();
      if (testing::Test::HasFatalFailure()) return;
    }
    ASSERT_TRUE(AllDone()) << "livelock or starvation: unfinished requests after " << step_
                           << " steps";
    EXPECT_EQ(sched_->Stats().running + sched_->Stats().waiting, 0);
    const kv::KvStats st = kv_.Stats();
    EXPECT_EQ(st.used_blocks, 0);
    EXPECT_EQ(st.n_sequences, 0);
    totals_.prefix_hit_tokens += st.prefix_hit_tokens;
    for (const auto& [id, r] : reqs_) {
      if (r.state == State::kDone) {
        ++totals_.finished;
        if (r.preemptions > 0) ++totals_.resumed_finished;
      }
      totals_.rejected += r.state == State::kRejected ? 1 : 0;
      totals_.cancelled += r.state == State::kCancelled ? 1 : 0;
      totals_.preemptions += r.preemptions;
    }
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  void MakeRequests() {
    std::vector<std::vector<int32_t>> bases;
    for (int i = 0; i < 3; ++i) {
      std::vector<int32_t> b(Uniform(0, 3 * w_.block_size));
      for (auto& t : b) t = Uniform(0, 49);
      bases.push_back(b);
    }
    int64_t t = 0;
    for (int i = 0; i < w_.n_requests; ++i) {
      Request r;
      r.req.id = 100 + i;
      r.req.client = "client" + std::to_string(Uniform(0, w_.n_clients - 1));
      r.req.priority =
          w_.mixed_priority && Uniform(0, 1) ? Priority::kBatch : Priority::kInteractive;
      r.req.extra_key = Uniform(0, 4) == 0 ? "lora" : "";
      std::vector<int32_t> prompt = bases[Uniform(0, 2)];
      const int tail = Uniform(1, Uniform(0, 9) == 0 ? 8 * w_.block_size : 2 * w_.block_size);
      for (int k = 0; k < tail; ++k) prompt.push_back(Uniform(0, 49));
      r.prompt_len = static_cast<int32_t>(prompt.size());
      r.output_len = Uniform(1, Uniform(0, 3) == 0 ? 40 : 8);
      r.req.max_new_tokens = r.output_len + Uniform(0, 4);
      r.req.tokens = prompt;
      r.context = prompt;
      if (!w_.bursty) t += Uniform(0, 3);
      r.arrival_step = t;
      r.req.arrival_ms = t * kStepMs;
      reqs_[r.req.id] = std::move(r);
    }
  }

  bool AllDone() const {
    for (const auto& [id, r] : reqs_) {
      if (r.state == State::kPending || r.state == State::kWaiting || r.state == State::kRunning) {
        return false;
      }
    }
    return true;
  }

  void StartWait(Request& r, int64_t from_step) {
    r.state = State::kWaiting;
    r.n_computed = 0;
    r.wait_start_step = from_step;
    r.admissions_at_wait_start[0] = admissions_[0];
    r.admissions_at_wait_start[1] = admissions_[1];
  }

  void Arrivals() {
    for (auto& [id, r] : reqs_) {
      if (r.state != State::kPending || r.arrival_step != step_) continue;
      absl::Status st = sched_->Add(r.req);
      const int64_t positions = r.prompt_len + std::max(0, r.req.max_new_tokens - 1);
      const bool fits = (positions + w_.block_size - 1) / w_.block_size <= w_.n_blocks;
      if (fits) {
        ASSERT_TRUE(st.ok()) << st;
        StartWait(r, step_);
      } else {
        ASSERT_EQ(st.code(), absl::StatusCode::kOutOfRange) << st;
        r.state = State::kRejected;
      }
    }
  }

  void MaybeCancel() {
    if (Uniform(0, 99) != 0) return;
    std::vector<SeqId> live;
    for (auto& [id, r] : reqs_) {
      if (r.state == State::kWaiting || r.state == State::kRunning) live.push_back(id);
    }
    if (live.empty()) return;
    const SeqId id = live[Uniform(0, live.size() - 1)];
    sched_->Remove(id);
    reqs_[id].state = State::kCancelled;
    ASSERT_FALSE(kv_.HasSequence(id));
  }

  bool Aged(const Request& r) const {
    return w_.aging_ms > 0 && step_ * kStepMs - r.req.arrival_ms >= w_.aging_ms;
  }

  void OneStep() {
    // Who could be admitted this step (for the priority property).
    std::vector<SeqId> waiting_before, decoders;
    for (auto& [id, r] : reqs_) {
      if (r.state == State::kWaiting) waiting_before.push_back(id);
      if (r.state == State::kRunning &&
          r.n_computed == static_cast<int32_t>(r.context.size()) - 1 && r.generated > 0 &&
          kv_.NumTokens(id) == r.n_computed) {
        decoders.push_back(id);
      }
    }
    const StepPlan plan = sched_->Step(step_ * kStepMs);

    // Token budget, chunk shape, decode-first.
    int32_t sum = 0;
    bool seen_prefill = false;
    std::map<SeqId, int> seen;
    for (const ScheduledChunk& c : plan.chunks) {
      sum += c.n_tokens;
      ASSERT_GT(c.n_tokens, 0);
      ASSERT_EQ(++seen[c.id], 1) << "sequence scheduled twice in one step";
      if (c.decode) {
        ASSERT_FALSE(seen_prefill) << "decode after a prefill chunk";
        ASSERT_EQ(c.n_tokens, 1);
      } else {
        seen_prefill = true;
      }
    }
    ASSERT_EQ(sum, plan.n_tokens);
    ASSERT_LE(sum, w_.budget);

    // Admissions, in order: priority and fairness properties.
    for (const Admission& a : plan.admitted) {
      Request& r = reqs_.at(a.id);
      ASSERT_EQ(r.state, State::kWaiting);
      ASSERT_EQ(a.resumed, r.preemptions > 0);
      const bool interactive = r.req.priority == Priority::kInteractive || Aged(r);
      if (!interactive) {
        // A batch admission means no interactive (or aged) request that could run was waiting.
        for (SeqId other : waiting_before) {
          const Request& o = reqs_.at(other);
          if (o.state != State::kWaiting || o.wait_start_step > step_) continue;
          ASSERT_FALSE(o.req.priority == Priority::kInteractive || Aged(o))
              << "batch " << a.id << " admitted before interactive " << other;
        }
      }
      const int cls = r.req.priority == Priority::kInteractive ? 0 : 1;
      if (w_.aging_ms <= 0) {
        // Least-recently-served: while r waited, no other client was admitted in r's class more
        // than once more than r's own client was (in any class).
        auto& start = r.admissions_at_wait_start;
        const int64_t own = admissions_[0][r.req.client] - start[0][r.req.client] +
                            admissions_[1][r.req.client] - start[1][r.req.client];
        for (const auto& [client, n] : admissions_[cls]) {
          const int64_t got = n - start[cls][client];
          ASSERT_LE(got, own + 1) << client << " served " << got << " times while " << a.id
                                  << " of " << r.req.client << " waited";
        }
      }
      ++admissions_[cls][r.req.client];
      r.state = State::kRunning;
      r.n_computed = a.cached_tokens;
      ASSERT_EQ(a.cached_tokens, kv_.NumComputed(a.id));
      if (r.first_admit_step < 0) {
        r.first_admit_step = step_;
        if (contended_) {
          const int p = r.req.priority == Priority::kInteractive ? 0 : 1;
          totals_.wait_steps[p] += step_ - r.arrival_step;
          ++totals_.waited[p];
        }
      }
    }
    for (SeqId id : waiting_before) {
      if (reqs_.at(id).state == State::kWaiting) contended_ = true;
    }
    // Preemptions: KV freed, back to waiting; they resume in a later step
    // (not this one: their fairness window opens after this step's admissions).
    for (SeqId id : plan.preempted) {
      Request& r = reqs_.at(id);
      ASSERT_EQ(r.state, State::kRunning);
      ASSERT_FALSE(kv_.HasSequence(id));
      ++r.preemptions;
      StartWait(r, step_ + 1);
    }

    for (auto& [id, r] : reqs_) {
      if (r.state != State::kRunning) continue;
      ASSERT_TRUE(kv_.HasSequence(id));
      ASSERT_EQ(kv_.NumTokens(id), static_cast<int32_t>(r.context.size()))
          << "whole context reserved";
    }
    // Decode-first: every sequence with a sampled token decodes now or was preempted
    // (max_running <= budget, so decodes always fit the budget).
    for (SeqId id : decoders) {
      const bool preempted = std::count(plan.preempted.begin(), plan.preempted.end(), id) > 0;
      bool decoded = false;
      for (const ScheduledChunk& c : plan.chunks) decoded |= c.id == id && c.decode;
      ASSERT_TRUE(preempted || decoded) << "decode of " << id << " skipped";
    }
    // KV: not over-committed; running sequences own exactly their tables.
    const kv::KvStats st = kv_.Stats();
    ASSERT_EQ(st.free_blocks + st.evictable_blocks + st.used_blocks, st.total_blocks);
    int32_t running = 0;
    for (auto& [id, r] : reqs_) running += r.state == State::kRunning ? 1 : 0;
    ASSERT_LE(running, w_.max_running);
    ASSERT_EQ(st.n_sequences, running);

    // The engine: writes K/V for each chunk, then checks attention would read the right K/V.
    for (const ScheduledChunk& c : plan.chunks) {
      Request& r = reqs_.at(c.id);
      ASSERT_EQ(r.state, State::kRunning);
      ASSERT_EQ(c.pos, r.n_computed) << "chunk does not continue the computed prefix";
      ASSERT_LE(c.pos + c.n_tokens, static_cast<int32_t>(r.context.size()));
      ASSERT_EQ(c.sample, c.pos + c.n_tokens == static_cast<int32_t>(r.context.size()));
      auto table = kv_.BlockTable(c.id);
      for (int32_t pos = c.pos; pos < c.pos + c.n_tokens; ++pos) {
        const kv::BlockId b = table[pos / w_.block_size];
        ASSERT_EQ(kv_.RefCount(b), 1) << "writing into a shared block";
        pool_[static_cast<size_t>(b) * w_.block_size + pos % w_.block_size] =
            r.context[pos] * 2 + (r.req.extra_key.empty() ? 0 : 1);
      }
      r.n_computed = c.pos + c.n_tokens;
    }
    sched_->CompleteStep(plan);
    for (const ScheduledChunk& c : plan.chunks) {
      if (!c.sample) continue;
      Request& r = reqs_.at(c.id);
      auto table = kv_.BlockTable(c.id);
      for (int32_t pos = 0; pos < r.n_computed; ++pos) {
        const kv::BlockId b = table[pos / w_.block_size];
        ASSERT_EQ(pool_[static_cast<size_t>(b) * w_.block_size + pos % w_.block_size],
                  r.context[pos] * 2 + (r.req.extra_key.empty() ? 0 : 1))
            << "seq " << c.id << " would attend to wrong K/V at " << pos;
      }
      // No token lost or repeated across preemptions.
      ASSERT_EQ(static_cast<int32_t>(r.context.size()), r.prompt_len + r.generated);
      const int32_t token = TokenFor(c.id, r.generated);
      ++r.generated;
      if (r.generated == r.output_len) {
        sched_->Remove(c.id);
        r.state = State::kDone;
        ASSERT_FALSE(kv_.HasSequence(c.id));
      } else {
        sched_->AppendToken(c.id, token);
        r.context.push_back(token);
      }
    }
  }

  std::mt19937 rng_;
  Workload w_;
  Totals& totals_;
  kv::PagedKvCache kv_;
  std::unique_ptr<Scheduler> sched_;
  std::vector<int32_t> pool_;  // [n_blocks * block_size]: token id * 2 + adapter bit
  std::map<SeqId, Request> reqs_;
  std::map<std::string, int64_t> admissions_[2];  // by class (interactive, batch), by client
  int64_t step_ = 0;
  bool contended_ = false;
};

Workload RandomWorkload(std::mt19937& rng) {
  auto u = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Workload w;
  w.block_size = u(0, 2) == 0 ? 1 : (u(0, 1) ? 4 : 16);
  const int32_t tokens = u(0, 2) == 0 ? u(16, 96) : u(96, 1200);  // KV capacity in tokens
  w.n_blocks = std::max(1, tokens / w.block_size);
  w.budget = std::vector<int32_t>{8, 16, 64, 512}[u(0, 3)];
  w.max_running = std::min(w.budget, u(1, 24));
  w.n_clients = u(1, 6);
  w.n_requests = u(5, 60);
  w.aging_ms = u(0, 1) ? 0 : u(1, 500);
  w.bursty = u(0, 1);
  w.mixed_priority = u(0, 2) != 0;
  return w;
}

TEST(SchedulerSimulationTest, RandomWorkloadsFinishWithinTheRules) {
  Totals totals;
  std::mt19937 rng(20261127);
  for (uint32_t seed = 1; seed <= 2000; ++seed) {
    const Workload w = RandomWorkload(rng);
    SCOPED_TRACE(testing::Message()
                 << "seed " << seed << " blocks " << w.n_blocks << "x" << w.block_size << " budget "
                 << w.budget << " max_running " << w.max_running << " clients " << w.n_clients
                 << " requests " << w.n_requests << " aging " << w.aging_ms);
    Simulation sim(seed, w, totals);
    sim.Run();
    if (HasFatalFailure()) return;
  }
  // Not vacuous: the workloads preempt, reject, cancel, hit the prefix cache, and preempted
  // sequences come back and finish.
  EXPECT_GT(totals.finished, 10000);
  EXPECT_GT(totals.preemptions, 100);
  EXPECT_GT(totals.resumed_finished, 100);
  EXPECT_GT(totals.rejected, 10);
  EXPECT_GT(totals.cancelled, 10);
  EXPECT_GT(totals.prefix_hit_tokens, 1000);
  // Under contention interactive requests wait no longer than batch ones on average.
  ASSERT_GT(totals.waited[0], 0);
  ASSERT_GT(totals.waited[1], 0);
  const double wait_interactive = static_cast<double>(totals.wait_steps[0]) / totals.waited[0];
  const double wait_batch = static_cast<double>(totals.wait_steps[1]) / totals.waited[1];
  EXPECT_LT(wait_interactive, wait_batch);
  std::printf(
      "finished %lld preemptions %lld resumed %lld rejected %lld cancelled %lld "
      "prefix hits %lld wait interactive %.1f batch %.1f steps\n",
      static_cast<long long>(totals.finished), static_cast<long long>(totals.preemptions),
      static_cast<long long>(totals.resumed_finished), static_cast<long long>(totals.rejected),
      static_cast<long long>(totals.cancelled), static_cast<long long>(totals.prefix_hit_tokens),
      wait_interactive, wait_batch);
}

}  // namespace
}  // namespace weft::scheduler
