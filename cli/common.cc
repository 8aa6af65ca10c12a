// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cstdio>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "engine/model/model.h"

namespace weft::cli {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "weft: %s\n", std::string(status.message()).c_str());
  return 1;
}

int Usage(const std::string& text) {
  std::fprintf(stderr, "usage: %s\n", text.c_str());
  return 2;
}

int DefaultThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp<unsigned>(n == 0 ? 1 : n, 1, 8));
}

absl::StatusOr<kernels::Isa> ParseIsa(const std::string& name) {
  if (name.empty()) return kernels::BestIsa();
  for (kernels::Isa isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
    if (absl::AsciiStrToLower(name) == std::string(kernels::IsaName(isa))) {
      if (!kernels::IsaSupported(isa)) {
        return absl::InvalidArgumentError(absl::StrCat("--isa ", name, ": not supported here"));
      }
      return isa;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("--isa ", name, ": expected scalar|avx2|avx512"));
}

static uint64_t ParamCount(const model::Model& m) {
  auto count = [](const model::Tensor& t) -> uint64_t {
    return t.present() ? static_cast<uint64_t>(t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3]) : 0;
  };
  const model::ModelWeights& w = m.weights;
  uint64_t n = count(w.tok_embd) + count(w.output_norm);
  if (w.output.data != w.tok_embd.data) n += count(w.output);
  for (const model::LayerWeights& l : w.layers) {
    for (const model::Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv,
                                   &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      n += count(*t);
    }
  }
  return n;
}

std::string HumanParams(const model::Model& m) {
  double n = static_cast<double>(ParamCount(m));
  if (n >= 1e9) return absl::StrFormat("%.2f B", n / 1e9);
  if (n >= 1e6) return absl::StrFormat("%.2f M", n / 1e6);
  return absl::StrFormat("%.2f K", n / 1e3);
}

std::string HumanBytes(uint64_t bytes) {
  double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return absl::StrFormat("%.2f GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return absl::StrFormat("%.2f MiB", b / (1024.0 * 1024));
  return absl::StrFormat("%.2f KiB", b / 1024.0);
}

std::string ModelDescription(const model::Model& m) {
  double n = static_cast<double>(ParamCount(m));
  std::string size =
      n >= 1e9 ? absl::StrFormat("%.0fB", n / 1e9) : absl::StrFormat("%.0fM", n / 1e6);
  // The type of the largest matrices names the quantization, as llama.cpp's file type does.
  std::string type = "F32";
  if (!m.weights.layers.empty()) {
    type =
        absl::AsciiStrToUpper(std::string(kernels::Traits(m.weights.layers[0].w_gate.type).name));
  }
  return absl::StrCat(m.config.arch, " ", size, " ", type);
}

}  // namespace weft::cli
