// SPDX-License-Identifier: Apache-2.0
// DemandReporter: tells the control plane how many requests this gateway holds per deployment
// (HoldQueue's demand callback), as POST <control>/weft/v1/demand with
//   {"gateway": "<id>", "deployments": {"<name>": {"held": n}}}
// and the route watch's bearer token. Fire and forget on the upstream client (the queue reports
// again every second while it holds, so a lost report is repaired by the next one).
// Ownership: borrows the client (it outlives the reporter). Thread-safe; never blocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/upstream/upstream_client.h"

namespace weft::gateway {

struct DemandReporterOptions {
  std::string control_url;   // "http://host:port" of `weft control`
  std::string bearer_token;  // "" = no Authorization header
  std::string gateway_id;    // "" = "gw-<random hex>"
  double timeout_s = 2;
};

class DemandReporter {
 public:
  // InvalidArgument for a malformed control_url.
  static absl::StatusOr<std::unique_ptr<DemandReporter>> Create(upstream::UpstreamClient* client,
                                                                DemandReporterOptions options);

  void Report(const std::map<std::string, int64_t>& held);

  const std::string& gateway_id() const { return options_.gateway_id; }
  int64_t sent() const { return counts_->sent.load(); }      // reports control accepted (2xx)
  int64_t failed() const { return counts_->failed.load(); }  // transport errors, other statuses

 private:
  DemandReporter(upstream::UpstreamClient* client, DemandReporterOptions options,
                 upstream::Target target);

  upstream::UpstreamClient* const client_;
  DemandReporterOptions options_;
  const upstream::Target target_;
  struct Counts {
    std::atomic<int64_t> sent{0};
    std::atomic<int64_t> failed{0};
  };
  // Shared with exchanges in flight, which may end after the reporter is gone.
  const std::shared_ptr<Counts> counts_ = std::make_shared<Counts>();
};

}  // namespace weft::gateway
