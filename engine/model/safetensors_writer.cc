// SPDX-License-Identifier: Apache-2.0
#include "engine/model/safetensors_writer.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "engine/model/cat.h"
#include "nlohmann/json.hpp"

namespace weft::model {

std::vector<uint8_t> SafetensorsBytes(const std::vector<SafetensorsEntry>& tensors,
                                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const SafetensorsEntry& t : tensors) {
    h[t.name] = {{"dtype", t.dtype},
                 {"shape", t.shape},
                 {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string header = h.dump();
  header.resize((header.size() + 7) / 8 * 8, ' ');
  std::vector<uint8_t> out;
  out.reserve(8 + header.size());
  for (int k = 0; k < 8; ++k)
    out.push_back(static_cast<uint8_t>(uint64_t{header.size()} >> (8 * k)));
  out.insert(out.end(), header.begin(), header.end());
  for (const SafetensorsEntry& t : tensors) out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  return out;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<uint8_t> bytes = SafetensorsBytes(tensors, metadata);
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) return absl::PermissionDeniedError(Cat("cannot create ", path));
  if (std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size()) {
    return absl::DataLossError(Cat("error writing ", path));
  }
  return absl::OkStatus();
}

}  // namespace weft::model
