// SPDX-License-Identifier: Apache-2.0
#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/tokenizer/pre_tokenizer.h"

#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace weft::tokenizer {
namespace {

// Written from the regex lists in llama.cpp src/llama-vocab.cpp (llm_tokenizer_bpe). The Llama 3
// and Qwen2 ones spell the case-insensitive contractions out ([sS]...) as llama.cpp does; HF's
// original is (?i:'s|'t|...), which matches the same strings.
constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// gpt-4o / Llama 4 (o200k) and Mistral tekken, written as in their tokenizer.json.
constexpr std::string_view kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kStarcoderDigits = R"(\p{N})";
constexpr std::string_view kStarcoder =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

}  // namespace

absl::StatusOr<std::vector<std::string>> PreTokenizerRegexes(std::string_view pre) {
  using V = std::vector<std::string>;
  if (pre.empty() || pre == "default") {
    // llama.cpp's fallback for BPE vocabularies without a (known) pre-tokenizer.
    return V{R"([\p{P}\$\+<=>\^~\|]+)",
             R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
             R"(\p{N}+)", R"([0-9][0-9][0-9])"};
  }
  if (pre == "gpt-2" || pre == "phi-2" || pre == "mpt" || pre == "olmo" || pre == "jais" ||
      pre == "jina-es" || pre == "jina-de" || pre == "jina-v2-es" || pre == "jina-v2-de" ||
      pre == "gigachat" || pre == "exaone4") {
    return V{std::string(kGpt2)};
  }
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" ||
      pre == "pixtral" || pre == "dbrx" || pre == "smaug-bpe" || pre == "glm4" ||
      pre == "chatglm-bpe") {
    return V{std::string(kLlama3)};
  }
  if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "stablelm2" || pre == "megrez" ||
      pre == "hunyuan") {
    return V{std::string(kQwen2)};
  }
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" ||
      pre == "codeshell" || pre == "exaone" || pre == "minerva-7b") {
    return V{std::string(kStarcoderDigits), std::string(kStarcoder)};
  }
  if (pre == "gpt-4o" || pre == "llama4") return V{std::string(kGpt4o)};
  if (pre == "tekken") return V{std::string(kTekken)};
  return absl::NotFoundError(absl::StrCat("unknown BPE pre-tokenizer '", std::string(pre), "'"));
}

// Only ever touched through const methods after Create; pcre2_code is safe to share across threads.
struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
};

namespace {

// Per-thread scratch: match data (any pattern) and a JIT stack large enough for long inputs.
struct MatchScratch {
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
  MatchScratch() {
    WEFT_CHECK(md != nullptr && stack != nullptr && ctx != nullptr);
    pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~MatchScratch() {
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(md);
  }
};

MatchScratch& Scratch() {
  thread_local MatchScratch scratch;
  return scratch;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RegexSplitter>> RegexSplitter::Create(
    std::vector<std::string> patterns) {
  std::unique_ptr<RegexSplitter> s(new RegexSplitter());
  s->patterns_ = std::move(patterns);
  for (const std::string& p : s->patterns_) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(),
                                     PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return absl::InvalidArgumentError(absl::StrCat("pre-tokenizer regex does not compile at ",
                                                     err_off, ": ", reinterpret_cast<char*>(msg),
                                                     ": ", p));
    }
    auto* c = new Compiled{code, pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0};
    s->compiled_.push_back(c);
  }
  return s;
}

RegexSplitter::~RegexSplitter() {
  for (Compiled* c : compiled_) {
    pcre2_code_free(c->code);
    delete c;
  }
}

void RegexSplitter::Split(std::string_view text, std::vector<std::string_view>* pieces) const {
  pieces->clear();
  if (text.empty()) return;
  pieces->push_back(text);
  MatchScratch& scratch = Scratch();
  std::vector<std::string_view> next;
  for (const Compiled* c : compiled_) {
    next.clear();
    for (std::string_view piece : *pieces) {
      // The subject is the piece alone, so lookaheads cannot see past it (as in llama.cpp and HF).
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t start = 0;  // end of the last match
      size_t offset = 0;
      while (offset < piece.size()) {
        const int rc =
            c->jit ? pcre2_jit_match(c->code, subject, piece.size(), offset,
                                     PCRE2_NOTEMPTY | PCRE2_NO_UTF_CHECK, scratch.md, scratch.ctx)
                   : pcre2_match(c->code, subject, piece.size(), offset,
                                 PCRE2_NOTEMPTY | PCRE2_NO_UTF_CHECK, scratch.md, scratch.ctx);
        if (rc < 0) break;  // no match (or a resource limit): the rest stays one gap
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.md);
        const size_t mb = ov[0], me = ov[1];
        if (mb > start) next.push_back(piece.substr(start, mb - start));
        next.push_back(piece.substr(mb, me - mb));
        start = offset = me;
      }
      if (start < piece.size()) next.push_back(piece.substr(start));
    }
    pieces->swap(next);
  }
}

}  // namespace weft::tokenizer
