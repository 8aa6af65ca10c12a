// SPDX-License-Identifier: Apache-2.0
#include "testing/fake_engine.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "engine/sampling/generation_limits.h"
#include "engine/sampling/stop_matcher.h"

namespace weft::testing {
namespace {
using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
}  // namespace

std::vector<int32_t> FakeTokenizer::Encode(std::string_view text,
                                           const tokenizer::EncodeOptions& options) const {
  std::vector<int32_t> out;
  if (options.add_bos) out.push_back(kBos);
  for (unsigned char c : text) out.push_back(kByteOffset + c);
  return out;
}

std::string FakeTokenizer::DecodeToken(int32_t id, int32_t) const {
  if (id < kByteOffset || id >= kVocab) return "";
  return std::string(1, static_cast<char>(id - kByteOffset));
}

std::string_view FakeTokenizer::TokenText(int32_t id) const {
  static const std::string* kBytes = [] {
    auto* bytes = new std::string[256];
    for (int i = 0; i < 256; ++i) bytes[i] = std::string(1, static_cast<char>(i));
    return bytes;
  }();
  if (id == kUnk) return "<unk>";
  if (id == kBos) return "<s>";
  if (id == kEos) return "</s>";
  if (id < 0 || id >= kVocab) return "";
  return kBytes[id - kByteOffset];
}

struct FakeEngine::Live {
  engine::EngineRequest request;
  std::shared_ptr<engine::EventSink> sink;
  std::optional<sampling::StopMatcher> stops;
  Clock::time_point submitted;
  int64_t generated = 0;  // including resumed tokens
  int32_t prev = -1;
  std::atomic<bool> cancel{false};
  bool first = true;
  double ttft_s = 0;
};

FakeEngine::FakeEngine(FakeEngineOptions options) : options_(std::move(options)) {
  adapters_.insert(options_.adapters.begin(), options_.adapters.end());
  thread_ = std::thread([this] { Loop(); });
}

FakeEngine::~FakeEngine() { Shutdown(0); }

int32_t FakeEngine::TokenAt(const std::vector<int32_t>& prompt, int64_t g, uint64_t shift) {
  if (prompt.empty()) return FakeTokenizer::kByteOffset + 'a';
  uint64_t i = (static_cast<uint64_t>(g) + shift) % prompt.size();
  return (prompt[i] + 1) % FakeTokenizer::kVocab;
}

absl::Status FakeEngine::Submit(engine::EngineRequest request,
                                std::shared_ptr<engine::EventSink> sink) {
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= FakeTokenizer::kVocab) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", t, " out of range"));
    }
  }
  if (request.prompt.empty()) return absl::InvalidArgumentError("empty prompt");
  if (absl::Status s = request.sampling.Validate(FakeTokenizer::kVocab); !s.ok()) return s;
  if (static_cast<int64_t>(request.prompt.size() + request.resume.size()) >= options_.n_ctx) {
    return absl::OutOfRangeError(absl::StrCat("prompt of ", request.prompt.size(),
                                              " tokens does not fit the context of ",
                                              options_.n_ctx));
  }
  auto live = std::make_shared<Live>();
  live->stops.emplace(request.sampling.stop);
  live->submitted = Clock::now();
  live->generated = static_cast<int64_t>(request.resume.size());
  live->prev = request.resume.empty() ? request.prompt.back() : request.resume.back();
  live->sink = std::move(sink);
  {
    std::lock_guard lock(mu_);
    if (!admitting_) return absl::UnavailableError("engine is shutting down");
    if (!request.adapter.empty() && !adapters_.contains(request.adapter)) {
      return absl::NotFoundError(absl::StrCat("adapter '", request.adapter, "' is not loaded"));
    }
    if (static_cast<int32_t>(waiting_.size() + running_.size()) >= options_.max_waiting) {
      return absl::ResourceExhaustedError("request queue is full");
    }
    if (by_id_.contains(request.id)) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate request id ", request.id));
    }
    submitted_.push_back(request);
    live->request = std::move(request);
    by_id_[live->request.id] = live;
    waiting_.push_back(live);
  }
  cv_.notify_all();
  return absl::OkStatus();
}

void FakeEngine::Cancel(const std::string& request_id) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(request_id);
  if (it == by_id_.end()) return;
  it->second->cancel = true;
  cancelled_.push_back(request_id);
  cv_.notify_all();
}

engine::LoadReport FakeEngine::Load() const {
  std::lock_guard lock(mu_);
  engine::LoadReport r;
  r.running = static_cast<int32_t>(running_.size());
  r.waiting = static_cast<int32_t>(waiting_.size());
  for (const auto& l : running_) {
    r.tokens_in_flight += static_cast<int64_t>(l->request.prompt.size()) + l->generated;
  }
  r.kv_block_size = options_.kv_block_size;
  r.kv_blocks_total = options_.kv_blocks_total;
  int64_t used = (r.tokens_in_flight + options_.kv_block_size - 1) / options_.kv_block_size;
  r.kv_blocks_free = static_cast<int32_t>(std::max<int64_t>(0, options_.kv_blocks_total - used));
  r.adapters.assign(adapters_.begin(), adapters_.end());
  r.prefix_hit_tokens = prefix_hits_;
  r.step_count = steps_;
  return r;
}

absl::Status FakeEngine::LoadAdapter(const std::string& name, const std::string& path) {
  if (name.empty()) return absl::InvalidArgumentError("adapter name is empty");
  if (path.empty() || path.find("missing") != std::string::npos) {
    return absl::NotFoundError(absl::StrCat("adapter file '", path, "' not found"));
  }
  std::lock_guard lock(mu_);
  if (adapters_.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("adapter '", name, "' is already loaded"));
  }
  adapters_.insert(name);
  return absl::OkStatus();
}

absl::Status FakeEngine::UnloadAdapter(const std::string& name) {
  std::lock_guard lock(mu_);
  if (adapters_.erase(name) == 0) {
    return absl::NotFoundError(absl::StrCat("adapter '", name, "' is not loaded"));
  }
  return absl::OkStatus();
}

void FakeEngine::Pause() {
  std::lock_guard lock(mu_);
  paused_ = true;
}

void FakeEngine::Resume() {
  {
    std::lock_guard lock(mu_);
    paused_ = false;
  }
  cv_.notify_all();
}

std::vector<engine::EngineRequest> FakeEngine::submitted() const {
  std::lock_guard lock(mu_);
  return submitted_;
}
std::vector<std::string> FakeEngine::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}
int32_t FakeEngine::active() const {
  std::lock_guard lock(mu_);
  return static_cast<int32_t>(running_.size() + waiting_.size());
}

void FakeEngine::Shutdown(double deadline_seconds) {
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    admitting_ = false;
    stop_ = true;
    paused_ = false;
    drain_deadline_s_ = deadline_seconds;
  }
  cv_.notify_all();
  thread_.join();
}

void FakeEngine::Loop() {
  std::optional<Clock::time_point> stop_at;
  std::vector<std::shared_ptr<Live>> batch;
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock,
               [&] { return stop_ || (!paused_ && (!running_.empty() || !waiting_.empty())); });
      if (stop_) {
        if (!stop_at) {
          stop_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(drain_deadline_s_));
        }
        if (running_.empty() && waiting_.empty()) break;
        if (Clock::now() >= *stop_at) {
          for (auto& l : running_) l->cancel = true;
          for (auto& l : waiting_) l->cancel = true;
        }
      }
      while (!waiting_.empty() && static_cast<int32_t>(running_.size()) < options_.max_running) {
        running_.push_back(waiting_.front());
        waiting_.pop_front();
      }
      // Cancelled waiting requests finish too.
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if ((*it)->cancel) {
          running_.push_back(*it);
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      batch = running_;
      ++steps_;
    }
    bool progress = Step(batch);
    if (!progress && options_.step_interval_s <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // waiting on a first-token delay
    }
    if (options_.step_interval_s > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(options_.step_interval_s));
    }
  }
}

bool FakeEngine::Step(std::vector<std::shared_ptr<Live>>& batch) {
  std::vector<std::shared_ptr<Live>> done;
  bool progress = false;
  for (auto& l : batch) {
    const engine::EngineRequest& r = l->request;
    engine::FinishEvent finish;
    finish.prompt_tokens = static_cast<int32_t>(r.prompt.size());
    finish.cached_tokens = std::min(options_.cached_tokens, finish.prompt_tokens);
    bool finished = false;
    if (l->cancel) {
      finish.status = absl::CancelledError("request cancelled");
      finished = true;
    } else {
      if (l->first && SecondsSince(l->submitted) < options_.first_token_delay_s) continue;
      const int64_t g = l->generated;
      const bool greedy = r.sampling.temperature < 1e-6f;
      int32_t token = TokenAt(r.prompt, g, greedy ? 0 : r.sampling.seed);
      const bool eos_masked = r.sampling.ignore_eos || g < r.sampling.min_tokens;
      if (options_.eos_after >= 0 && g == options_.eos_after && !eos_masked) {
        token = FakeTokenizer::kEos;
      }
      if (token == FakeTokenizer::kEos && eos_masked) token = FakeTokenizer::kByteOffset + 'e';
      l->generated++;
      progress = true;
      if (l->first) l->ttft_s = SecondsSince(l->submitted);
      l->first = false;
      if (token == FakeTokenizer::kEos) {
        finish.reason = sampling::FinishReason::kEndOfGeneration;
        finish.tail_text = l->stops->Flush();
        finished = true;
      } else {
        engine::TokenEvent ev;
        ev.token = token;
        sampling::StopMatcher::Result res = l->stops->Push(tokenizer_.DecodeToken(token, l->prev));
        ev.text = std::move(res.emit);
        l->prev = token;
        if (r.logprobs) {
          sampling::TokenLogprobs lp;
          lp.chosen = -0.25f * static_cast<float>(1 + g % 3);
          for (int32_t k = 0; k < r.sampling.top_logprobs; ++k) {
            lp.top.push_back({(token + k) % FakeTokenizer::kVocab, lp.chosen - k});
          }
          ev.logprobs = std::move(lp);
        }
        l->sink->OnToken(ev);
        if (res.stopped) {
          finish.reason = sampling::FinishReason::kStopString;
          finished = true;
        } else if ((r.sampling.max_tokens > 0 && l->generated >= r.sampling.max_tokens) ||
                   static_cast<int64_t>(r.prompt.size()) + l->generated >= options_.n_ctx) {
          finish.reason = sampling::FinishReason::kLength;
          finish.tail_text = l->stops->Flush();
          finished = true;
        }
      }
    }
    if (finished) {
      progress = true;
      finish.completion_tokens = static_cast<int32_t>(l->generated);
      finish.ttft_seconds = l->ttft_s;
      l->sink->OnFinish(finish);
      done.push_back(l);
    }
  }
  if (done.empty()) return progress;
  std::lock_guard lock(mu_);
  for (auto& l : done) {
    by_id_.erase(l->request.id);
    running_.erase(std::remove(running_.begin(), running_.end(), l), running_.end());
    prefix_hits_ += std::min<int64_t>(options_.cached_tokens, l->request.prompt.size());
  }
  return true;
}

}  // namespace weft::testing
