// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/vocab.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace weft::tokenizer {

uint16_t AttrFromType(TokenType type) {
  switch (type) {
    case TokenType::kNormal:
      return kAttrNormal;
    case TokenType::kUnknown:
      return kAttrUnknown;
    case TokenType::kControl:
      return kAttrControl;
    case TokenType::kUserDefined:
      return kAttrUserDefined;
    case TokenType::kUnused:
      return kAttrUnused;
    case TokenType::kByte:
      return kAttrByte;
    case TokenType::kUndefined:
      break;
  }
  return 0;
}

absl::Status FinalizeSpecialTokens(Vocab& vocab, const std::string& model_name,
                                   const std::string& source) {
  const int32_t n = vocab.size();
  if (n == 0) return absl::InvalidArgumentError(absl::StrCat(source, ": empty vocabulary"));
  if (!vocab.scores.empty() && static_cast<int32_t>(vocab.scores.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", vocab.scores.size(), " scores for ", n, " tokens"));
  }
  if (vocab.attrs.empty()) vocab.attrs.assign(n, kAttrNormal);
  if (static_cast<int32_t>(vocab.attrs.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", vocab.attrs.size(), " token types for ", n, " tokens"));
  }
  for (int32_t* id :
       {&vocab.bos_id, &vocab.eos_id, &vocab.unk_id, &vocab.eot_id, &vocab.eom_id, &vocab.pad_id}) {
    if (*id >= n) *id = -1;  // out of range: disabled, as llama.cpp does
  }
  if (vocab.add_bos && vocab.bos_id < 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": add_bos is set but there is no BOS"));
  }
  if (vocab.add_eos && vocab.eos_id < 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": add_eos is set but there is no EOS"));
  }

  // llama.cpp iterates an unordered map here; first-found order does not matter because
  // a vocabulary holds at most one of these texts in practice. We take the lowest id.
  static constexpr std::string_view kEotTexts[] = {
      "<|eot_id|>",      "<|im_end|>", "<|end|>", "<end_of_turn>",     "<|endoftext|>",
      "<|end_of_text|>", "<EOT>",      "_<EOT>",  "<end_of_utterance>"};
  static constexpr std::string_view kEogTexts[] = {
      "<|eot_id|>",        "<|im_end|>", "<|end|>",    "<|return|>", "<|call|>", "<end_of_turn>",
      "<|endoftext|>",     "</s>",       "<|eom_id|>", "<EOT>",      "_<EOT>",   "<|end_of_text|>",
      "<end_of_utterance>"};
  auto force_control = [&](int32_t id) {
    if ((vocab.attrs[id] & kAttrControl) == 0) vocab.attrs[id] |= kAttrControl;
  };
  absl::flat_hash_map<std::string_view, int32_t> by_text;
  for (int32_t id = n - 1; id >= 0; --id) by_text[vocab.tokens[id]] = id;
  if (vocab.eot_id < 0) {
    for (std::string_view t : kEotTexts) {
      auto it = by_text.find(t);
      if (it != by_text.end()) {
        vocab.eot_id = it->second;
        force_control(it->second);
        break;
      }
    }
  }
  if (vocab.eom_id < 0) {
    auto it = by_text.find("<|eom_id|>");
    if (it != by_text.end()) vocab.eom_id = it->second;
  }
  std::vector<int32_t> eog = vocab.eog_ids;  // loaders may pre-fill (generation_config.json)
  for (int32_t id : eog) {
    if (id < 0 || id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": end-of-generation id ", id, " outside the vocabulary"));
    }
  }
  for (std::string_view t : kEogTexts) {
    auto it = by_text.find(t);
    if (it == by_text.end()) continue;
    // Recent llama.cpp lists "</s>" for PaddleOCR; in Qwen2's vocabulary it is an ordinary BPE
    // token (id 128247) that must stay text, so a NORMAL "</s>" is left alone.
    if (t == "</s>" && vocab.attrs[it->second] == kAttrNormal) continue;
    eog.push_back(it->second);
    force_control(it->second);
  }
  for (int32_t id : {vocab.eos_id, vocab.eot_id, vocab.eom_id}) {
    if (id >= 0) eog.push_back(id);
  }
  // gpt-oss: "<|end|>" ends a message, not the generation, when "<|return|>" and "<|call|>" exist.
  if (by_text.contains("<|return|>") && by_text.contains("<|call|>") &&
      by_text.contains("<|end|>")) {
    const int32_t end_id = by_text["<|end|>"];
    eog.erase(std::remove(eog.begin(), eog.end(), end_id), eog.end());
    vocab.attrs[end_id] = kAttrUserDefined;
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  vocab.eog_ids = std::move(eog);

  // Phi-3 (llama.cpp matches the lower-cased general.name): special tokens eat spaces on their
  // right except <unk>, <s> and <|endoftext|>.
  std::string lower = model_name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("phi-3") != std::string::npos || lower.find("phi3") != std::string::npos) {
    for (int32_t id = 0; id < n; ++id) {
      if (vocab.attrs[id] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) {
        vocab.attrs[id] |= kAttrRstrip;
      }
    }
    for (std::string_view t : {"</s>"}) {
      if (auto it = by_text.find(t); it != by_text.end()) vocab.attrs[it->second] |= kAttrRstrip;
    }
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (auto it = by_text.find(t); it != by_text.end()) {
        vocab.attrs[it->second] &= static_cast<uint16_t>(~kAttrRstrip);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace weft::tokenizer
