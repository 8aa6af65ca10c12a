// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/static_route_source.h"

#include <sys/stat.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace weft::gateway {

StaticRouteSource::FileStamp StaticRouteSource::Stamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  return FileStamp{true, static_cast<int64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                   static_cast<uint64_t>(st.st_ino)};
}

StaticRouteSource::StaticRouteSource(std::vector<DeploymentConfig> deployments,
                                     StaticRouteSourceOptions options)
    : options_(std::move(options)), initial_(std::move(deployments)) {}

StaticRouteSource::~StaticRouteSource() { Stop(); }

absl::Status StaticRouteSource::Deliver(std::vector<DeploymentConfig> deployments) {
  int64_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation = generation_ + 1;
  }
  auto table = RouteTable::Build(deployments, absl::StrCat("static-", generation));
  if (!table.ok()) return table.status();
  current_ = std::move(deployments);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_ = generation;
  }
  callback_(*std::move(table));
  return absl::OkStatus();
}

absl::Status StaticRouteSource::Start(Callback callback) {
  {
    std::lock_guard<std::mutex> lock(deliver_mu_);
    callback_ = std::move(callback);
    if (absl::Status s = Deliver(initial_); !s.ok()) return s;
  }
  if (options_.config_path.empty()) return absl::OkStatus();
  // The file may have changed since the caller parsed it: stamp it, then read it once more.
  FileStamp stamp = Stamp(options_.config_path);
  (void)Reload();  // a broken file keeps the initial table; the error is in last_error()
  if (options_.poll_interval_s > 0) {
    poller_ = std::thread([this, stamp] { PollLoop(stamp); });
  }
  return absl::OkStatus();
}

void StaticRouteSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (poller_.joinable()) poller_.join();
  // A Reload() running on another thread finishes its callback before Stop returns.
  std::lock_guard<std::mutex> lock(deliver_mu_);
  callback_ = nullptr;
}

absl::Status StaticRouteSource::Reload() {
  std::lock_guard<std::mutex> lock(deliver_mu_);
  if (!callback_) return absl::FailedPreconditionError("route source not started (or stopped)");
  if (options_.config_path.empty()) return absl::OkStatus();
  absl::StatusOr<GatewayConfig> config = LoadGatewayConfig(options_.config_path);
  absl::Status status = config.status();
  if (config.ok() && config->deployments != current_) {
    status = Deliver(std::move(config->deployments));
  }
  std::lock_guard<std::mutex> state_lock(mu_);
  last_error_ = status;
  return status;
}

absl::Status StaticRouteSource::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

int64_t StaticRouteSource::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

void StaticRouteSource::PollLoop(FileStamp last) {
  auto interval = std::chrono::duration<double>(options_.poll_interval_s);
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, interval, [this] { return stopping_; })) {
    lock.unlock();
    FileStamp now = Stamp(options_.config_path);
    if (now.exists && !(now == last)) {
      last = now;
      (void)Reload();  // errors are kept in last_error()
    }
    lock.lock();
  }
}

}  // namespace weft::gateway
