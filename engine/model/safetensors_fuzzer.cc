// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: safetensors header parsing and validation on arbitrary bytes, touching every
// tensor's first and last byte so a range outside the input trips ASan. Inputs that start with
// 'L' go to the llama2.c reader instead (it has no magic, so it shares this target).
#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/model/loaders.h"
#include "engine/model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  volatile uint8_t sink = 0;
  if (size > 0 && data[0] == 'L') {
    auto m = weft::model::ModelFromLlama2c(bytes.subspan(1), "fuzz.bin");
    if (m.ok()) {
      const weft::model::Tensor& t = (*m)->weights.output;
      const auto* p = static_cast<const uint8_t*>(t.data);
      sink = sink ^ p[t.ne[0] * t.ne[1] * 4 - 1];
    }
    return 0;
  }
  auto h = weft::model::ParseSafetensors(bytes, "fuzz.safetensors");
  if (!h.ok()) return 0;
  for (const weft::model::SafetensorsTensor& t : h->tensors) {
    if (t.end > t.begin) sink = sink ^ t.data[0] ^ t.data[t.end - t.begin - 1];
  }
  return 0;
}
