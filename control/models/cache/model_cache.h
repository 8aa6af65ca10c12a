// SPDX-License-Identifier: Apache-2.0
// ModelCache: the ModelResolver of `weft control` (and `weft up`). Local paths and checkpoint
// directories resolve at once (they must exist). hf:// files are downloaded by one worker thread
// of the cache's own (DownloadFile: resume, checksum, timeouts) into a content-addressed store:
//
//   <dir>/blobs/sha256-<hex>                          the bytes, named by their SHA-256
//   <dir>/hf/<org>/<repo>/<revision>/<path>           a relative symlink to the blob (the index)
//   <dir>/partial/<sha256 of the url>.partial         an interrupted download, resumed next time
//
// A source whose name link (or, with a spec sha256, whose blob) is present resolves with no
// request at all. Several caches may share a directory (renames are atomic). The cache owns its
// worker; the destructor cancels a running download and joins. Every method is thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "control/models/model_resolver.h"

namespace weft::control {

struct ModelCacheOptions {
  std::string dir;                                     // e.g. <data>/models; created if missing
  std::string hf_endpoint = "https://huggingface.co";  // HF_ENDPOINT
  std::string hf_token;                                // HF_TOKEN: a bearer token, "" = none
  std::string revision = "main";                       // the branch, tag or commit to download from
  int64_t connect_timeout_ms = 10000;
  int64_t low_speed_bytes_per_s = 1024;
  int64_t low_speed_time_s = 30;
  int64_t max_bytes = int64_t{1} << 40;
  // A cut transfer is resumed at once this many times within one fetch (with a short pause)
  // before the fetch fails; answers such as 404 or a checksum mismatch are never retried here.
  int32_t resume_attempts = 2;
  int64_t resume_pause_ms = 500;
};

class ModelCache : public ModelResolver {
 public:
  // InvalidArgument for an empty dir; Internal when it cannot be created.
  static absl::StatusOr<std::unique_ptr<ModelCache>> Create(ModelCacheOptions options);
  ~ModelCache() override;

  ModelResolution Resolve(const ModelSource& source) override;
  void Retry(const ModelSource& source) override;

  // Resolves on the caller's thread, downloading if needed (blocks for the transfer); the local
  // path, or the error with the source named ("model hf://...: cannot reach ..."). For `weft up`.
  absl::StatusOr<std::string> Fetch(const ModelSource& source);
  // The cached path of an hf:// source when present (no request, no download), else nullopt.
  std::optional<std::string> Lookup(const ModelSource& source);

  const ModelCacheOptions& options() const { return options_; }

 private:
  struct Entry {
    ModelSource source;
    ModelResolution resolution;
    bool queued = false;
  };

  explicit ModelCache(ModelCacheOptions options);
  static std::string Key(const ModelSource& source);
  absl::StatusOr<std::string> NamePath(const ModelSource& source) const;
  absl::StatusOr<std::string> Download(const ModelSource& source, const std::string& key);
  void Worker();

  const ModelCacheOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;  // by Key(source)
  std::deque<std::string> queue_;
  bool stop_ = false;
  std::thread worker_;
};

// "model <uri>: <message>" with the status code kept.
absl::Status ModelError(const ModelSource& source, const absl::Status& status);

}  // namespace weft::control
