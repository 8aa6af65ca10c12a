// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the HF tokenizer.json parser, and Encode/Decode of arbitrary bytes (invalid
// UTF-8 included) through the SPM, BPE and llama2.c tokenizers. First byte picks the mode.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "base/check.h"
#include "engine/tokenizer/decoding.h"
#include "engine/tokenizer/hf_tokenizer_json.h"
#include "engine/tokenizer/loaders.h"
#include "engine/tokenizer/test_vocabs.h"

namespace weft::tokenizer {
namespace {

std::unique_ptr<Tokenizer> Make(Vocab v) {
  WEFT_CHECK(FinalizeSpecialTokens(v, "", "fuzz").ok());
  auto t = TokenizerFromVocab(std::move(v));
  WEFT_CHECK(t.ok());
  return *std::move(t);
}

Vocab Llama2cFromSpm() {
  Vocab v = testing::SmallSpmVocab();
  v.kind = Vocab::Kind::kLlama2c;
  for (std::string& t : v.tokens) {
    if (t.rfind("\xE2\x96\x81", 0) == 0) t = " " + t.substr(3);
  }
  return v;
}

void Exercise(const Tokenizer& tok, std::string_view text, bool special) {
  const auto ids = tok.Encode(text, {.add_bos = true, .parse_special = special});
  for (int32_t id : ids) WEFT_CHECK(id >= 0 && id < tok.vocab_size());
  StreamingDecoder dec(tok);
  std::string streamed;
  for (int32_t id : ids) streamed += dec.Push(id);
  streamed += dec.Flush();
  WEFT_CHECK(streamed == tok.Decode(ids));
}

}  // namespace
}  // namespace weft::tokenizer

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace weft::tokenizer;
  static const auto* spm = Make(testing::SmallSpmVocab()).release();
  static const auto* bpe = Make(testing::SmallBpeVocab()).release();
  static const auto* l2c = Make(Llama2cFromSpm()).release();
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto v = ParseHfTokenizerJson(rest, "", "", "fuzz.json");
      if (v.ok()) {
        auto t = TokenizerFromVocab(*std::move(v));
        if (t.ok()) Exercise(**t, "hello world 123 \xC3\xA9", true);
      }
      break;
    }
    case 1:
      Exercise(*spm, rest, data[0] & 4);
      break;
    case 2:
      Exercise(*bpe, rest, data[0] & 4);
      break;
    case 3:
      Exercise(*l2c, rest, false);
      break;
  }
  return 0;
}
