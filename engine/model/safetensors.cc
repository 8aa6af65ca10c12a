// SPDX-License-Identifier: Apache-2.0
#include "engine/model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "engine/model/cat.h"
#include "nlohmann/json.hpp"

namespace weft::model {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100 << 20;  // as the reference implementation

absl::Status Bad(const std::string& name, std::string_view what) {
  return absl::InvalidArgumentError(Cat("safetensors ", name, ": ", what));
}

bool DTypeOf(const std::string& s, kernels::DType& t, int64_t& size) {
  if (s == "F32") {
    t = kernels::DType::kF32;
    size = 4;
    return true;
  }
  if (s == "F16") {
    t = kernels::DType::kF16;
    size = 2;
    return true;
  }
  if (s == "BF16") {
    t = kernels::DType::kBF16;
    size = 2;
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<SafetensorsHeader> ParseSafetensors(std::span<const uint8_t> bytes,
                                                   const std::string& name) {
  if (bytes.size() < 8) {
    return absl::DataLossError(Cat("safetensors ", name, ": file has ", bytes.size(),
                                   " bytes, too short for the 8-byte header length"));
  }
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  if (n > kMaxHeaderBytes) {
    return Bad(name, Cat("header length ", n, " exceeds the limit of ", kMaxHeaderBytes));
  }
  if (n > bytes.size() - 8) {
    return absl::DataLossError(Cat("safetensors ", name, ": header length ", n,
                                   " goes beyond the end of the file (", bytes.size(), " bytes)"));
  }
  const char* hb = reinterpret_cast<const char*>(bytes.data() + 8);
  nlohmann::json j = nlohmann::json::parse(hb, hb + n, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad(name, "header is not valid JSON");
  if (!j.is_object()) return Bad(name, "header is not a JSON object");

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = bytes.size() - h.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& e = it.value();
    if (key == "__metadata__") {
      if (!e.is_object()) return Bad(name, "__metadata__ is not an object");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string()) {
          return Bad(name, Cat("__metadata__ value '", m.key(), "' is not a string"));
        }
        h.metadata[m.key()] = m.value().get_ref<const std::string&>();
      }
      continue;
    }
    if (!e.is_object()) return Bad(name, Cat("entry '", key, "' is not an object"));
    SafetensorsTensor t;
    t.name = key;
    auto dt = e.find("dtype");
    auto sh = e.find("shape");
    auto off = e.find("data_offsets");
    if (dt == e.end() || sh == e.end() || off == e.end()) {
      return Bad(name, Cat("tensor '", key, "' lacks dtype, shape or data_offsets"));
    }
    if (e.size() != 3) return Bad(name, Cat("tensor '", key, "' has unknown fields"));
    int64_t elem_size = 0;
    if (!dt->is_string() || !DTypeOf(dt->get_ref<const std::string&>(), t.type, elem_size)) {
      return Bad(name, Cat("tensor '", key, "' has unsupported dtype ", dt->dump(),
                           " (supported: F32, F16, BF16)"));
    }
    if (!sh->is_array() || sh->size() > 8) {
      return Bad(name, Cat("tensor '", key, "' shape is not an array of at most 8 dims"));
    }
    uint64_t count = 1;
    for (const nlohmann::json& d : *sh) {
      if (!d.is_number_unsigned()) {
        return Bad(name, Cat("tensor '", key, "' shape ", sh->dump(),
                             " has a non-integer or negative dimension"));
      }
      uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (v != 0 && count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / v)) {
        return Bad(name, Cat("tensor '", key, "' shape ", sh->dump(), " overflows"));
      }
      count *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned()) {
      return Bad(name, Cat("tensor '", key, "' data_offsets ", off->dump(),
                           " is not a pair of byte offsets"));
    }
    t.begin = (*off)[0].get<uint64_t>();
    t.end = (*off)[1].get<uint64_t>();
    if (t.begin > t.end) {
      return Bad(name,
                 Cat("tensor '", key, "' data_offsets ", off->dump(), " end before they begin"));
    }
    if (count > std::numeric_limits<uint64_t>::max() / elem_size ||
        t.end - t.begin != count * elem_size) {
      return Bad(name, Cat("tensor '", key, "' has ", t.end - t.begin, " bytes but dtype ",
                           dt->get_ref<const std::string&>(), " and shape ", sh->dump(), " need ",
                           count, " x ", elem_size));
    }
    if (t.end > data_size) {
      return absl::DataLossError(Cat("safetensors ", name, ": tensor '", key, "' bytes [", t.begin,
                                     ", ", t.end, ") lie beyond the data section of ", data_size,
                                     " bytes (truncated file?)"));
    }
    t.data = bytes.data() + h.data_start + t.begin;
    h.index.emplace(key, h.tensors.size());
    h.tensors.push_back(std::move(t));
  }
  // Byte ranges must not overlap.
  std::vector<const SafetensorsTensor*> sorted;
  for (const SafetensorsTensor& t : h.tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (size_t k = 1; k < sorted.size(); ++k) {
    if (sorted[k]->begin < sorted[k - 1]->end) {
      return Bad(name,
                 Cat("tensors '", sorted[k - 1]->name, "' and '", sorted[k]->name, "' overlap"));
    }
  }
  return h;
}

}  // namespace weft::model
