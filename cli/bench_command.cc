// SPDX-License-Identifier: Apache-2.0
// `weft bench MODEL [-p 512] [-n 128] [--threads N] [-r 5]`: prompt-processing and generation speed
// in tokens/s, printed as llama-bench prints it (mean ± stddev over repetitions, after a warm-up).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "engine/model/arch/llama.h"
#include "engine/model/model.h"

namespace weft::cli {
namespace {

struct Stats {
  double mean = 0;
  double stddev = 0;
};

Stats Summarize(const std::vector<double>& v) {
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  for (double x : v) s.stddev += (x - s.mean) * (x - s.mean);
  s.stddev = v.size() > 1 ? std::sqrt(s.stddev / (v.size() - 1)) : 0.0;
  return s;
}

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

int BenchCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2,
                          {{{"-m", "--model"}},
                           {{"-p", "--n-prompt"}},
                           {{"-n", "--n-gen"}},
                           {{"-t", "--threads"}},
                           {{"-r", "--repetitions"}},
                           {{"--isa"}},
                           {{"--tokenizer"}}});
  if (!args.ok()) return Fail(args.status());
  std::string path = args->GetString("--model", "");
  if (path.empty() && !args->positional().empty()) path = args->positional()[0];
  if (path.empty()) return Usage("weft bench MODEL [-p 512] [-n 128] [--threads N] [-r 5]");
  auto n_prompt = args->GetInt("--n-prompt", 512);
  auto n_gen = args->GetInt("--n-gen", 128);
  auto threads = args->GetInt("--threads", DefaultThreads());
  auto reps = args->GetInt("--repetitions", 5);
  if (!n_prompt.ok()) return Fail(n_prompt.status());
  if (!n_gen.ok()) return Fail(n_gen.status());
  if (!threads.ok()) return Fail(threads.status());
  if (!reps.ok()) return Fail(reps.status());
  auto isa = ParseIsa(args->GetString("--isa", ""));
  if (!isa.ok()) return Fail(isa.status());

  model::LoadOptions lo;
  lo.tokenizer_path = args->GetString("--tokenizer", "");
  auto model = model::LoadModel(path, lo);
  if (!model.ok()) return Fail(model.status());
  const model::ModelConfig& c = (*model)->config;

  model::ForwardOptions fo;
  fo.n_ctx = static_cast<int>(std::max<int64_t>(*n_prompt + *n_gen, 1));
  fo.n_batch = static_cast<int>(std::max<int64_t>(*n_prompt, 1));
  fo.n_threads = static_cast<int>(*threads);
  fo.isa = *isa;
  auto fwd = model::LlamaForward::Create(**model, fo);
  if (!fwd.ok()) return Fail(fwd.status());
  model::LlamaForward& f = **fwd;

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, c.vocab_size - 1);
  auto random_tokens = [&](int64_t n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = pick(rng);
    return t;
  };

  std::string desc = ModelDescription(**model);
  std::printf("| model | size | params | backend | threads | test | t/s |\n");
  std::printf("| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
  auto row = [&](const std::string& test, const std::vector<double>& tps) {
    Stats s = Summarize(tps);
    std::printf("| %s | %s | %s | CPU %s | %d | %s | %.2f ± %.2f |\n", desc.c_str(),
                HumanBytes((*model)->weight_bytes).c_str(), HumanParams(**model).c_str(),
                std::string(kernels::IsaName(f.backend().isa())).c_str(), fo.n_threads,
                test.c_str(), s.mean, s.stddev);
    std::fflush(stdout);
  };

  if (*n_prompt > 0) {
    std::vector<double> tps;
    for (int64_t r = -1; r < *reps; ++r) {  // r = -1: warm-up
      f.Truncate(0);
      std::vector<int32_t> prompt = random_tokens(*n_prompt);
      auto t0 = std::chrono::steady_clock::now();
      auto out = f.Forward(prompt);
      auto t1 = std::chrono::steady_clock::now();
      if (!out.ok()) return Fail(out.status());
      if (r >= 0) tps.push_back(*n_prompt / Seconds(t0, t1));
    }
    row(absl::StrFormat("pp%d", *n_prompt), tps);
  }
  if (*n_gen > 0) {
    std::vector<double> tps;
    for (int64_t r = -1; r < *reps; ++r) {
      f.Truncate(0);
      int32_t token = pick(rng);
      auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < *n_gen; ++i) {
        auto out = f.Forward(std::span<const int32_t>(&token, 1));
        if (!out.ok()) return Fail(out.status());
        token = pick(rng);
      }
      auto t1 = std::chrono::steady_clock::now();
      if (r >= 0) tps.push_back(*n_gen / Seconds(t0, t1));
    }
    row(absl::StrFormat("tg%d", *n_gen), tps);
  }
  return 0;
}

}  // namespace weft::cli
