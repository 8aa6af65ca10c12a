// SPDX-License-Identifier: Apache-2.0
// Test-only helpers for the metering tests: deterministic records, a temp dir removed on scope
// exit, segment file listing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/metering/usage_record.h"
#include "testing/test_data.h"

namespace weft::gateway::testing {

inline constexpr int64_t kDay0UnixMs = 1714521600000;  // 2024-05-01T00:00:00Z

// Record number `i`: ids "<prefix>-<i>", 3 tenants, 5 keys, 2 deployments, one record every
// 5 hours from 2024-05-01.
inline UsageRecord TestRecord(int64_t i, const std::string& prefix = "req") {
  UsageRecord r;
  r.request_id = absl::StrCat(prefix, "-", i);
  r.tenant = absl::StrCat("tenant", i % 3);
  r.key_id = absl::StrCat("key", i % 5);
  r.deployment = i % 2 ? "llama-8b" : "qwen-7b";
  r.adapter = i % 4 == 0 ? "sql-lora" : "";
  r.replica = absl::StrCat("replica-", i % 7);
  r.provider = i % 3 ? "local" : "aws";
  r.prompt_tokens = 100 + i;
  r.cached_tokens = i % 50;
  r.completion_tokens = 10 + 2 * i;
  r.status = i % 11 ? 200 : 499;
  r.ttft_ms = 12.5 + static_cast<double>(i) / 8;
  r.duration_ms = 250.25 + static_cast<double>(i);
  r.time_unix_ms = kDay0UnixMs + i * 5 * 3600 * 1000;
  return r;
}

// A fresh directory, removed (recursively) when this goes out of scope.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& prefix = "weft-metering-")
      : path_(weft::testing::MakeTempDir(prefix)) {}
  ~ScopedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The WAL segment files in `dir`, oldest first.
inline std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("wal-") && name.ends_with(".log")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace weft::gateway::testing
