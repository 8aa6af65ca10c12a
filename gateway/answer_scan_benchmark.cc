// SPDX-License-Identifier: Apache-2.0
// ScanAnswer (one validating pass) against nlohmann on the same bytes: accept() (validation
// only, the least nlohmann can do) and parse() (a document, what a naive proxy would build).
// Bodies: the fixed completion of bench/compare_gateway.sh, and a 4 KiB answer with escapes and
// non-ASCII text. And ScanCompletionRequest (the request fast path) against what the gateway did
// before it, parse() + api::ParseCompletionRequestJson, on the request body of
// bench/compare_gateway.sh and on one with sampling options and an escaped prompt. Compare the
// rows of one run (ratios), not absolute times.
//   build/release/gateway/answer_scan_benchmark
#include <string>

#include "benchmark/benchmark.h"
#include "api/openai.h"
#include "gateway/answer_scan.h"
#include "gateway/request_scan.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {
namespace {

std::string Body(int64_t kind) {
  if (kind == 0) {
    return R"({"id":"cmpl-bench","object":"text_completion","created":1700000000,"model":"bench",)"
           R"("choices":[{"index":0,"text":" a fixed answer from the bench upstream","logprobs":null,)"
           R"("finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":8,)"
           R"("total_tokens":14}})";
  }
  std::string text;
  while (text.size() < 4000) {
    text += R"(Caf\u00e9 na\"ive \u2014 r\u00e9sum\u00e9\n )";
    text += "d\xc3\xa9j\xc3\xa0 vu, \xe2\x80\x94 the quick brown fox jumps over the lazy dog. ";
  }
  return R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"bench",)"
         R"("choices":[{"index":0,"message":{"role":"assistant","content":")" + text +
         R"("},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":612,)"
         R"("completion_tokens":1024,"total_tokens":1636,"prompt_tokens_details":{"cached_tokens":512}}})";
}

void BM_ScanAnswer(benchmark::State& state) {
  const std::string body = Body(state.range(0));
  for (auto _ : state) {
    auto f = ScanAnswer(body, "bench");
    benchmark::DoNotOptimize(f);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_ScanAnswer)->Arg(0)->Arg(1);

void BM_NlohmannAccept(benchmark::State& state) {
  const std::string body = Body(state.range(0));
  for (auto _ : state) {
    bool ok = nlohmann::json::accept(body);
    benchmark::DoNotOptimize(ok);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_NlohmannAccept)->Arg(0)->Arg(1);

void BM_NlohmannParse(benchmark::State& state) {
  const std::string body = Body(state.range(0));
  for (auto _ : state) {
    auto j = nlohmann::ordered_json::parse(body, nullptr, false);
    benchmark::DoNotOptimize(j);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_NlohmannParse)->Arg(0)->Arg(1);

std::string RequestBody(int64_t kind) {
  if (kind == 0) return R"({"model":"bench","prompt":"The gateway benchmark says hello","max_tokens":8})";
  return R"({"model":"llama-8b:sql-lora","prompt":"Translate to SQL:\n\"list every user\"\n",)"
         R"("max_tokens":256,"temperature":0.7,"top_p":0.95,"seed":42,"stop":"\n\n",)"
         R"("user":"team-a","stream":false})";
}

void BM_ScanCompletionRequest(benchmark::State& state) {
  const std::string body = RequestBody(state.range(0));
  for (auto _ : state) {
    auto r = ScanCompletionRequest(body);
    if (!r) state.SkipWithError("declined");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ScanCompletionRequest)->Arg(0)->Arg(1);

void BM_ParseCompletionRequestJson(benchmark::State& state) {
  const std::string body = RequestBody(state.range(0));
  for (auto _ : state) {
    auto j = nlohmann::ordered_json::parse(body);
    auto r = api::ParseCompletionRequestJson(j, api::Endpoint::kCompletions);
    if (!r.ok()) state.SkipWithError("rejected");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseCompletionRequestJson)->Arg(0)->Arg(1);

}  // namespace
}  // namespace weft::gateway

BENCHMARK_MAIN();
