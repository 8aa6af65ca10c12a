// SPDX-License-Identifier: Apache-2.0
// `weft model inspect|tokenize|detokenize|synth`.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "engine/model/gguf.h"
#include "engine/model/model.h"
#include "engine/model/synth.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace weft::cli {
namespace {

const char* FormatName(model::ModelFormat f) {
  switch (f) {
    case model::ModelFormat::kGguf:
      return "gguf";
    case model::ModelFormat::kLlama2c:
      return "llama2.c";
    case model::ModelFormat::kHfSafetensors:
      return "hf-safetensors";
  }
  return "?";
}

std::string Shape(const model::Tensor& t) {
  std::vector<int64_t> dims;
  for (int64_t d : t.ne) dims.push_back(d);
  while (dims.size() > 1 && dims.back() == 1) dims.pop_back();
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

int Inspect(const Args& args) {
  if (args.positional().size() != 1) return Usage("weft model inspect MODEL [--tokenizer FILE]");
  model::LoadOptions lo;
  lo.tokenizer_path = args.GetString("--tokenizer", "");
  auto m = model::LoadModel(args.positional()[0], lo);
  if (!m.ok()) return Fail(m.status());
  const model::Model& model = **m;
  const model::ModelConfig& c = model.config;
  std::printf("model:        %s\n", model.path.c_str());
  std::printf("format:       %s\n", FormatName(model.format));
  if (model.gguf) std::printf("gguf version: %u\n", model.gguf->version());
  std::printf("architecture: %s\n", c.arch.c_str());
  if (!c.name.empty()) std::printf("name:         %s\n", c.name.c_str());
  std::printf("description:  %s\n", ModelDescription(model).c_str());
  std::printf("parameters:   %s\n", HumanParams(model).c_str());
  std::printf("size:         %s of weights\n", HumanBytes(model.weight_bytes).c_str());
  std::printf("n_layers %d, d_model %d, n_heads %d, n_kv_heads %d, head_dim %d, d_ff %d\n",
              c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff);
  std::printf("vocab_size %d, max_ctx %d, norm_eps %g\n", c.vocab_size, c.max_ctx, c.norm_eps);
  const char* scaling = c.rope_scaling.kind == model::RopeScaling::Kind::kLlama3   ? "llama3"
                        : c.rope_scaling.kind == model::RopeScaling::Kind::kLinear ? "linear"
                                                                                   : "none";
  std::printf("rope: %s, freq_base %g, dims %d, scaling %s (factor %g)%s\n",
              c.rope_layout == model::RopeLayout::kHalves ? "halves (neox)" : "adjacent pairs",
              c.rope_freq_base, c.rope_dim, scaling, c.rope_scaling.factor,
              model.weights.rope_freqs.present() ? ", rope_freqs tensor" : "");
  std::printf("output: %s%s\n", c.tied_embeddings ? "tied to token embeddings" : "separate",
              c.qkv_bias ? "; q/k/v biases" : "");

  // Tensor types: how many tensors and bytes of each.
  std::map<std::string, std::pair<int, uint64_t>> by_type;
  auto add = [&](const model::Tensor& t) {
    if (!t.present()) return;
    auto& e = by_type[std::string(kernels::Traits(t.type).name)];
    e.first++;
    e.second += kernels::RowBytes(t.type, t.ne[0]) * t.rows();
  };
  const model::ModelWeights& w = model.weights;
  add(w.tok_embd);
  add(w.output_norm);
  if (w.output.data != w.tok_embd.data) add(w.output);
  for (const auto& l : w.layers) {
    for (const model::Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv,
                                   &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      add(*t);
    }
  }
  std::printf("tensor types:");
  for (const auto& [name, e] : by_type) {
    std::printf(" %s x%d (%s)", name.c_str(), e.first, HumanBytes(e.second).c_str());
  }
  std::printf("\n");
  std::printf("tensors: token_embd %s %s", Shape(w.tok_embd).c_str(),
              std::string(kernels::Traits(w.tok_embd.type).name).c_str());
  if (!w.layers.empty()) {
    const auto& l = w.layers[0];
    std::printf(", blk.0 wq %s wk %s w_gate %s w_down %s", Shape(l.wq).c_str(), Shape(l.wk).c_str(),
                Shape(l.w_gate).c_str(), Shape(l.w_down).c_str());
  }
  std::printf("\n");

  auto tok = tokenizer::LoadTokenizer(model, lo.tokenizer_path);
  if (tok.ok()) {
    std::printf("tokenizer: %s, %d tokens, bos %d, eos %d, add_bos %s\n",
                std::string((*tok)->kind()).c_str(), (*tok)->vocab_size(), (*tok)->bos_id(),
                (*tok)->eos_id(), (*tok)->add_bos_default() ? "yes" : "no");
  } else {
    std::printf("tokenizer: unavailable (%s)\n", std::string(tok.status().message()).c_str());
  }
  return 0;
}

int Tokenize(const Args& args) {
  if (args.positional().size() != 2) {
    return Usage("weft model tokenize MODEL TEXT [--bos] [--special] [--tokenizer FILE]");
  }
  model::LoadOptions lo;
  lo.tokenizer_path = args.GetString("--tokenizer", "");
  auto m = model::LoadModel(args.positional()[0], lo);
  if (!m.ok()) return Fail(m.status());
  auto tok = tokenizer::LoadTokenizer(**m, lo.tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  std::vector<int32_t> ids = (*tok)->Encode(
      args.positional()[1], {.add_bos = args.Has("--bos"), .parse_special = args.Has("--special")});
  std::printf("%s\n", nlohmann::json(ids).dump().c_str());
  return 0;
}

int Detokenize(const Args& args) {
  if (args.positional().size() < 1) {
    return Usage("weft model detokenize MODEL ID... [--tokenizer FILE]");
  }
  model::LoadOptions lo;
  lo.tokenizer_path = args.GetString("--tokenizer", "");
  auto m = model::LoadModel(args.positional()[0], lo);
  if (!m.ok()) return Fail(m.status());
  auto tok = tokenizer::LoadTokenizer(**m, lo.tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  std::vector<int32_t> ids;
  for (size_t i = 1; i < args.positional().size(); ++i) {
    // Accept "1 2 3", "1,2,3" and a JSON array "[1, 2, 3]".
    std::string s = args.positional()[i];
    for (char& ch : s) {
      if (ch == '[' || ch == ']' || ch == ',') ch = ' ';
    }
    for (absl::string_view part : absl::StrSplit(s, ' ', absl::SkipEmpty())) {
      int32_t id;
      if (!absl::SimpleAtoi(part, &id) || id < 0 || id >= (*tok)->vocab_size()) {
        return Fail(absl::InvalidArgumentError(
            absl::StrCat("'", part, "' is not a token id in [0, ", (*tok)->vocab_size(), ")")));
      }
      ids.push_back(id);
    }
  }
  std::string text = (*tok)->Decode(ids);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::printf("\n");
  return 0;
}

int Synth(const Args& args) {
  model::SynthOptions o;
  o.shape = args.GetString("--shape", "");
  o.type = args.GetString("--type", "q8_0");
  o.vocab_path = args.GetString("--vocab", "");
  o.output_path = args.GetString("--output", "");
  auto seed = args.GetInt("--seed", 42);
  if (!seed.ok()) return Fail(seed.status());
  o.seed = static_cast<uint64_t>(*seed);
  if (o.shape.empty() || o.vocab_path.empty() || o.output_path.empty()) {
    return Usage(
        "weft model synth --shape llama-1b|llama-110m --type q8_0|q4_0|f16 --vocab VOCAB.gguf "
        "-o OUT.gguf [--seed S]");
  }
  absl::Status s = model::SynthesizeModel(o);
  if (!s.ok()) return Fail(s);
  std::fprintf(stderr, "wrote %s\n", o.output_path.c_str());
  return 0;
}

}  // namespace

int ModelCommand(int argc, char** argv) {
  if (argc < 3) return Usage("weft model inspect|tokenize|detokenize|synth ...");
  std::string sub = argv[2];
  auto args = Args::Parse(argc, argv, 3,
                          {{{"--tokenizer"}},
                           {{"--bos"}, false},
                           {{"--special"}, false},
                           {{"--shape"}},
                           {{"--type"}},
                           {{"--vocab"}},
                           {{"-o", "--output"}},
                           {{"--seed"}}});
  if (!args.ok()) return Fail(args.status());
  if (sub == "inspect") return Inspect(*args);
  if (sub == "tokenize") return Tokenize(*args);
  if (sub == "detokenize") return Detokenize(*args);
  if (sub == "synth") return Synth(*args);
  return Usage("weft model inspect|tokenize|detokenize|synth ...");
}

}  // namespace weft::cli
