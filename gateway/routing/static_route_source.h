// SPDX-License-Identifier: Apache-2.0
// StaticRouteSource: routes from the gateway's config. With a config path it re-reads the file
// when it changes (polling its size and mtime every poll_interval_s) and on Reload() (the
// gateway's SIGHUP handler calls it); only `deployments` are taken from a re-read file (the
// rest of the config needs a restart). A file that fails to parse keeps the previous table, and
// its error is kept in last_error(). Thread-safe; its poll thread runs between Start and Stop.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/routing/route_source.h"

namespace weft::gateway {

struct StaticRouteSourceOptions {
  std::string config_path;     // "" = never re-read
  double poll_interval_s = 2;  // 0 = re-read only on Reload()
};

class StaticRouteSource : public RouteSource {
 public:
  // `deployments`: the config's, already parsed (GatewayConfig::deployments).
  StaticRouteSource(std::vector<DeploymentConfig> deployments,
                    StaticRouteSourceOptions options = {});
  ~StaticRouteSource() override;  // Stop()

  // Builds the first table and delivers it before returning; InvalidArgument if it does not
  // validate. Then starts the poll thread (when there is a path and an interval).
  absl::Status Start(Callback callback) override;
  void Stop() override;

  // Re-reads the config file now and delivers its table if the deployments changed. Returns the
  // parse error (the previous table stays) or OK. Any thread, after Start.
  absl::Status Reload();

  absl::Status last_error() const;
  int64_t generation() const;  // tables delivered so far; the version is "static-<generation>"

 private:
  struct FileStamp {  // identifies a version of the file without reading it
    bool exists = false;
    int64_t size = 0;
    int64_t mtime_ns = 0;
    uint64_t inode = 0;
    bool operator==(const FileStamp&) const = default;
  };
  static FileStamp Stamp(const std::string& path);
  void PollLoop(FileStamp last);
  absl::Status Deliver(std::vector<DeploymentConfig> deployments);  // holds deliver_mu_

  StaticRouteSourceOptions options_;
  std::vector<DeploymentConfig> initial_;
  Callback callback_;

  std::mutex deliver_mu_;                  // serializes reloads and callbacks
  std::vector<DeploymentConfig> current_;  // guarded by deliver_mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;    // guarded by mu_
  absl::Status last_error_;  // guarded by mu_
  int64_t generation_ = 0;   // guarded by mu_
  std::thread poller_;
};

}  // namespace weft::gateway
