// SPDX-License-Identifier: Apache-2.0
// ControlServer: the control plane's HTTP API (what `weft deploy/get/describe/delete/scale` and the
// gateway's route watch talk to), on base/http's HttpServer:
//   POST   /v1/deployments               body: spec YAML or JSON; create or update (201 / 200);
//                                        400 {"error": {"message": "replicas.min: ...", "field"}}
//   GET    /v1/deployments               [{name, generation, deleted, status, ready, replicas}]
//   GET    /v1/deployments/{name}        {name, generation, deleted, status, spec, replicas,
//   events} DELETE /v1/deployments/{name}        202: marked deleted (the controller drains, then
//   removes) POST   /v1/deployments/{name}/scale  {"min": N, "max": M} (either may be left out) GET
//   /v1/replicas[?deployment=D]   GET /v1/providers   GET /v1/events[?object=&after=&limit=] GET
//   /health                       GET /metrics (Prometheus text) GET    /weft/v1/routes (also
//   /v1/routes): the route table of ready replicas in the gateway's
//          wire form (gateway/routing/route_table.h); ?watch=1&version=V&timeout_s=N holds the
//          request until the table's version differs from V (200) or N seconds pass (304). A held
//          watch waits on a thread of its own, never on an I/O thread.
//   POST /weft/v1/demand: {"gateway": ID, "deployments": {NAME: {"held": N}}}: requests a gateway
//          holds because a deployment has no ready replica (scale from zero), kept in the
//          DemandBook for the autoscaler; `held` also shows in GET /v1/deployments/{name}.
// With an admin token every path but /health needs "Authorization: Bearer <token>" (401).
// Ownership: borrows the store (it outlives the server). Thread-safe; Stop() ends held watches.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/http/http_server.h"
#include "control/server/demand_book.h"
#include "control/store/control_store.h"
#include "nlohmann/json.hpp"

namespace weft::control {

struct ControlServerOptions {
  http::ServerOptions http;         // host, port (0 = ephemeral), threads
  std::string admin_token;          // "" = no authentication
  double max_watch_timeout_s = 60;  // timeout_s asked by a watch is capped at this
  std::function<bool()> is_leader;  // reported by /health; empty = always true
  DemandBook* demand = nullptr;     // borrowed; null: POST /weft/v1/demand answers 404
};

// The route table (gateway wire form) of the store's ready replicas, with a content version.
absl::StatusOr<nlohmann::ordered_json> BuildRouteTableJson(ControlStore& store);

class ControlServer {
 public:
  ControlServer(ControlStore* store, ControlServerOptions options);
  ~ControlServer();  // Stop()

  absl::Status Start();
  uint16_t port() const { return server_.port(); }
  void Stop();  // ends held watches (they answer 304) and stops the HTTP server; idempotent

 private:
  void Route(const std::string& method, const std::string& pattern,
             std::function<http::Response(const http::Request&)> fn);
  void Watch(const http::Request& req, std::shared_ptr<http::ResponseWriter> w);
  bool Authorized(const http::Request& req) const;

  http::Response CreateOrUpdate(const http::Request& req);
  http::Response ListDeployments();
  http::Response GetDeployment(const std::string& name);
  http::Response DeleteDeployment(const std::string& name);
  http::Response Scale(const std::string& name, const std::string& body);
  http::Response ListReplicas(const http::Request& req);
  http::Response ListProviders();
  http::Response ListEvents(const http::Request& req);
  http::Response Metrics();
  http::Response Demand(const std::string& body);

  ControlStore* const store_;
  const ControlServerOptions options_;
  http::HttpServer server_;

  std::mutex mu_;
  bool stopping_ = false;
  struct Watcher {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::list<Watcher> watchers_;  // guarded by mu_; finished ones reaped on the next watch
  std::atomic<int64_t> watches_{0};
};

}  // namespace weft::control
