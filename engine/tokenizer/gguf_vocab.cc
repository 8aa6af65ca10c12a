// SPDX-License-Identifier: Apache-2.0
// GGUF tokenizer.ggml.* metadata -> Vocab, following llama.cpp llama_vocab::impl::load.
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "engine/model/gguf.h"
#include "engine/tokenizer/loaders.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace weft::tokenizer {
namespace {

bool IsLlama3Pre(std::string_view pre) {
  return pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" ||
         pre == "pixtral" || pre == "tekken";
}

}  // namespace

absl::StatusOr<Vocab> VocabFromGguf(const model::GgufFile& gguf) {
  const std::string& src = gguf.path();
  auto fail = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(src, ": ", what));
  };
  auto model = gguf.GetString("tokenizer.ggml.model");
  if (!model.ok()) return fail("no tokenizer (tokenizer.ggml.model missing or not a string)");

  Vocab v;
  if (*model == "llama") {
    v.kind = Vocab::Kind::kSpm;
    v.bos_id = 1;
    v.eos_id = 2;
    v.unk_id = 0;
    v.add_space_prefix = true;
    v.add_bos = true;
  } else if (*model == "gpt2") {
    v.kind = Vocab::Kind::kBpe;
    v.bos_id = 11;  // llama.cpp's defaults; real files set both
    v.eos_id = 11;
    auto pre = gguf.GetString("tokenizer.ggml.pre");
    v.pre_name = pre.ok() ? std::string(*pre) : "default";
    auto regexes = PreTokenizerRegexes(v.pre_name);
    if (!regexes.ok()) {
      return absl::UnimplementedError(
          absl::StrCat(src, ": unknown tokenizer.ggml.pre '", v.pre_name, "'"));
    }
    v.pre_regexes = *std::move(regexes);
    if (IsLlama3Pre(v.pre_name)) {
      v.ignore_merges = true;
      v.add_bos = true;
    }
    auto merges = gguf.GetStringArray("tokenizer.ggml.merges");
    if (!merges.ok()) return fail("BPE vocabulary without tokenizer.ggml.merges");
    v.merges.reserve(merges->size());
    for (std::string_view m : *merges) {
      const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
      if (sp == std::string_view::npos) {
        v.merges.emplace_back();  // keeps ranks aligned; empty pairs never match
        continue;
      }
      v.merges.emplace_back(std::string(m.substr(0, sp)), std::string(m.substr(sp + 1)));
    }
  } else {
    return absl::UnimplementedError(
        absl::StrCat(src, ": tokenizer.ggml.model '", std::string(*model), "' is not implemented"));
  }

  auto tokens = gguf.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok()) return fail("no tokenizer.ggml.tokens string array");
  const size_t n = tokens->size();
  if (n == 0 || n > (1u << 24)) return fail(absl::StrCat("implausible vocabulary size ", n));
  v.tokens.reserve(n);
  absl::flat_hash_set<std::string_view> seen;
  for (size_t i = 0; i < n; ++i) {
    std::string_view t = (*tokens)[i];
    std::string word = t.empty() ? absl::StrCat("[EMPTY_", i, "]") : std::string(t);
    v.tokens.push_back(std::move(word));
  }
  for (size_t i = 0; i < n; ++i) {
    if (!seen.insert(v.tokens[i]).second) {
      return fail(absl::StrCat("duplicate token '", v.tokens[i], "' at id ", i));
    }
  }

  if (const model::GgufValue* scores = gguf.Find("tokenizer.ggml.scores")) {
    if (scores->type != model::GgufType::kArray) return fail("tokenizer.ggml.scores not an array");
    if (scores->elem_type == model::GgufType::kInt32) {
      auto s = gguf.GetI32Array("tokenizer.ggml.scores");
      if (!s.ok()) return s.status();
      v.scores.assign(s->begin(), s->end());
    } else {
      auto s = gguf.GetF32Array("tokenizer.ggml.scores");
      if (!s.ok()) return s.status();
      v.scores = *std::move(s);
    }
    if (v.scores.size() < n) {
      return fail(absl::StrCat(v.scores.size(), " scores for ", n, " tokens"));
    }
    v.scores.resize(n);
  }
  v.attrs.assign(n, kAttrNormal);
  if (gguf.Has("tokenizer.ggml.token_type")) {
    auto types = gguf.GetI32Array("tokenizer.ggml.token_type");
    if (!types.ok()) return types.status();
    if (types->size() < n) return fail(absl::StrCat(types->size(), " token types for ", n));
    for (size_t i = 0; i < n; ++i) {
      const int32_t t = (*types)[i];
      v.attrs[i] = t >= 0 && t <= 6 ? AttrFromType(static_cast<TokenType>(t)) : 0;
    }
  }

  // Special ids: a value outside the vocabulary keeps the default (llama.cpp warns the same way).
  const std::pair<const char*, int32_t*> ids[] = {
      {"tokenizer.ggml.bos_token_id", &v.bos_id},
      {"tokenizer.ggml.eos_token_id", &v.eos_id},
      {"tokenizer.ggml.eot_token_id", &v.eot_id},
      {"tokenizer.ggml.eom_token_id", &v.eom_id},
      {"tokenizer.ggml.unknown_token_id", &v.unk_id},
      {"tokenizer.ggml.padding_token_id", &v.pad_id},
  };
  for (const auto& [key, id] : ids) {
    if (*id >= static_cast<int32_t>(n)) *id = -1;
    if (!gguf.Has(key)) continue;
    auto value = gguf.GetI64(key);
    if (!value.ok()) return value.status();
    if (*value >= 0 && *value < static_cast<int64_t>(n)) *id = static_cast<int32_t>(*value);
  }
  auto flag = [&](const char* key, bool* out) -> absl::Status {
    if (!gguf.Has(key)) return absl::OkStatus();
    auto b = gguf.GetBool(key);
    if (!b.ok()) return b.status();
    *out = *b;
    return absl::OkStatus();
  };
  if (absl::Status s = flag("tokenizer.ggml.add_bos_token", &v.add_bos); !s.ok()) return s;
  if (absl::Status s = flag("tokenizer.ggml.add_eos_token", &v.add_eos); !s.ok()) return s;
  if (v.kind == Vocab::Kind::kSpm) {
    if (absl::Status s = flag("tokenizer.ggml.add_space_prefix", &v.add_space_prefix); !s.ok()) {
      return s;
    }
  }
  auto name = gguf.GetString("general.name");
  if (absl::Status s = FinalizeSpecialTokens(v, name.ok() ? std::string(*name) : "", src);
      !s.ok()) {
    return s;
  }
  return v;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const model::GgufFile& gguf) {
  auto vocab = VocabFromGguf(gguf);
  if (!vocab.ok()) return vocab.status();
  return TokenizerFromVocab(*std::move(vocab));
}

}  // namespace weft::tokenizer
