// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/loaders.h"

#include <filesystem>

#include "base/mmap_file.h"
#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/hf_tokenizer_json.h"
#include "engine/tokenizer/llama2c_tokenizer.h"
#include "engine/tokenizer/spm_tokenizer.h"

namespace weft::tokenizer {

absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFromVocab(Vocab vocab) {
  switch (vocab.kind) {
    case Vocab::Kind::kSpm: {
      auto t = SpmTokenizer::Create(std::move(vocab));
      if (!t.ok()) return t.status();
      return std::unique_ptr<Tokenizer>(*std::move(t));
    }
    case Vocab::Kind::kBpe: {
      auto t = BpeTokenizer::Create(std::move(vocab));
      if (!t.ok()) return t.status();
      return std::unique_ptr<Tokenizer>(*std::move(t));
    }
    case Vocab::Kind::kLlama2c: {
      auto t = Llama2cTokenizer::Create(std::move(vocab));
      if (!t.ok()) return t.status();
      return std::unique_ptr<Tokenizer>(*std::move(t));
    }
  }
  return absl::InternalError("unknown vocabulary kind");
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(const std::string& path,
                                                                int32_t vocab_size) {
  auto file = MmapFile::Open(path);
  if (!file.ok()) return file.status();
  auto vocab = ParseLlama2cTokenizer((*file)->bytes(), vocab_size, path);
  if (!vocab.ok()) return vocab.status();
  return TokenizerFromVocab(*std::move(vocab));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& json_path,
                                                           const std::string& config_dir) {
  auto text = ReadFileToString(json_path);
  if (!text.ok()) return text.status();
  const std::filesystem::path dir = config_dir.empty()
                                        ? std::filesystem::path(json_path).parent_path()
                                        : std::filesystem::path(config_dir);
  auto read_optional = [&](const char* name) -> absl::StatusOr<std::string> {
    const std::filesystem::path p = dir / name;
    std::error_code ec;
    if (!std::filesystem::exists(p, ec)) return std::string();
    return ReadFileToString(p.string());
  };
  auto config = read_optional("tokenizer_config.json");
  if (!config.ok()) return config.status();
  auto generation = read_optional("generation_config.json");
  if (!generation.ok()) return generation.status();
  auto vocab = ParseHfTokenizerJson(*text, *config, *generation, json_path);
  if (!vocab.ok()) return vocab.status();
  return TokenizerFromVocab(*std::move(vocab));
}

}  // namespace weft::tokenizer
