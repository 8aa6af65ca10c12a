// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/hf_tokenizer_json.h"

#include <algorithm>
#include <exception>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "nlohmann/json.hpp"

namespace weft::tokenizer {
namespace {

using json = nlohmann::json;

// A literal string as a PCRE2 pattern.
std::string QuoteRegex(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

struct Ctx {
  const std::string& source;
  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
  }
  absl::Status Unsupported(const std::string& what) const {
    return absl::UnimplementedError(absl::StrCat(source, ": ", what));
  }
};

bool GetBool(const json& obj, const char* key, bool fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

// Fills v.pre_regexes / byte_level_prefix_space; sets *byte_level when a ByteLevel step is seen.
absl::Status AddPreTokenizer(const Ctx& ctx, const json& pt, Vocab& v, bool* byte_level) {
  if (pt.is_null()) return absl::OkStatus();
  if (!pt.is_object() || !pt.contains("type") || !pt["type"].is_string()) {
    return ctx.Error("pre_tokenizer without a type");
  }
  const std::string type = pt["type"].get<std::string>();
  if (type == "Sequence") {
    if (!pt.contains("pretokenizers") || !pt["pretokenizers"].is_array()) {
      return ctx.Error("Sequence pre_tokenizer without pretokenizers");
    }
    for (const json& p : pt["pretokenizers"]) {
      if (absl::Status s = AddPreTokenizer(ctx, p, v, byte_level); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    *byte_level = true;
    if (GetBool(pt, "add_prefix_space", false)) v.byte_level_prefix_space = true;
    if (GetBool(pt, "use_regex", true)) {
      // ByteLevel's own split is the GPT-2 regex.
      auto gpt2 = PreTokenizerRegexes("gpt-2");
      if (!gpt2.ok()) return gpt2.status();
      v.pre_regexes.insert(v.pre_regexes.end(), gpt2->begin(), gpt2->end());
    }
    return absl::OkStatus();
  }
  if (type == "Split") {
    const std::string behavior = pt.contains("behavior") && pt["behavior"].is_string()
                                     ? pt["behavior"].get<std::string>()
                                     : "";
    if (behavior != "Isolated") {
      return ctx.Unsupported(absl::StrCat("Split pre_tokenizer behavior '", behavior,
                                          "' (only Isolated is implemented)"));
    }
    if (GetBool(pt, "invert", false)) return ctx.Unsupported("inverted Split pre_tokenizer");
    const json& pattern = pt.contains("pattern") ? pt["pattern"] : json();
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      v.pre_regexes.push_back(pattern["Regex"].get<std::string>());
    } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      v.pre_regexes.push_back(QuoteRegex(pattern["String"].get<std::string>()));
    } else {
      return ctx.Error("Split pre_tokenizer without a Regex or String pattern");
    }
    return absl::OkStatus();
  }
  if (type == "Digits") {
    v.pre_regexes.emplace_back(GetBool(pt, "individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
    return absl::OkStatus();
  }
  return ctx.Unsupported(absl::StrCat("pre_tokenizer type '", type, "'"));
}

// "bos_token": "<s>" or {"content": "<s>", ...}
std::string TokenString(const json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return "";
  const json& t = cfg[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) {
    return t["content"].get<std::string>();
  }
  return "";
}

absl::StatusOr<Vocab> Parse(const Ctx& ctx, std::string_view tokenizer_json,
                            std::string_view config_json, std::string_view generation_json) {
  const json root = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) return ctx.Error("not a JSON object");
  const json cfg = config_json.empty() ? json::object() : json::parse(config_json, nullptr, false);
  if (cfg.is_discarded()) return ctx.Error("tokenizer_config.json is not valid JSON");
  const json gen =
      generation_json.empty() ? json::object() : json::parse(generation_json, nullptr, false);
  if (gen.is_discarded()) return ctx.Error("generation_config.json is not valid JSON");

  if (!root.contains("model") || !root["model"].is_object()) return ctx.Error("no model section");
  const json& model = root["model"];
  const std::string model_type =
      model.contains("type") && model["type"].is_string() ? model["type"].get<std::string>() : "";
  if (model_type != "BPE") {
    return ctx.Unsupported(absl::StrCat("tokenizer model type '", model_type,
                                        "' (only byte-level BPE is implemented)"));
  }
  if (GetBool(model, "byte_fallback", false)) {
    return ctx.Unsupported("BPE with byte_fallback (SentencePiece-style) is not implemented");
  }
  if (root.contains("normalizer") && !root["normalizer"].is_null()) {
    const json& norm = root["normalizer"];
    const std::string t = norm.is_object() && norm.contains("type") && norm["type"].is_string()
                              ? norm["type"].get<std::string>()
                              : "";
    if (t != "NFC") return ctx.Unsupported(absl::StrCat("normalizer '", t, "'"));
  }

  Vocab v;
  v.kind = Vocab::Kind::kBpe;
  v.pre_name = "hf-json";
  v.ignore_merges = GetBool(model, "ignore_merges", false);

  // Vocabulary: model.vocab plus added_tokens; ids may leave holes, filled with unused entries.
  if (!model.contains("vocab") || !model["vocab"].is_object()) return ctx.Error("no model.vocab");
  std::vector<std::pair<int64_t, std::string>> entries;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) return ctx.Error("model.vocab id is not an integer");
    entries.emplace_back(it.value().get<int64_t>(), it.key());
  }
  struct Added {
    int64_t id;
    std::string content;
    bool special, lstrip, rstrip;
  };
  std::vector<Added> added;
  if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
    for (const json& a : root["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string()) {
        return ctx.Error("added_tokens entry without integer id and string content");
      }
      added.push_back({a["id"].get<int64_t>(), a["content"].get<std::string>(),
                       GetBool(a, "special", false), GetBool(a, "lstrip", false),
                       GetBool(a, "rstrip", false)});
    }
  }
  int64_t max_id = -1;
  for (const auto& [id, text] : entries) max_id = std::max(max_id, id);
  for (const Added& a : added) max_id = std::max(max_id, a.id);
  if (max_id < 0) return ctx.Error("empty vocabulary");
  constexpr int64_t kMaxVocab = 1 << 24;
  for (const auto& [id, text] : entries) {
    if (id < 0 || id >= kMaxVocab) return ctx.Error(absl::StrCat("token id ", id, " out of range"));
  }
  for (const Added& a : added) {
    if (a.id < 0 || a.id >= kMaxVocab) {
      return ctx.Error(absl::StrCat("added token id ", a.id, " out of range"));
    }
  }
  const auto n = static_cast<size_t>(max_id + 1);
  v.tokens.assign(n, "");
  v.attrs.assign(n, kAttrUnused);
  std::vector<bool> set(n, false);
  for (auto& [id, text] : entries) {
    if (set[id]) return ctx.Error(absl::StrCat("token id ", id, " used twice"));
    set[id] = true;
    v.tokens[id] = std::move(text);
    v.attrs[id] = kAttrNormal;
  }
  for (const Added& a : added) {
    if (set[a.id] && v.tokens[a.id] != a.content) {
      return ctx.Error(absl::StrCat("added token ", a.id, " '", a.content,
                                    "' clashes with vocab entry '", v.tokens[a.id], "'"));
    }
    set[a.id] = true;
    v.tokens[a.id] = a.content;
    uint16_t attr = a.special ? kAttrControl : kAttrUserDefined;
    if (a.lstrip) attr |= kAttrLstrip;
    if (a.rstrip) attr |= kAttrRstrip;
    v.attrs[a.id] = attr;
  }
  for (size_t id = 0; id < n; ++id) {
    if (!set[id]) v.tokens[id] = absl::StrCat("[WEFT_UNUSED_", id, "]");
  }
  absl::flat_hash_map<std::string_view, int32_t> by_text;
  for (size_t id = 0; id < n; ++id) {
    if (!by_text.try_emplace(v.tokens[id], static_cast<int32_t>(id)).second) {
      return ctx.Error(absl::StrCat("duplicate token text '", v.tokens[id], "'"));
    }
  }

  // Merges: "a b" (split at the first space after the first byte, as llama.cpp) or ["a", "b"].
  if (model.contains("merges") && model["merges"].is_array()) {
    for (const json& m : model["merges"]) {
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) return ctx.Error(absl::StrCat("merge without a space: ", s));
        v.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        v.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return ctx.Error("merge that is neither \"a b\" nor [a, b]");
      }
    }
  }

  bool byte_level = false;
  if (root.contains("pre_tokenizer")) {
    if (absl::Status s = AddPreTokenizer(ctx, root["pre_tokenizer"], v, &byte_level); !s.ok()) {
      return s;
    }
  }
  if (root.contains("decoder") && root["decoder"].is_object()) {
    const json& d = root["decoder"];
    if (d.contains("type") && d["type"] == "ByteLevel") byte_level = true;
  }
  if (!byte_level) return ctx.Unsupported("BPE that is not byte-level (no ByteLevel step)");

  // Special ids. tokenizer_config.json names them; generation_config.json may list EOS ids.
  auto id_of = [&](const std::string& text) {
    auto it = by_text.find(text);
    return it == by_text.end() ? -1 : it->second;
  };
  v.bos_id = id_of(TokenString(cfg, "bos_token"));
  v.eos_id = id_of(TokenString(cfg, "eos_token"));
  v.unk_id = id_of(TokenString(cfg, "unk_token"));
  v.pad_id = id_of(TokenString(cfg, "pad_token"));
  if (gen.is_object()) {
    if (gen.contains("bos_token_id") && gen["bos_token_id"].is_number_integer() && v.bos_id < 0) {
      v.bos_id = gen["bos_token_id"].get<int32_t>();
    }
    if (gen.contains("eos_token_id")) {
      const json& e = gen["eos_token_id"];
      std::vector<int32_t> ids;
      if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
      if (e.is_array()) {
        for (const json& x : e) {
          if (x.is_number_integer()) ids.push_back(x.get<int32_t>());
        }
      }
      for (int32_t id : ids) {
        if (id >= 0 && id < static_cast<int32_t>(n)) v.eog_ids.push_back(id);
      }
      if (v.eos_id < 0 && !ids.empty()) v.eos_id = ids[0];
    }
  }
  // The post-processor's template says whether a BOS is prepended (Llama 3: <|begin_of_text|>).
  std::vector<const json*> processors;
  if (root.contains("post_processor") && root["post_processor"].is_object()) {
    const json& pp = root["post_processor"];
    if (pp.contains("processors") && pp["processors"].is_array()) {
      for (const json& p : pp["processors"]) processors.push_back(&p);
    } else {
      processors.push_back(&pp);
    }
  }
  bool template_bos = false;
  for (const json* p : processors) {
    if (!p->is_object() || !p->contains("type") || (*p)["type"] != "TemplateProcessing") continue;
    if (!p->contains("single") || !(*p)["single"].is_array() || (*p)["single"].empty()) continue;
    const json& first = (*p)["single"][0];
    if (first.is_object() && first.contains("SpecialToken") && first["SpecialToken"].is_object() &&
        first["SpecialToken"].contains("id") && first["SpecialToken"]["id"].is_string()) {
      const int32_t id = id_of(first["SpecialToken"]["id"].get<std::string>());
      if (id >= 0) {
        template_bos = true;
        if (v.bos_id < 0) v.bos_id = id;
      }
    }
  }
  v.add_bos = cfg.is_object() && cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()
                  ? cfg["add_bos_token"].get<bool>()
                  : template_bos;
  v.add_eos = GetBool(cfg, "add_eos_token", false);
  if (v.add_bos && v.bos_id < 0) v.add_bos = false;
  if (v.add_eos && v.eos_id < 0) v.add_eos = false;
  return v;
}

}  // namespace

absl::StatusOr<Vocab> ParseHfTokenizerJson(std::string_view tokenizer_json,
                                           std::string_view tokenizer_config_json,
                                           std::string_view generation_config_json,
                                           const std::string& source) {
  const Ctx ctx{source};
  absl::StatusOr<Vocab> v;
  try {
    // nlohmann::json throws on unexpected types; every access above checks types first, so this
    // is a backstop for anything missed.
    v = Parse(ctx, tokenizer_json, tokenizer_config_json, generation_config_json);
  } catch (const std::exception& e) {
    return ctx.Error(absl::StrCat("malformed tokenizer.json: ", e.what()));
  }
  if (!v.ok()) return v.status();
  if (absl::Status s = FinalizeSpecialTokens(*v, "", source); !s.ok()) return s;
  return v;
}

}  // namespace weft::tokenizer
