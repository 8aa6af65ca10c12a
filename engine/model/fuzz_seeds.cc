// SPDX-License-Identifier: Apache-2.0
// Writes seed corpora for the model fuzzers: `fuzz_seeds GGUF_DIR SAFETENSORS_DIR`. Seeds are
// generated (tiny models from tiny_models.h), never committed.
#include <cstdio>
#include <string>
#include <vector>

#include "engine/model/tiny_models.h"

namespace {

bool Write(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s GGUF_DIR SAFETENSORS_DIR\n", argv[0]);
    return 2;
  }
  namespace t = weft::model::testing;
  const std::string gguf = argv[1], st = argv[2];
  std::vector<uint8_t> l2c = t::TinyLlama2c(true);
  l2c.insert(l2c.begin(), 'L');
  const bool ok = Write(gguf + "/tiny.gguf", t::TinyGguf()) &&
                  Write(st + "/tiny.safetensors", t::TinySafetensors()) &&
                  Write(st + "/tiny_llama2c", l2c);
  if (!ok) std::perror("fuzz_seeds");
  return ok ? 0 : 1;
}
