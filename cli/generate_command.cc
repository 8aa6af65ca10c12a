// SPDX-License-Identifier: Apache-2.0
// `weft generate MODEL [--tokenizer FILE] -p PROMPT [-n N] [--temp T] [--seed S] [--threads N] ...`
// streams the generated text to stdout; timings go to stderr.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "engine/model/arch/generate.h"
#include "engine/model/arch/llama.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"

namespace weft::cli {

int GenerateCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2,
                          {{{"-m", "--model"}},
                           {{"--tokenizer"}},
                           {{"-p", "--prompt"}},
                           {{"-n", "--n-predict"}},
                           {{"--temp"}},
                           {{"--top-k"}},
                           {{"--top-p"}},
                           {{"--min-p"}},
                           {{"--repeat-penalty"}},
                           {{"--frequency-penalty"}},
                           {{"--presence-penalty"}},
                           {{"--seed"}},
                           {{"-t", "--threads"}},
                           {{"-c", "--ctx"}},
                           {{"--isa"}},
                           {{"--stop"}, true, true},
                           {{"--ignore-eos"}, false},
                           {{"--special"}, false},
                           {{"--no-bos"}, false},
                           {{"-q", "--quiet"}, false}});
  if (!args.ok()) return Fail(args.status());
  std::string path = args->GetString("--model", "");
  if (path.empty() && !args->positional().empty()) path = args->positional()[0];
  if (path.empty() || args->positional().size() > 1) {
    return Usage(
        "weft generate MODEL [--tokenizer FILE] -p PROMPT [-n N] [--temp T] [--seed S] "
        "[--threads N]");
  }

  sampling::SamplingParams sp;  // OpenAI defaults (T 1, no filters) unless flags say otherwise
  auto n = args->GetInt("--n-predict", 128);
  auto temp = args->GetDouble("--temp", 0.8);
  auto top_k = args->GetInt("--top-k", 40);
  auto top_p = args->GetDouble("--top-p", 0.95);
  auto min_p = args->GetDouble("--min-p", 0.05);
  auto rep = args->GetDouble("--repeat-penalty", 1.0);
  auto freq = args->GetDouble("--frequency-penalty", 0.0);
  auto pres = args->GetDouble("--presence-penalty", 0.0);
  auto seed = args->GetInt("--seed", 0);
  auto threads = args->GetInt("--threads", DefaultThreads());
  auto ctx = args->GetInt("--ctx", 0);
  for (const absl::Status& s :
       {n.status(), temp.status(), top_k.status(), top_p.status(), min_p.status(), rep.status(),
        freq.status(), pres.status(), seed.status(), threads.status(), ctx.status()}) {
    if (!s.ok()) return Fail(s);
  }
  sp.max_tokens = static_cast<int32_t>(*n);
  sp.temperature = static_cast<float>(*temp);
  sp.top_k = static_cast<int32_t>(*top_k);
  sp.top_p = static_cast<float>(*top_p);
  sp.min_p = static_cast<float>(*min_p);
  sp.repetition_penalty = static_cast<float>(*rep);
  sp.frequency_penalty = static_cast<float>(*freq);
  sp.presence_penalty = static_cast<float>(*pres);
  sp.seed = static_cast<uint64_t>(*seed);
  sp.stop = args->GetAll("--stop");
  sp.ignore_eos = args->Has("--ignore-eos");
  auto isa = ParseIsa(args->GetString("--isa", ""));
  if (!isa.ok()) return Fail(isa.status());

  model::LoadOptions lo;
  lo.tokenizer_path = args->GetString("--tokenizer", "");
  auto model = model::LoadModel(path, lo);
  if (!model.ok()) return Fail(model.status());
  auto tok = tokenizer::LoadTokenizer(**model, lo.tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());

  model::ForwardOptions fo;
  fo.n_threads = static_cast<int>(*threads);
  fo.isa = *isa;
  fo.n_ctx = static_cast<int>(*ctx);
  auto fwd = model::LlamaForward::Create(**model, fo);
  if (!fwd.ok()) return Fail(fwd.status());

  model::GenerateRequest req;
  req.prompt = args->GetString("--prompt", "");
  req.add_bos = !args->Has("--no-bos");
  req.parse_special = args->Has("--special");
  req.sampling = sp;
  // The prompt is echoed first, as llama.cpp's CLI does, so stdout reads as one text.
  std::fwrite(req.prompt.data(), 1, req.prompt.size(), stdout);
  std::fflush(stdout);
  auto result = model::Generate(**fwd, **tok, req, [](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  if (!result.ok()) return Fail(result.status());
  if (!args->Has("--quiet")) {
    const auto& r = *result;
    std::fprintf(stderr,
                 "\n[%zu prompt tokens in %.3f s (%.1f tok/s), %zu generated in %.3f s (%.1f tok/s)"
                 ", finish: %s, %s, %d threads]\n",
                 r.prompt_tokens.size(), r.prefill_seconds,
                 r.prompt_tokens.size() / std::max(r.prefill_seconds, 1e-9), r.tokens.size(),
                 r.decode_seconds, r.tokens.size() / std::max(r.decode_seconds, 1e-9),
                 std::string(sampling::FinishReasonName(r.finish)).c_str(),
                 std::string(kernels::IsaName((*fwd)->backend().isa())).c_str(), fo.n_threads);
  }
  return 0;
}

}  // namespace weft::cli
