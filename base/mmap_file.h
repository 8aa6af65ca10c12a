// SPDX-License-Identifier: Apache-2.0
// A read-only memory-mapped file. Owns the mapping; the bytes stay valid until it is destroyed.
// Immutable after Open, so any thread may read it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace weft {

class MmapFile {
 public:
  // Maps `path` read-only. NotFound / PermissionDenied / Internal name the path on failure.
  // An empty file maps to an empty span.
  static absl::StatusOr<std::unique_ptr<MmapFile>> Open(const std::string& path);
  ~MmapFile();
  MmapFile(const MmapFile&) = delete;
  MmapFile& operator=(const MmapFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MmapFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

// Reads a whole (small) file into a string: configs, JSON, tokenizer files.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace weft
