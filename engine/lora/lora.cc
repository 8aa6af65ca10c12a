// SPDX-License-Identifier: Apache-2.0
#include "engine/lora/lora.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/check.h"
#include "base/mmap_file.h"
#include "base/status.h"
#include "engine/model/gguf.h"
#include "engine/model/safetensors.h"
#include "nlohmann/json.hpp"

namespace weft::lora {
namespace {

using kernels::DType;

// absl::StrCat that also takes std::string_view (Debian's Abseil has its own absl::string_view).
inline absl::string_view CatArg(std::string_view s) { return {s.data(), s.size()}; }
template <typename T>
const T& CatArg(const T& v) {
  return v;
}
template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(CatArg(args)...);
}

bool ConsumeSuffix(std::string_view* s, std::string_view suffix) {
  if (!s->ends_with(suffix)) return false;
  s->remove_suffix(suffix.size());
  return true;
}

bool ParseInt(std::string_view s, int* out) {
  return absl::SimpleAtoi(absl::string_view(s.data(), s.size()), out);
}

// A compiled PCRE2 pattern that must match a whole string (Python's re.fullmatch, as PEFT uses).
class FullMatch {
 public:
  static absl::StatusOr<std::shared_ptr<FullMatch>> Compile(const std::string& pattern) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_ANCHORED | PCRE2_ENDANCHORED, &err, &err_off, nullptr);
    if (code == nullptr) {
      return absl::InvalidArgumentError(
          StrCat("'", pattern, "' is not a valid regular expression"));
    }
    return std::shared_ptr<FullMatch>(new FullMatch(code));
  }
  ~FullMatch() { pcre2_code_free(code_); }
  bool Matches(std::string_view s) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    const int rc =
        pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0, md, nullptr);
    pcre2_match_data_free(md);
    return rc >= 0;
  }

 private:
  explicit FullMatch(pcre2_code* code) : code_(code) {}
  pcre2_code* code_;
};

std::optional<LoraTarget> TargetFromHf(std::string_view s);

// A PEFT tensor name: "[base_model.model.]<module>.lora_{A,B}[.default].weight" where the module
// is "<...>layers.<N>.{self_attn,mlp}.<proj>".
struct PeftName {
  std::string module;
  int layer = -1;
  LoraTarget target = LoraTarget::kQ;
  bool is_a = false;
};
std::optional<PeftName> ParsePeftName(std::string_view name) {
  PeftName out;
  if (name.starts_with("base_model.model.")) name.remove_prefix(17);
  bool matched = false;
  for (std::string_view suffix :
       {".lora_A.weight", ".lora_B.weight", ".lora_A.default.weight", ".lora_B.default.weight"}) {
    if (ConsumeSuffix(&name, suffix)) {
      out.is_a = suffix[6] == 'A';
      matched = true;
      break;
    }
  }
  if (!matched) return std::nullopt;
  out.module = std::string(name);
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(name.data(), name.size()), '.');
  const size_t n = parts.size();
  if (n < 4 || parts[n - 4] != absl::string_view("layers") ||
      (parts[n - 2] != absl::string_view("self_attn") &&
       parts[n - 2] != absl::string_view("mlp")) ||
      !ParseInt(std::string_view(parts[n - 3].data(), parts[n - 3].size()), &out.layer)) {
    return std::nullopt;
  }
  std::optional<LoraTarget> t =
      TargetFromHf(std::string_view(parts[n - 1].data(), parts[n - 1].size()));
  if (!t) return std::nullopt;
  out.target = *t;
  return out;
}
using model::RopeLayout;

constexpr std::array<std::string_view, kNumLoraTargets> kHfNames = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
constexpr std::array<std::string_view, kNumLoraTargets> kGgufStems = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

std::optional<LoraTarget> TargetFromHf(std::string_view s) {
  for (int i = 0; i < kNumLoraTargets; ++i) {
    if (kHfNames[i] == s) return static_cast<LoraTarget>(i);
  }
  return std::nullopt;
}
std::optional<LoraTarget> TargetFromGguf(std::string_view s) {
  for (int i = 0; i < kNumLoraTargets; ++i) {
    if (kGgufStems[i] == s) return static_cast<LoraTarget>(i);
  }
  return std::nullopt;
}

// Re-orders the rows of q/k lora_B ([n_out = heads * head_dim, rank]) within each head between
// the HF rotate-half layout and the GGUF adjacent-pair layout (llama.cpp's converter permutation):
// adjacent row 2i <-> halves row i, adjacent row 2i+1 <-> halves row i + head_dim/2.
void PermuteHeads(std::vector<float>& b, int64_t n_heads, int64_t head_dim, int64_t cols,
                  bool to_adjacent) {
  std::vector<float> out(b.size());
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t k = 0; k < 2; ++k) {
        const int64_t halves_row = h * head_dim + k * half + i;
        const int64_t adjacent_row = h * head_dim + 2 * i + k;
        const int64_t src = to_adjacent ? halves_row : adjacent_row;
        const int64_t dst = to_adjacent ? adjacent_row : halves_row;
        std::memcpy(out.data() + dst * cols, b.data() + src * cols, cols * sizeof(float));
      }
    }
  }
  b.swap(out);
}

// Fixes up q/k B rows when the adapter was made for the other RoPE layout.
void MatchLayout(LoraAdapter& a, const model::Model& base, RopeLayout adapter_layout) {
  const model::ModelConfig& c = base.config;
  if (adapter_layout == c.rope_layout || c.head_dim % 2 != 0) return;
  const bool to_adjacent = c.rope_layout == RopeLayout::kAdjacentPairs;
  for (auto& layer : a.layers) {
    LoraWeights& q = layer[static_cast<int>(LoraTarget::kQ)];
    LoraWeights& k = layer[static_cast<int>(LoraTarget::kK)];
    if (q.present()) PermuteHeads(q.b, c.n_heads, c.head_dim, q.rank, to_adjacent);
    if (k.present()) PermuteHeads(k.b, c.n_kv_heads, c.head_dim, k.rank, to_adjacent);
  }
}

void Finish(LoraAdapter& a) {
  a.max_rank = 0;
  a.n_targets = 0;
  a.bytes = 0;
  for (const auto& layer : a.layers) {
    for (const LoraWeights& w : layer) {
      if (!w.present()) continue;
      a.max_rank = std::max(a.max_rank, w.rank);
      ++a.n_targets;
      a.bytes += (w.a.size() + w.b.size()) * sizeof(float);
    }
  }
}

bool Dequantizable(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kQ8_0;
}

// ---------------------------------------------------------------------------------------------
// GGUF LoRA (llama.cpp's convert_lora_to_gguf.py).

absl::StatusOr<std::unique_ptr<LoraAdapter>> LoadGgufLora(const std::string& path,
                                                          const model::Model& base) {
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<model::GgufFile> g, model::GgufFile::Open(path));
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(StrCat("LoRA adapter ", path, ": ", what));
  };
  absl::StatusOr<std::string_view> type = g->GetString("general.type");
  if (!type.ok() || *type != "adapter") {
    return bad(StrCat("general.type is ", type.ok() ? StrCat("'", *type, "'") : "missing",
                      ", expected 'adapter' (is this a model rather than a LoRA adapter?)"));
  }
  absl::StatusOr<std::string_view> atype = g->GetString("adapter.type");
  if (!atype.ok() || *atype != "lora") {
    return bad(StrCat("adapter.type is ", atype.ok() ? StrCat("'", *atype, "'") : "missing",
                      ", expected 'lora'"));
  }
  auto a = std::make_unique<LoraAdapter>();
  a->path = path;
  a->format = LoraFormat::kGguf;
  if (g->Has("adapter.lora.alpha")) {
    WEFT_ASSIGN_OR_RETURN(a->alpha, g->GetF32("adapter.lora.alpha"));
    if (!std::isfinite(a->alpha)) return bad("adapter.lora.alpha is not finite");
  }
  // The converter writes the base's architecture; llama files carry q/k in adjacent-pair order.
  RopeLayout layout = base.config.rope_layout;
  if (absl::StatusOr<std::string_view> arch = g->GetString("general.architecture"); arch.ok()) {
    const std::string& base_arch = base.config.arch;
    const bool llama_like = [](std::string_view s) {
      return s == "llama" || s == "mistral";
    }(*arch);
    const bool base_llama_like = base_arch == "llama" || base_arch == "mistral";
    if (*arch != base_arch && !(llama_like && base_llama_like)) {
      return bad(
          StrCat("made for architecture '", *arch, "', the base model is '", base_arch, "'"));
    }
    layout = llama_like ? RopeLayout::kAdjacentPairs : RopeLayout::kHalves;
  }

  const model::ModelConfig& c = base.config;
  a->layers.resize(c.n_layers);
  struct Pair {
    const model::GgufTensorInfo* a = nullptr;
    const model::GgufTensorInfo* b = nullptr;
  };
  std::map<std::pair<int, int>, Pair> pairs;
  for (const model::GgufTensorInfo& t : g->tensors()) {
    std::string_view name = t.name;
    bool is_a;
    if (ConsumeSuffix(&name, ".lora_a")) {
      is_a = true;
    } else if (ConsumeSuffix(&name, ".lora_b")) {
      is_a = false;
    } else {
      return bad(StrCat("tensor '", t.name, "' is neither a .lora_a nor a .lora_b tensor"));
    }
    // "blk.<layer>.<stem>.weight"
    std::vector<absl::string_view> parts =
        absl::StrSplit(absl::string_view(name.data(), name.size()), '.');
    int layer = -1;
    std::optional<LoraTarget> target;
    if (parts.size() == 4 && parts[0] == absl::string_view("blk") &&
        parts[3] == absl::string_view("weight") &&
        ParseInt(std::string_view(parts[1].data(), parts[1].size()), &layer)) {
      target = TargetFromGguf(std::string_view(parts[2].data(), parts[2].size()));
    }
    if (!target) {
      return bad(
          StrCat("tensor '", t.name, "' does not adapt a supported weight (",
                 "blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}.weight)"));
    }
    if (layer < 0 || layer >= c.n_layers) {
      return bad(StrCat("tensor '", t.name, "' is for layer ", layer, " but the base model has ",
                        c.n_layers, " layers"));
    }
    Pair& p = pairs[{layer, static_cast<int>(*target)}];
    (is_a ? p.a : p.b) = &t;
  }
  for (const auto& [key, p] : pairs) {
    const auto [layer, ti] = key;
    const LoraTarget target = static_cast<LoraTarget>(ti);
    const std::string base_name = StrCat("blk.", layer, ".", GgufStem(target), ".weight");
    if (p.a == nullptr || p.b == nullptr) {
      return bad(StrCat("tensor '", base_name, (p.a == nullptr ? ".lora_a" : ".lora_b"),
                        "' is missing (LoRA tensors come in pairs)"));
    }
    for (const model::GgufTensorInfo* t : {p.a, p.b}) {
      if (!Dequantizable(t->type)) {
        return bad(StrCat("tensor '", t->name, "' has type ", kernels::Traits(t->type).name,
                          " (supported: F32, F16, BF16, Q8_0)"));
      }
      if (t->n_dims != 2) {
        return bad(StrCat("tensor '", t->name, "' has ", t->n_dims, " dimensions, expected 2"));
      }
    }
    const model::Tensor& w = BaseWeight(base.weights.layers[layer], target);
    const int64_t rank = p.a->ne[1];
    if (p.b->ne[0] != rank) {
      return bad(StrCat("tensor '", p.a->name, "' has rank ", rank, " (ne[1]) but '", p.b->name,
                        "' has rank ", p.b->ne[0], " (ne[0])"));
    }
    if (rank <= 0 || rank > 65536) return bad(StrCat("tensor '", p.a->name, "' has rank ", rank));
    if (p.a->ne[0] != w.ne[0] || p.b->ne[1] != w.rows()) {
      return bad(StrCat("tensors '", p.a->name, "' ne [", p.a->ne[0], ", ", p.a->ne[1], "] and '",
                        p.b->name, "' ne [", p.b->ne[0], ", ", p.b->ne[1],
                        "' do not fit the base weight ", w.name, " ne [", w.ne[0], ", ", w.rows(),
                        "] (expected lora_a ne [", w.ne[0], ", r], lora_b ne [r, ", w.rows(),
                        "])"));
    }
    LoraWeights& lw = a->layers[layer][ti];
    lw.rank = static_cast<int>(rank);
    lw.n_in = w.ne[0];
    lw.n_out = w.rows();
    lw.scale = a->alpha != 0 ? a->alpha / static_cast<float>(rank) : 1.0f;
    lw.a.resize(rank * lw.n_in);
    lw.b.resize(lw.n_out * rank);
    kernels::DequantizeRow(p.a->type, p.a->data, lw.a.data(), static_cast<int64_t>(lw.a.size()));
    kernels::DequantizeRow(p.b->type, p.b->data, lw.b.data(), static_cast<int64_t>(lw.b.size()));
  }
  if (pairs.empty()) return bad("has no LoRA tensors");
  MatchLayout(*a, base, layout);
  Finish(*a);
  return a;
}

// ---------------------------------------------------------------------------------------------
// PEFT directory (adapter_config.json + adapter_model.safetensors).

// PEFT's rank_pattern / alpha_pattern lookup: the first key k with module =~ "(.*\.)?(k)$".
absl::StatusOr<std::optional<double>> PatternValue(const nlohmann::json& config, const char* field,
                                                   const std::string& module,
                                                   const std::string& where) {
  auto it = config.find(field);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) {
    return absl::InvalidArgumentError(StrCat(where, ": \"", field, "\" is not an object"));
  }
  for (const auto& [key, value] : it->items()) {
    absl::StatusOr<std::shared_ptr<FullMatch>> re =
        FullMatch::Compile(StrCat("(.*\\.)?(", key, ")"));
    if (!re.ok()) {
      return absl::InvalidArgumentError(
          StrCat(where, ": \"", field, "\" key '", key, "' is not a valid pattern"));
    }
    if (!(*re)->Matches(module)) continue;
    if (!value.is_number()) {
      return absl::InvalidArgumentError(
          StrCat(where, ": \"", field, "\" value for '", key, "' is not a number"));
    }
    return std::optional<double>(value.get<double>());
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<LoraAdapter>> LoadPeftLora(const std::string& dir,
                                                          const model::Model& base) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  const std::string st_path = (fs::path(dir) / "adapter_model.safetensors").string();
  auto bad = [](const std::string& file, std::string_view what) {
    return absl::InvalidArgumentError(StrCat("LoRA adapter ", file, ": ", what));
  };
  std::error_code ec;
  if (!fs::is_regular_file(config_path, ec)) {
    return absl::NotFoundError(StrCat("LoRA adapter ", dir,
                                      ": no adapter_config.json (a PEFT adapter directory needs ",
                                      "adapter_config.json and adapter_model.safetensors)"));
  }
  if (!fs::is_regular_file(st_path, ec)) {
    if (fs::is_regular_file(fs::path(dir) / "adapter_model.bin", ec)) {
      return bad(dir,
                 "has adapter_model.bin (PyTorch pickle), which is not supported: save the adapter "
                 "with safe_serialization=True (adapter_model.safetensors)");
    }
    return absl::NotFoundError(StrCat("LoRA adapter ", dir, ": no adapter_model.safetensors"));
  }
  WEFT_ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(config_path));
  nlohmann::json config = nlohmann::json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) return bad(config_path, "is not a JSON object");

  auto get_string = [&](const char* key) -> std::optional<std::string> {
    auto it = config.find(key);
    if (it == config.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  if (auto t = get_string("peft_type"); t && *t != "LORA") {
    return bad(config_path, StrCat("peft_type is \"", *t, "\", only \"LORA\" is supported"));
  }
  if (auto it = config.find("use_dora");
      it != config.end() && it->is_boolean() && it->get<bool>()) {
    return absl::UnimplementedError(
        StrCat("LoRA adapter ", config_path, ": DoRA (use_dora) is not supported"));
  }
  if (auto b = get_string("bias"); b && *b != "none") {
    return absl::UnimplementedError(StrCat("LoRA adapter ", config_path, ": bias \"", *b,
                                           "\" is not supported (only \"none\")"));
  }
  auto it_r = config.find("r");
  if (it_r == config.end() || !it_r->is_number_integer() || it_r->get<int64_t>() <= 0) {
    return bad(config_path, "\"r\" is missing or not a positive integer");
  }
  const int64_t config_rank = it_r->get<int64_t>();
  auto it_alpha = config.find("lora_alpha");
  if (it_alpha == config.end() || !it_alpha->is_number() ||
      !std::isfinite(it_alpha->get<double>())) {
    return bad(config_path, "\"lora_alpha\" is missing or not a number");
  }
  const double alpha = it_alpha->get<double>();
  bool rslora = false;
  if (auto it = config.find("use_rslora"); it != config.end() && !it->is_null()) {
    if (!it->is_boolean()) return bad(config_path, "\"use_rslora\" is not a bool");
    rslora = it->get<bool>();
  }
  // fan_in_fan_out only says how PEFT stores the base weight of a Conv1D layer; lora_A and lora_B
  // keep their [r, in] / [out, r] shapes either way, so it does not change the delta.
  std::shared_ptr<FullMatch> target_regex;
  std::vector<std::string> target_list;
  if (auto it = config.find("target_modules"); it != config.end() && !it->is_null()) {
    if (it->is_string()) {
      absl::StatusOr<std::shared_ptr<FullMatch>> re = FullMatch::Compile(it->get<std::string>());
      if (!re.ok()) {
        return bad(config_path, "\"target_modules\" is not a valid regular expression");
      }
      target_regex = *re;
    } else if (it->is_array()) {
      for (const auto& m : *it) {
        if (!m.is_string()) return bad(config_path, "\"target_modules\" has a non-string entry");
        target_list.push_back(m.get<std::string>());
      }
    } else {
      return bad(config_path, "\"target_modules\" is neither a list nor a string");
    }
  }

  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<MmapFile> map, MmapFile::Open(st_path));
  WEFT_ASSIGN_OR_RETURN(model::SafetensorsHeader header,
                        model::ParseSafetensors(map->bytes(), st_path));

  const model::ModelConfig& c = base.config;
  auto a = std::make_unique<LoraAdapter>();
  a->path = dir;
  a->format = LoraFormat::kPeft;
  a->alpha = static_cast<float>(alpha);
  a->layers.resize(c.n_layers);
  struct Pair {
    const model::SafetensorsTensor* a = nullptr;
    const model::SafetensorsTensor* b = nullptr;
    std::string module;
  };
  std::map<std::pair<int, int>, Pair> pairs;
  for (const model::SafetensorsTensor& t : header.tensors) {
    std::optional<PeftName> pn = ParsePeftName(t.name);
    if (!pn) {
      return bad(
          st_path,
          StrCat("tensor '", t.name, "' is not a lora_A/lora_B weight of a supported module ",
                 "(layers.N.self_attn.{q,k,v,o}_proj, layers.N.mlp.{gate,up,down}_proj)"));
    }
    const int layer = pn->layer;
    if (layer < 0 || layer >= c.n_layers) {
      return bad(st_path, StrCat("tensor '", t.name, "' is for layer ", layer,
                                 " but the base model has ", c.n_layers, " layers"));
    }
    const std::string& module = pn->module;
    bool targeted = target_list.empty() && !target_regex;
    if (target_regex) targeted = target_regex->Matches(module);
    for (const std::string& tm : target_list) {
      targeted |= module == tm || std::string_view(module).ends_with(StrCat(".", tm));
    }
    if (!targeted) {
      return bad(st_path, StrCat("tensor '", t.name, "' adapts module '", module,
                                 "', which target_modules in adapter_config.json does not list"));
    }
    Pair& p = pairs[{layer, static_cast<int>(pn->target)}];
    (pn->is_a ? p.a : p.b) = &t;
    p.module = module;
  }
  for (const auto& [key, p] : pairs) {
    const auto [layer, ti] = key;
    const LoraTarget target = static_cast<LoraTarget>(ti);
    if (p.a == nullptr || p.b == nullptr) {
      return bad(st_path, StrCat("module '", p.module, "' has no lora_", p.a ? "B" : "A",
                                 " tensor (LoRA tensors come in pairs)"));
    }
    for (const model::SafetensorsTensor* t : {p.a, p.b}) {
      if (t->shape.size() != 2) {
        return bad(st_path, StrCat("tensor '", t->name, "' has ", t->shape.size(),
                                   " dimensions, expected 2"));
      }
      if (!Dequantizable(t->type)) {
        return bad(st_path, StrCat("tensor '", t->name, "' has an unsupported type"));
      }
    }
    const model::Tensor& w = BaseWeight(base.weights.layers[layer], target);
    const int64_t rank = p.a->shape[0];
    if (p.b->shape[1] != rank) {
      return bad(st_path, StrCat("tensor '", p.a->name, "' has rank ", rank, " (shape[0]) but '",
                                 p.b->name, "' has rank ", p.b->shape[1], " (shape[1])"));
    }
    if (rank <= 0 || rank > 65536) {
      return bad(st_path, StrCat("tensor '", p.a->name, "' has rank ", rank));
    }
    if (p.a->shape[1] != w.ne[0] || p.b->shape[0] != w.rows()) {
      return bad(st_path,
                 StrCat("tensors '", p.a->name, "' [", p.a->shape[0], ", ", p.a->shape[1],
                        "] and '", p.b->name, "' [", p.b->shape[0], ", ", p.b->shape[1],
                        "] do not fit the base weight ", w.name, " [", w.rows(), ", ", w.ne[0],
                        "] (expected lora_A [r, ", w.ne[0], "], lora_B [", w.rows(), ", r])"));
    }
    WEFT_ASSIGN_OR_RETURN(std::optional<double> pattern_rank,
                          PatternValue(config, "rank_pattern", p.module, config_path));
    const int64_t declared = pattern_rank ? static_cast<int64_t>(*pattern_rank) : config_rank;
    if (declared != rank) {
      return bad(st_path, StrCat("tensor '", p.a->name, "' has rank ", rank,
                                 " but adapter_config.json declares r = ", declared));
    }
    WEFT_ASSIGN_OR_RETURN(std::optional<double> pattern_alpha,
                          PatternValue(config, "alpha_pattern", p.module, config_path));
    const double module_alpha = pattern_alpha.value_or(alpha);
    LoraWeights& lw = a->layers[layer][ti];
    lw.rank = static_cast<int>(rank);
    lw.n_in = w.ne[0];
    lw.n_out = w.rows();
    lw.scale = static_cast<float>(
        module_alpha / (rslora ? std::sqrt(static_cast<double>(rank)) : static_cast<double>(rank)));
    lw.a.resize(rank * lw.n_in);
    lw.b.resize(lw.n_out * rank);
    kernels::DequantizeRow(p.a->type, p.a->data, lw.a.data(), static_cast<int64_t>(lw.a.size()));
    kernels::DequantizeRow(p.b->type, p.b->data, lw.b.data(), static_cast<int64_t>(lw.b.size()));
  }
  if (pairs.empty()) return bad(st_path, "has no LoRA tensors");
  MatchLayout(*a, base, RopeLayout::kHalves);  // PEFT trains on HF (rotate-half) weights
  Finish(*a);
  return a;
}

}  // namespace

std::string_view HfModuleName(LoraTarget t) { return kHfNames[static_cast<int>(t)]; }
std::string_view GgufStem(LoraTarget t) { return kGgufStems[static_cast<int>(t)]; }

const model::Tensor& BaseWeight(const model::LayerWeights& l, LoraTarget t) {
  switch (t) {
    case LoraTarget::kQ:
      return l.wq;
    case LoraTarget::kK:
      return l.wk;
    case LoraTarget::kV:
      return l.wv;
    case LoraTarget::kO:
      return l.wo;
    case LoraTarget::kGate:
      return l.w_gate;
    case LoraTarget::kUp:
      return l.w_up;
    case LoraTarget::kDown:
      return l.w_down;
  }
  WEFT_CHECK(false);
  return l.wq;
}

absl::StatusOr<std::unique_ptr<LoraAdapter>> LoadLoraAdapter(const std::string& path,
                                                             const model::Model& base) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return LoadPeftLora(path, base);
  if (std::filesystem::path(path).filename() == "adapter_config.json") {
    return LoadPeftLora(std::filesystem::path(path).parent_path().string(), base);
  }
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(StrCat("LoRA adapter ", path, ": no such file or directory"));
  }
  return LoadGgufLora(path, base);
}

void ApplyLoraDelta(kernels::Backend& be, const LoraWeights& w, const float* x,
                    std::span<const int32_t> rows, float* y, LoraScratch& scratch,
                    LoraStrides strides) {
  if (rows.empty() || !w.present()) return;
  const int64_t m = static_cast<int64_t>(rows.size());
  const int64_t n_in = w.n_in, n_out = w.n_out, r = w.rank;
  const int64_t ldx = strides.x > 0 ? strides.x : n_in;
  const int64_t ldy = strides.y > 0 ? strides.y : n_out;
  // Consecutive rows (one sequence's prompt chunk, or a whole single-adapter batch) need no gather.
  const bool contiguous = rows.back() - rows.front() + 1 == m;
  const float* xin = x + rows.front() * ldx;
  if (!contiguous || ldx != n_in) {
    scratch.x.resize(m * n_in);
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(scratch.x.data() + i * n_in, x + rows[i] * ldx, n_in * sizeof(float));
    }
    xin = scratch.x.data();
  }
  scratch.mid.resize(m * r);
  scratch.out.resize(m * n_out);
  be.MatMul(w.a_view(), xin, m, scratch.mid.data());
  for (float& v : scratch.mid) v *= w.scale;
  be.MatMul(w.b_view(), scratch.mid.data(), m, scratch.out.data());
  if (contiguous && ldy == n_out) {
    be.Add(scratch.out.data(), m * n_out, y + rows.front() * n_out);
  } else {
    for (int64_t i = 0; i < m; ++i) {
      be.Add(scratch.out.data() + i * n_out, n_out, y + rows[i] * ldy);
    }
  }
}

void LoraBatch::Reset(std::span<const LoraAdapter* const> adapter_of_row) {
  n_rows_ = static_cast<int64_t>(adapter_of_row.size());
  groups_.clear();
  rows_.clear();
  std::vector<const LoraAdapter*> distinct;
  std::vector<int32_t> count;
  for (const LoraAdapter* a : adapter_of_row) {
    if (a == nullptr) continue;
    auto it = std::find(distinct.begin(), distinct.end(), a);
    if (it == distinct.end()) {
      distinct.push_back(a);
      count.push_back(1);
    } else {
      ++count[it - distinct.begin()];
    }
  }
  if (distinct.empty()) return;
  std::vector<int32_t> offset(distinct.size() + 1, 0);
  for (size_t g = 0; g < distinct.size(); ++g) offset[g + 1] = offset[g] + count[g];
  rows_.resize(offset.back());
  std::vector<int32_t> fill(offset.begin(), offset.end() - 1);
  for (int32_t r = 0; r < static_cast<int32_t>(adapter_of_row.size()); ++r) {
    const LoraAdapter* a = adapter_of_row[r];
    if (a == nullptr) continue;
    const size_t g = std::find(distinct.begin(), distinct.end(), a) - distinct.begin();
    rows_[fill[g]++] = r;
  }
  for (size_t g = 0; g < distinct.size(); ++g) {
    groups_.push_back({distinct[g], std::span<const int32_t>(rows_.data() + offset[g], count[g])});
  }
}

void AddLoraDelta(kernels::Backend& be, const LoraBatch& batch, int layer, LoraTarget target,
                  const float* x, float* y, LoraScratch& scratch, LoraStrides strides) {
  for (const LoraBatch::Group& g : batch.groups()) {
    if (const LoraWeights* w = g.adapter->Find(layer, target)) {
      ApplyLoraDelta(be, *w, x, g.rows, y, scratch, strides);
    }
  }
}

}  // namespace weft::lora
