// SPDX-License-Identifier: Apache-2.0
// FakeEngine: an in-memory Engine for server and gateway tests. No model: generated token number g
// is (prompt[(g + s) % len] + 1) % vocab, s = 0 for greedy requests and the seed otherwise, over a
// byte-level FakeTokenizer. Honors max_tokens, stop strings, min_tokens/ignore_eos, resume,
// logprobs (made up, deterministic), adapters, queue limits, cancel and shutdown, with configurable
// delays. Thread-safe; events are delivered from its own step thread, like the real engine's.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/runtime/engine.h"
#include "engine/tokenizer/tokenizer.h"

namespace weft::testing {

// Byte-level tokenizer: 0 <unk>, 1 <s> (BOS), 2 </s> (EOS), 3 + b for byte b. vocab_size 259.
// add_bos_default() is false, so a prompt "abc" generates "bcd" "bcd"... under FakeEngine.
class FakeTokenizer : public tokenizer::Tokenizer {
 public:
  static constexpr int32_t kUnk = 0, kBos = 1, kEos = 2, kByteOffset = 3, kVocab = 259;
  std::vector<int32_t> Encode(std::string_view text,
                              const tokenizer::EncodeOptions& options) const override;
  std::string DecodeToken(int32_t id, int32_t prev) const override;
  int32_t vocab_size() const override { return kVocab; }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }
  bool add_bos_default() const override { return false; }
  bool IsEndOfGeneration(int32_t id) const override { return id == kEos; }
  std::string_view TokenText(int32_t id) const override;
  std::string_view kind() const override { return "fake"; }
};

struct FakeEngineOptions {
  std::string model_id = "fake-model";
  int32_t n_ctx = 256;
  int32_t max_running = 256;   // requests generating at once; the rest wait
  int32_t max_waiting = 1024;  // Submit past running + waiting >= this: ResourceExhausted
  double step_interval_s = 0;  // sleep between steps (each running request gains one token a step)
  double first_token_delay_s = 0;  // extra delay before a request's first token
  int32_t eos_after = -1;          // >= 0: generated token number eos_after is EOS (unless masked)
  int32_t kv_blocks_total = 64;
  int32_t kv_block_size = 16;
  int32_t cached_tokens = 0;          // reported as cached for every request (capped at its prompt)
  std::vector<std::string> adapters;  // loaded at start
};

class FakeEngine : public engine::Engine {
 public:
  explicit FakeEngine(FakeEngineOptions options = {});
  ~FakeEngine() override;  // Shutdown(0)

  absl::Status Submit(engine::EngineRequest request,
                      std::shared_ptr<engine::EventSink> sink) override;
  void Cancel(const std::string& request_id) override;
  engine::LoadReport Load() const override;
  absl::Status LoadAdapter(const std::string& name, const std::string& path) override;
  absl::Status UnloadAdapter(const std::string& name) override;
  void Shutdown(double deadline_seconds) override;
  const tokenizer::Tokenizer& tokenizer() const override { return tokenizer_; }
  int32_t n_ctx() const override { return options_.n_ctx; }
  std::string model_id() const override { return options_.model_id; }

  // Holds the step thread (requests queue up but make no progress) until Resume().
  void Pause();
  void Resume();

  // What happened, for assertions.
  std::vector<engine::EngineRequest> submitted() const;  // accepted requests, in order
  std::vector<std::string> cancelled() const;            // ids whose Cancel reached a live request
  int32_t active() const;                                // running + waiting
  // The tokens FakeEngine generates for `prompt` (ignoring stops, EOS and limits).
  static int32_t TokenAt(const std::vector<int32_t>& prompt, int64_t g, uint64_t shift);

 private:
  struct Live;
  void Loop();
  bool Step(std::vector<std::shared_ptr<Live>>& batch);  // true if any request advanced

  FakeEngineOptions options_;
  FakeTokenizer tokenizer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Live>> waiting_;           // guarded by mu_
  std::vector<std::shared_ptr<Live>> running_;          // guarded by mu_
  std::map<std::string, std::shared_ptr<Live>> by_id_;  // guarded by mu_
  std::set<std::string> adapters_;                      // guarded by mu_
  std::vector<engine::EngineRequest> submitted_;        // guarded by mu_
  std::vector<std::string> cancelled_;                  // guarded by mu_
  bool admitting_ = true;                               // guarded by mu_
  bool paused_ = false;                                 // guarded by mu_
  bool stop_ = false;                                   // guarded by mu_
  double drain_deadline_s_ = 0;                         // guarded by mu_
  int64_t steps_ = 0;                                   // guarded by mu_
  int64_t prefix_hits_ = 0;                             // guarded by mu_
  std::thread thread_;
};

}  // namespace weft::testing
