// SPDX-License-Identifier: Apache-2.0
// MatMul throughput per weight type x ISA level x thread count at Llama-3.2-1B shapes, and the
// thread pool's per-call overhead. Weight matrices rotate through copies totalling more than the
// last-level cache, so batch-1 numbers are the memory-bound (decode) case, as in a real model.
//   kernels_benchmark --benchmark_filter='MatMul/q8_0'   (counters: GB/s of weights, GFLOP/s)
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "benchmark/benchmark.h"
#include "engine/kernels/kernels.h"

namespace weft::kernels {
namespace {

constexpr int64_t kRotateBytes = int64_t{768} << 20;  // above this CPU's 260 MiB L3

struct Shape {
  int64_t n_in, n_out;
};

std::vector<float> RandomFloats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void BM_MatMul(benchmark::State& state, Isa isa, DType type, Shape shape, int64_t n_tokens,
               int n_threads, bool hot) {
  const int64_t matrix_bytes = RowBytes(type, shape.n_in) * shape.n_out;
  // One quantized matrix, copied until the copies exceed the cache.
  std::vector<uint8_t> one(matrix_bytes);
  {
    const std::vector<float> f = RandomFloats(shape.n_in * shape.n_out, 1);
    for (int64_t o = 0; o < shape.n_out; ++o) {
      QuantizeRow(type, f.data() + o * shape.n_in, one.data() + o * RowBytes(type, shape.n_in),
                  shape.n_in);
    }
  }
  const int64_t n_copies =
      hot ? 1 : std::max<int64_t>(1, (kRotateBytes + matrix_bytes - 1) / matrix_bytes);
  std::vector<uint8_t> copies(n_copies * matrix_bytes);
  for (int64_t c = 0; c < n_copies; ++c) {
    std::memcpy(copies.data() + c * matrix_bytes, one.data(), matrix_bytes);
  }
  const std::vector<float> x = RandomFloats(shape.n_in * n_tokens, 2);
  std::vector<float> y(shape.n_out * n_tokens);
  auto backend = Backend::Create({isa, n_threads});
  int64_t c = 0;
  for (auto _ : state) {
    const WeightView w{type, copies.data() + c * matrix_bytes, shape.n_in, shape.n_out};
    backend->MatMul(w, x.data(), n_tokens, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    if (++c == n_copies) c = 0;
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(matrix_bytes) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * shape.n_in * shape.n_out * n_tokens * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_ThreadPoolRun(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  std::vector<int64_t> sink(64 * 8);
  for (auto _ : state) {
    pool.Run([&](int i, int) { sink[i * 8] += 1; });
  }
  benchmark::DoNotOptimize(sink.data());
}
BENCHMARK(BM_ThreadPoolRun)->Arg(1)->Arg(2)->UseRealTime();

void BM_ThreadPoolParallelFor(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  std::vector<int64_t> sink(1024);
  for (auto _ : state) {
    pool.ParallelFor(1024, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sink[i] += i;
    });
  }
  benchmark::DoNotOptimize(sink.data());
}
BENCHMARK(BM_ThreadPoolParallelFor)->Arg(1)->Arg(2)->UseRealTime();

// One decode step's attention at Llama-3.2-1B shapes (32 query heads, 8 kv heads, head_dim 64)
// over n_ctx cached positions.
void BM_Attention(benchmark::State& state, Isa isa, int64_t n_ctx, int n_threads) {
  const AttentionParams p{32, 8, 64, 0.125f};
  const std::vector<float> q = RandomFloats(p.n_heads * p.head_dim, 3);
  const std::vector<float> k = RandomFloats(n_ctx * p.n_kv_heads * p.head_dim, 4);
  const std::vector<float> v = RandomFloats(n_ctx * p.n_kv_heads * p.head_dim, 5);
  std::vector<float> out(q.size());
  const int32_t pos = static_cast<int32_t>(n_ctx - 1);
  auto backend = Backend::Create({isa, n_threads});
  for (auto _ : state) {
    backend->Attention(q.data(), k.data(), v.data(), 1, &pos, p, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["KV GB/s"] =
      benchmark::Counter(2.0 * static_cast<double>(k.size()) * sizeof(float) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

void RegisterMatMuls() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar}) {
    if (!IsaSupported(isa)) continue;
    for (int64_t n_ctx : {256, 2048}) {
      for (int n_threads : {1, 2}) {
        if (isa == Isa::kScalar && n_threads != 1) continue;
        const std::string name = "Attention/" + std::string(IsaName(isa)) + "/ctx" +
                                 std::to_string(n_ctx) + "/t" + std::to_string(n_threads);
        benchmark::RegisterBenchmark(name.c_str(), BM_Attention, isa, n_ctx, n_threads)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  const Shape shapes[] = {{2048, 2048}, {2048, 8192}, {8192, 2048}};
  const DType types[] = {DType::kQ8_0, DType::kQ4_0, DType::kF32, DType::kF16,
                         DType::kBF16, DType::kQ4_K, DType::kQ6_K};
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar}) {
    if (!IsaSupported(isa)) continue;
    for (DType type : types) {
      for (const Shape& s : shapes) {
        for (int64_t n_tokens : {1, 32}) {
          for (int n_threads : {1, 2}) {
            // The scalar oracle is slow: one shape, one configuration, for scale.
            if (isa == Isa::kScalar &&
                (s.n_out != 2048 || s.n_in != 2048 || n_tokens != 1 || n_threads != 1)) {
              continue;
            }
            const std::string name = "MatMul/" + std::string(Traits(type).name) + "/" +
                                     std::string(IsaName(isa)) + "/" + std::to_string(s.n_in) +
                                     "x" + std::to_string(s.n_out) + "/tok" +
                                     std::to_string(n_tokens) + "/t" + std::to_string(n_threads);
            benchmark::RegisterBenchmark(name.c_str(), BM_MatMul, isa, type, s, n_tokens, n_threads,
                                         /*hot=*/false)
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond)
                ->MinTime(0.3);
            // The same matrix every iteration (cache-resident): the kernels' compute speed.
            if (s.n_in == 2048 && s.n_out == 2048) {
              benchmark::RegisterBenchmark((name + "/hot").c_str(), BM_MatMul, isa, type, s,
                                           n_tokens, n_threads, /*hot=*/true)
                  ->UseRealTime()
                  ->Unit(benchmark::kMicrosecond)
                  ->MinTime(0.3);
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace weft::kernels

int main(int argc, char** argv) {
  weft::kernels::RegisterMatMuls();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
