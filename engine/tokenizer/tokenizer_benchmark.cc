// SPDX-License-Identifier: Apache-2.0
// Encode speed on ~10 KB of mixed English/code/Unicode text with the llama-bpe and llama-spm
// vocabularies from ../shared/vocab. Bytes/s is the input text rate.
#include <chrono>
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "engine/model/gguf.h"
#include "engine/tokenizer/loaders.h"
#include "testing/test_data.h"

namespace weft::tokenizer {
namespace {

std::string SampleText() {
  const std::string para =
      "Once upon a time, in a small village by the sea, there lived a girl named Lily. She loved "
      "to play outside and collect shells; every day she'd count them: 1, 2, 3... up to 1234!\n"
      "    def encode(self, text: str) -> list[int]:\n        return [ord(c) for c in text]\n"
      "Der Fluß fließt schnell. Ça va très bien. Привет, как дела? 你好，世界。 🚀 emoji too.\n"
      "I've been 'told he's there, 'RE you sure? We'Ve a'lL\t\ttabs   and  spaces.\n\n";
  std::string text;
  while (text.size() < 10 * 1024) text += para;
  return text;
}

void BM_Encode(benchmark::State& state, const char* vocab) {
  auto gguf = model::GgufFile::Open(
      weft::testing::RequireTestData(std::string("vocab/ggml-vocab-") + vocab + ".gguf"));
  if (!gguf.ok()) {
    state.SkipWithError(std::string(gguf.status().message()).c_str());
    return;
  }
  auto tok = LoadGgufTokenizer(**gguf);
  if (!tok.ok()) {
    state.SkipWithError(std::string(tok.status().message()).c_str());
    return;
  }
  const std::string text = SampleText();
  // The BPE word cache is cold only on the first call; report that call separately.
  const auto t0 = std::chrono::steady_clock::now();
  benchmark::DoNotOptimize((*tok)->Encode(text, {.add_bos = true}));
  const double first_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  size_t n_tokens = 0;
  for (auto _ : state) {
    auto ids = (*tok)->Encode(text, {.add_bos = true});
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.counters["first_call_us"] = first_us;
}

BENCHMARK_CAPTURE(BM_Encode, llama_bpe, "llama-bpe")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Encode, llama_spm, "llama-spm")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Encode, qwen2, "qwen2")->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace weft::tokenizer

BENCHMARK_MAIN();
