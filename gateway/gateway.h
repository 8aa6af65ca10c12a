// SPDX-License-Identifier: Apache-2.0
// Gateway: the front door process (`weft gateway`). One OpenAI-compatible listener; each request is
// authenticated (auth/), held to its tenant's and key's quotas (quota/), routed to a replica of its
// deployment by the configured balancer over fresh load (routing/, upstream/LoadPoller), proxied
// with retries before the first byte and stream migration after it (ProxyCall), and leaves one
// usage record in the ledger (metering/) before its final bytes go out.
//
// Ownership: the Gateway owns every component it is given or builds. Threads: the listener's I/O
// threads run handlers (never blocking); the upstream client's threads run proxy events; the
// ledger's WAL writer thread makes usage records durable (group commits) and then lets the final
// bytes go; the load poller and route source have their own.
// Start/Stop from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gateway/auth/key_store.h"
#include "gateway/config/gateway_config.h"
#include "gateway/metering/ledger.h"
#include "gateway/routing/route_source.h"

namespace weft::gateway {

struct GatewayOptions {
  GatewayConfig config;
  std::string admin_key;                   // "" = admin API off
  std::unique_ptr<auth::KeyStore> keys;    // required
  std::unique_ptr<Ledger> ledger;          // required
  std::unique_ptr<RouteSource> routes;     // null: a static source over config.deployments
  int64_t default_max_tokens = 256;        // reserved against quotas when a request names none
  bool access_log = true;                  // one JSON line per request on stderr
  // Bearer token for the control plane (config.routes.control_url): POST /weft/v1/demand.
  std::string control_token;
};

class Gateway {
 public:
  // Validates the options and rebuilds quota counters from the ledger (this month's records).
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(GatewayOptions options);
  ~Gateway();  // Stop(0)
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Starts routes, load polling and the listener.
  absl::Status Start();
  uint16_t port() const;
  // Graceful drain: stop accepting, let requests in flight finish for up to `deadline_s`, then
  // close the rest (their usage is still recorded), close the ledger. Idempotent; blocks.
  void Stop(double deadline_s);

  struct Impl;

 private:
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft::gateway
