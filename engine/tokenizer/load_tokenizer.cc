// SPDX-License-Identifier: Apache-2.0
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/model/model.h"
#include "engine/tokenizer/loaders.h"
#include "engine/tokenizer/tokenizer.h"

namespace weft::tokenizer {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const model::Model& model,
                                                         const std::string& override_path) {
  const model::TokenizerSource& src = model.tokenizer;
  absl::StatusOr<std::unique_ptr<Tokenizer>> t;
  if (absl::EndsWith(override_path, ".model")) {
    return absl::UnimplementedError(
        absl::StrCat(override_path,
                     ": SentencePiece .model files are not supported; use the model's GGUF, a "
                     "llama2.c tokenizer.bin or an HF tokenizer.json"));
  }
  if (!override_path.empty()) {
    t = absl::EndsWith(override_path, ".json")
            ? LoadHfTokenizer(override_path, src.hf_config_dir)
            : LoadLlama2cTokenizer(override_path, model.config.vocab_size);
  } else if (src.gguf != nullptr) {
    t = LoadGgufTokenizer(*src.gguf);
  } else if (!src.hf_json_path.empty()) {
    t = LoadHfTokenizer(src.hf_json_path, src.hf_config_dir);
  } else if (!src.llama2c_path.empty()) {
    t = LoadLlama2cTokenizer(src.llama2c_path, model.config.vocab_size);
  } else {
    return absl::NotFoundError(absl::StrCat(
        model.path, ": no tokenizer found (give a tokenizer.bin or tokenizer.json path)"));
  }
  if (!t.ok()) return t.status();
  // Ids past the embedding table would read out of bounds in the forward pass.
  if (model.config.vocab_size > 0 && (*t)->vocab_size() > model.config.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(model.path, ": tokenizer has ", (*t)->vocab_size(),
                     " tokens but the model only ", model.config.vocab_size));
  }
  return t;
}

}  // namespace weft::tokenizer
