// SPDX-License-Identifier: Apache-2.0
#include "control/models/cache/model_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "control/models/cache/model_download.h"
#include "openssl/evp.h"

namespace weft::control {

namespace fs = std::filesystem;

namespace {

std::string Sha256Hex(std::string_view s) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), digest, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += absl::StrFormat("%02x", digest[i]);
  return hex;
}

ModelResolution Failed(const absl::Status& s) {
  return {.state = ModelState::kFailed,
          .path = "",
          .reason = std::string(s.message()),
          .bytes_done = 0,
          .bytes_total = -1};
}
ModelResolution Ready(std::string path) {
  return {.state = ModelState::kReady,
          .path = std::move(path),
          .reason = "",
          .bytes_done = 0,
          .bytes_total = -1};
}

// An exclusive flock held for one download of one URL (across threads and processes sharing the
// cache directory); released by the destructor.
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

absl::Status ModelError(const ModelSource& source, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("model ", source.uri, ": ", status.message()));
}

absl::StatusOr<std::unique_ptr<ModelCache>> ModelCache::Create(ModelCacheOptions options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("model cache: no directory");
  std::error_code ec;
  options.dir = fs::absolute(options.dir, ec).lexically_normal().string();
  for (const char* sub : {"blobs", "hf", "partial"}) {
    fs::create_directories(fs::path(options.dir) / sub, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("model cache: cannot create ", options.dir, "/", sub, ": ", ec.message()));
    }
  }
  return std::unique_ptr<ModelCache>(new ModelCache(std::move(options)));
}

ModelCache::ModelCache(ModelCacheOptions options) : options_(std::move(options)) {
  worker_ = std::thread([this] { Worker(); });
}

ModelCache::~ModelCache() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

std::string ModelCache::Key(const ModelSource& source) {
  return absl::StrCat(source.uri, "\n", source.sha256);
}

absl::StatusOr<std::string> ModelCache::NamePath(const ModelSource& source) const {
  // The spec parser has checked these; a source built in code is checked again, since the parts
  // become a path.
  std::vector<std::string> parts = {source.hf_org, source.hf_repo, options_.revision};
  for (absl::string_view p : absl::StrSplit(source.hf_path, '/')) parts.emplace_back(p);
  fs::path name = fs::path(options_.dir) / "hf";
  for (const std::string& p : parts) {
    if (p.empty() || p == "." || p == ".." || p.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("not an hf://org/repo/path source: \"", source.uri, "\""));
    }
    name /= p;
  }
  return name.string();
}

std::optional<std::string> ModelCache::Lookup(const ModelSource& source) {
  if (source.kind != ModelSourceKind::kHuggingFace) return std::nullopt;
  absl::StatusOr<std::string> name = NamePath(source);
  if (!name.ok()) return std::nullopt;
  std::error_code ec;
  const fs::path link(*name);
  if (fs::is_symlink(link, ec) && fs::exists(link, ec)) {
    const std::string target = fs::read_symlink(link, ec).filename().string();
    if (source.sha256.empty() || target == "sha256-" + source.sha256) return *name;
  }
  if (source.sha256.empty()) return std::nullopt;
  // The bytes may be there under another name (the same file from another repo or revision).
  const fs::path blob = fs::path(options_.dir) / "blobs" / ("sha256-" + source.sha256);
  if (!fs::exists(blob, ec)) return std::nullopt;
  fs::create_directories(link.parent_path(), ec);
  const std::string tmp = absl::StrCat(*name, ".tmp-", std::random_device{}());
  fs::create_symlink(fs::relative(blob, link.parent_path(), ec), tmp, ec);
  if (ec) return std::nullopt;
  fs::rename(tmp, link, ec);
  if (ec) return std::nullopt;
  return *name;
}

absl::StatusOr<std::string> ModelCache::Download(const ModelSource& source,
                                                 const std::string& key) {
  absl::StatusOr<std::string> name = NamePath(source);
  if (!name.ok()) return name.status();
  const std::string url = HfResolveUrl(options_.hf_endpoint, source.hf_org, source.hf_repo,
                                       options_.revision, source.hf_path);
  const std::string partial =
      (fs::path(options_.dir) / "partial" / (Sha256Hex(url) + ".partial")).string();
  FileLock lock(partial + ".lock");
  if (std::optional<std::string> hit = Lookup(source)) return *hit;  // fetched while we waited

  DownloadOptions o;
  o.url = url;
  o.partial_path = partial;
  o.bearer_token = options_.hf_token;
  o.expected_sha256 = source.sha256;
  o.connect_timeout_ms = options_.connect_timeout_ms;
  o.low_speed_bytes_per_s = options_.low_speed_bytes_per_s;
  o.low_speed_time_s = options_.low_speed_time_s;
  o.max_bytes = options_.max_bytes;
  int64_t done = 0;
  o.progress = [&](int64_t bytes, int64_t total) {
    done = bytes;
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      it->second.resolution.bytes_done = bytes;
      it->second.resolution.bytes_total = total;
    }
    return !stop_;
  };
  absl::StatusOr<DownloadResult> r;
  for (int attempt = 0;; ++attempt) {
    std::error_code ec;
    const int64_t before =
        fs::exists(partial, ec) ? static_cast<int64_t>(fs::file_size(partial, ec)) : 0;
    done = before;
    r = DownloadFile(o);
    // Resume at once only a transfer that was making progress and got cut; an unreachable host or
    // an HTTP error is reported (the controller decides about retrying, with backoff).
    if (r.ok() || r.status().code() != absl::StatusCode::kUnavailable || done <= before ||
        attempt >= options_.resume_attempts) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.resume_pause_ms));
  }
  if (!r.ok()) return r.status();

  std::error_code ec;
  const fs::path blob = fs::path(options_.dir) / "blobs" / ("sha256-" + r->sha256);
  if (fs::exists(blob, ec)) {
    fs::remove(partial, ec);
  } else {
    fs::rename(partial, blob, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("rename into ", blob.string(), ": ", ec.message()));
    }
  }
  const fs::path link(*name);
  fs::create_directories(link.parent_path(), ec);
  const std::string tmp = absl::StrCat(*name, ".tmp-", std::random_device{}());
  fs::create_symlink(fs::relative(blob, link.parent_path(), ec), tmp, ec);
  if (!ec) fs::rename(tmp, link, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return absl::InternalError(absl::StrCat("link ", *name, ": ", ec.message()));
  }
  return *name;
}

ModelResolution ModelCache::Resolve(const ModelSource& source) {
  if (source.kind != ModelSourceKind::kHuggingFace) {
    absl::StatusOr<std::string> path = Fetch(source);
    return path.ok() ? Ready(*path) : Failed(path.status());
  }
  const std::string key = Key(source);
  std::unique_lock<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.resolution.state != ModelState::kReady) {
    return it->second.resolution;  // pending or failed
  }
  lock.unlock();
  // Ready or never asked: the disk decides (a cache hit makes no request).
  if (std::optional<std::string> hit = Lookup(source)) return Ready(*hit);
  lock.lock();
  Entry& e = entries_[key];
  if (e.queued || e.resolution.state == ModelState::kFailed) return e.resolution;
  e.source = source;
  e.resolution = ModelResolution{};
  e.queued = true;
  queue_.push_back(key);
  cv_.notify_all();
  return e.resolution;
}

void ModelCache::Retry(const ModelSource& source) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(Key(source));
  if (it != entries_.end() && it->second.resolution.state == ModelState::kFailed) {
    entries_.erase(it);
  }
}

absl::StatusOr<std::string> ModelCache::Fetch(const ModelSource& source) {
  if (source.kind == ModelSourceKind::kHuggingFace) {
    if (std::optional<std::string> hit = Lookup(source)) return *hit;
    absl::StatusOr<std::string> path = Download(source, "");
    if (!path.ok()) return ModelError(source, path.status());
    return path;
  }
  std::error_code ec;
  const fs::path p = fs::absolute(source.uri, ec);
  const bool dir = source.kind == ModelSourceKind::kCheckpointDir;
  if (ec || (dir ? !fs::is_directory(p, ec) : !fs::is_regular_file(p, ec))) {
    return absl::NotFoundError(absl::StrCat("model ", source.uri, ": no such ",
                                            dir ? "directory" : "file", " on this machine"));
  }
  return p.lexically_normal().string();
}

void ModelCache::Worker() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const std::string key = queue_.front();
    queue_.pop_front();
    auto it = entries_.find(key);
    if (it == entries_.end()) continue;
    const ModelSource source = it->second.source;
    lock.unlock();
    absl::StatusOr<std::string> path = Download(source, key);
    lock.lock();
    Entry& e = entries_[key];
    e.source = source;
    e.queued = false;
    e.resolution = path.ok() ? Ready(*path) : Failed(ModelError(source, path.status()));
  }
}

}  // namespace weft::control
