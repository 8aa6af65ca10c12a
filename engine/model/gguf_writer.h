// SPDX-License-Identifier: Apache-2.0
// GgufWriter builds a GGUF (v2 or v3) file: metadata of every value type (nested arrays too) and
// tensors padded to the alignment. Tensor data is streamed row-chunk by row-chunk from callbacks,
// so writing a multi-GB model needs little memory. Not thread-safe; one writer per file.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kernels/dtype.h"
#include "engine/model/gguf.h"

namespace weft::model {

class GgufWriter {
 public:
  // Fills `out` (n_rows whole rows of the tensor, starting at row `first_row`).
  using FillRows =
      std::function<absl::Status(int64_t first_row, int64_t n_rows, std::span<uint8_t> out)>;

  explicit GgufWriter(uint32_t version = 3) : version_(version) {}

  // Metadata. Setting a key twice keeps its first position and the last value.
  void SetU8(std::string_view key, uint8_t v);
  void SetI8(std::string_view key, int8_t v);
  void SetU16(std::string_view key, uint16_t v);
  void SetI16(std::string_view key, int16_t v);
  void SetU32(std::string_view key, uint32_t v);
  void SetI32(std::string_view key, int32_t v);
  void SetU64(std::string_view key, uint64_t v);
  void SetI64(std::string_view key, int64_t v);
  void SetF32(std::string_view key, float v);
  void SetF64(std::string_view key, double v);
  void SetBool(std::string_view key, bool v);
  void SetString(std::string_view key, std::string_view v);
  void SetStringArray(std::string_view key, std::span<const std::string> v);
  // An array of fixed-size elements (`elem` is not kString/kArray); `raw` holds n little-endian
  // elements.
  void SetArray(std::string_view key, GgufType elem, const void* raw, uint64_t n);
  // Any value as GgufFile parses it, nested arrays included (copies metadata between files).
  void SetValue(std::string_view key, const GgufValue& v);
  // Removes a key if present.
  void Erase(std::string_view key);
  // Sets general.alignment (a power of two) and pads tensor data to it. Default 32, unwritten.
  void SetAlignment(uint32_t alignment);

  // Tensors, written in the order they are added. `ne` has 1 to 4 dims, ne[0] innermost; ne[0]
  // must be a multiple of the type's block size. InvalidArgument on a bad shape or size.
  absl::Status AddTensor(std::string_view name, kernels::DType type, std::vector<int64_t> ne,
                         std::span<const uint8_t> data);  // data is copied
  absl::Status AddTensor(std::string_view name, kernels::DType type, std::vector<int64_t> ne,
                         FillRows fill);

  // Writes everything. Errors from the file system or from a fill callback are returned.
  absl::Status WriteFile(const std::string& path) const;
  absl::StatusOr<std::vector<uint8_t>> WriteToBytes() const;

 private:
  struct PendingTensor {
    std::string name;
    kernels::DType type;
    std::vector<int64_t> ne;
    uint64_t nbytes = 0;
    int64_t row_bytes = 0;
    int64_t n_rows = 0;
    FillRows fill;
  };
  void SetSerialized(std::string_view key, std::string bytes);
  std::string Header() const;
  absl::Status WriteTo(const std::function<absl::Status(std::span<const uint8_t>)>& sink) const;

  uint32_t version_;
  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, std::string>> kv_;  // key -> type + value bytes
  std::vector<PendingTensor> tensors_;
};

}  // namespace weft::model
