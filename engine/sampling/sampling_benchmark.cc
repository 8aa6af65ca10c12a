// SPDX-License-Identifier: Apache-2.0
// Per-token sampling cost at Llama-2 (32000) and Llama-3 (128256) vocabulary sizes.
#include <cmath>
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/sampling/sampler.h"

namespace weft::sampling {
namespace {

// Logits shaped like a language model's: a few strong candidates over a broad low tail.
std::vector<float> MakeLogits(int32_t n_vocab) {
  std::vector<float> logits(n_vocab);
  uint64_t s = 88172645463325252ULL;
  for (int32_t i = 0; i < n_vocab; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    const double u = static_cast<double>(s >> 11) * 0x1.0p-53;
    logits[i] = static_cast<float>(-4.0 + 8.0 * u * u * u);  // skewed: few values near +4
  }
  return logits;
}

enum Mode { kGreedy, kTemperature, kLlamaCpp, kTopPOnly, kPenalties, kLogprobs };
const char* kModeNames[] = {"greedy",     "temp",      "llamacpp_defaults",
                            "top_p_only", "penalties", "logprobs"};

void BM_Sample(benchmark::State& state) {
  const auto n_vocab = static_cast<int32_t>(state.range(0));
  const auto mode = static_cast<Mode>(state.range(1));
  SamplingParams params;
  switch (mode) {
    case kGreedy:
      params = SamplingParams::Greedy();
      break;
    case kTemperature:
      params.temperature = 0.8f;
      break;
    case kLlamaCpp:
      params = SamplingParams::LlamaCppDefaults();
      break;
    case kTopPOnly:
      params.top_p = 0.95f;
      break;
    case kPenalties:
      params = SamplingParams::LlamaCppDefaults();
      params.repetition_penalty = 1.1f;
      params.frequency_penalty = 0.2f;
      params.presence_penalty = 0.1f;
      break;
    case kLogprobs:
      params = SamplingParams::LlamaCppDefaults();
      params.top_logprobs = 5;
      break;
  }
  const std::vector<float> base = MakeLogits(n_vocab);
  std::vector<float> logits = base;
  std::vector<int32_t> history(1024);
  for (size_t i = 0; i < history.size(); ++i)
    history[i] = static_cast<int32_t>((i * 7919) % n_vocab);
  Sampler sampler(params, n_vocab);
  state.SetLabel(kModeNames[mode]);
  TokenLogprobs lp;
  size_t step = 0;
  for (auto _ : state) {
    state.PauseTiming();
    logits = base;
    state.ResumeTiming();
    int32_t t =
        sampler.Sample(logits, history, 512 + step % 256, mode == kLogprobs ? &lp : nullptr);
    benchmark::DoNotOptimize(t);
    ++step;
  }
}

void Args(benchmark::internal::Benchmark* b) {
  for (int64_t v : {32000, 128256}) {
    for (int m = kGreedy; m <= kLogprobs; ++m) b->Args({v, m});
  }
  b->ArgNames({"vocab", "mode"});
}

BENCHMARK(BM_Sample)->Apply(Args)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace weft::sampling

BENCHMARK_MAIN();
