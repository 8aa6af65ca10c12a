// SPDX-License-Identifier: Apache-2.0
// GGUF (v2, v3) reader over a memory map: metadata key/values, tensor infos, tensor data in place
// (no copies). Immutable after Open, so any thread may read it. Strings and tensor data point into
// the mapping and live as long as the GgufFile.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/mmap_file.h"
#include "engine/kernels/dtype.h"

namespace weft::model {

enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view GgufTypeName(GgufType t);
// Bytes of one fixed-size value of type t; 0 for strings, arrays and unknown types.
uint64_t GgufTypeSize(GgufType t);

// One metadata value. Scalars are widened into the matching field; arrays keep their element
// type and a view of the raw little-endian elements (strings are pre-split into views).
struct GgufValue {
  GgufType type = GgufType::kUint8;
  uint64_t u = 0;                         // unsigned integer types, bool
  int64_t i = 0;                          // signed integer types
  double f = 0;                           // float32/float64
  std::string_view str;                   // kString
  GgufType elem_type = GgufType::kUint8;  // kArray: type of each element
  uint64_t n = 0;                         // kArray: element count
  const uint8_t* raw = nullptr;           // kArray of fixed-size elements: first element
  std::vector<std::string_view> strs;     // kArray of strings
  std::vector<GgufValue> nested;          // kArray of arrays (rare)
};

struct GgufTensorInfo {
  std::string name;
  kernels::DType type = kernels::DType::kF32;
  int n_dims = 0;
  std::array<int64_t, 4> ne = {1, 1, 1, 1};  // ne[0] is the innermost (row) dimension
  uint64_t offset = 0;                       // from the start of the data section
  const uint8_t* data = nullptr;             // into the mapping
  uint64_t nbytes = 0;
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  // Maps and parses `path`. Every malformed input (truncation, bad magic/version, absurd counts,
  // unknown value or tensor type, misaligned or out-of-range tensor data, duplicate names) is an
  // InvalidArgument/DataLoss error whose message names the file and the problem.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses bytes the caller keeps alive (fuzzing, tests). `name` is used in error messages.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(std::span<const uint8_t> bytes,
                                                         std::string name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return bytes_.size(); }

  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return kv_; }
  const GgufValue* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }

  // Typed getters: NotFound if absent, InvalidArgument (naming key, file, actual type) if the
  // type does not convert. Integer getters accept any integer type whose value fits.
  absl::StatusOr<std::string_view> GetString(std::string_view key) const;
  absl::StatusOr<uint32_t> GetU32(std::string_view key) const;
  absl::StatusOr<int64_t> GetI64(std::string_view key) const;
  absl::StatusOr<float> GetF32(std::string_view key) const;
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<std::vector<std::string_view>> GetStringArray(std::string_view key) const;
  absl::StatusOr<std::vector<float>> GetF32Array(std::string_view key) const;
  absl::StatusOr<std::vector<int32_t>> GetI32Array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;

 private:
  GgufFile() = default;
  std::unique_ptr<MmapFile> file_;  // null when parsed from caller-owned bytes
  std::span<const uint8_t> bytes_;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  friend class GgufParser;
};

}  // namespace weft::model
