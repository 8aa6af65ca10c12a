// SPDX-License-Identifier: Apache-2.0
// RouteSource: where route tables come from (the config file, the control plane's watch stream).
// Owned by the gateway. Start() hands it a callback that receives each new snapshot, in order, one
// at a time, from the source's own thread (or from Start / Reload for the static source); the
// callback must not block for long (it typically stores into a RouteTableHolder).
#pragma once

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "gateway/routing/route_table.h"

namespace weft::gateway {

class RouteSource {
 public:
  using Callback = std::function<void(std::shared_ptr<const RouteTable>)>;

  virtual ~RouteSource() = default;

  // Begins delivering snapshots to `callback`. Fails only when the source cannot start at all
  // (a malformed URL, an invalid initial config); later errors keep the last table and retry.
  virtual absl::Status Start(Callback callback) = 0;
  // Stops delivering; blocks until no callback runs or will run. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace weft::gateway
