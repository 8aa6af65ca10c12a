// SPDX-License-Identifier: Apache-2.0
// WatchRouteSource: routes from the control plane's watch stream, by long polling:
//   GET <control>/v1/routes?watch=1&version=<last version>&timeout_s=<n>
// The control plane answers at once when its table's version differs from `version` (always, for
// the first request, whose version is empty), otherwise holds the request until it changes or
// timeout_s passes. 200 carries a snapshot (RouteTableToJson); 304, or a 200 with the same
// version, means no change. Any other answer or a transport error keeps the last table and retries
// with capped exponential backoff. One thread of its own (a Boost.Beast client on a private
// io_context), from which the callback runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/routing/route_source.h"

namespace weft::gateway {

struct WatchRouteSourceOptions {
  std::string control_url;  // "http://host:port" of `weft control`
  std::string path = "/v1/routes";
  std::string bearer_token;     // sent as Authorization: Bearer <token> when non-empty
  double watch_timeout_s = 30;  // asked of the server; the client waits this + 5 s
  double connect_timeout_s = 2;
  double min_backoff_s = 0.1;  // after an error; doubles up to max_backoff_s
  double max_backoff_s = 5;
};

class WatchRouteSource : public RouteSource {
 public:
  explicit WatchRouteSource(WatchRouteSourceOptions options);
  ~WatchRouteSource() override;  // Stop()

  // InvalidArgument for a malformed control_url; otherwise starts the watch thread and returns.
  // The first table arrives through the callback once the control plane answers.
  absl::Status Start(Callback callback) override;
  // Cancels the request in flight and joins the thread.
  void Stop() override;

  std::string version() const;  // of the last table delivered; "" before the first
  int64_t errors() const;       // failed polls so far (for metrics and tests)
  int64_t polls() const;        // completed polls so far

  struct Client;

 private:
  void Loop();

  WatchRouteSourceOptions options_;
  Callback callback_;
  std::shared_ptr<Client> client_;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::string version_;    // guarded by mu_
  std::atomic<int64_t> errors_{0};
  std::atomic<int64_t> polls_{0};
};

}  // namespace weft::gateway
