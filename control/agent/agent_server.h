// SPDX-License-Identifier: Apache-2.0
// AgentServer: the HTTP front of `weft agent` (agent_api.h): a Provider (on a host, the local one
// that runs `weft engine` children) exposed to the control plane's hosts provider, every route but
// /health behind a shared bearer token (compared in constant time; 401 otherwise). Ownership:
// borrows the provider (it outlives the server). Provider calls run on the I/O threads, which is
// fine because every Provider method returns promptly. Start/Stop from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/http/http_server.h"
#include "control/providers/provider.h"

namespace weft::control::agent {

struct AgentServerOptions {
  http::ServerOptions http;  // host, port (0 = ephemeral), threads
  std::string token;         // required: the shared secret of the control plane and its agents
};

class AgentServer {
 public:
  // Binds and serves. InvalidArgument for an empty token; the bind error when the address is taken.
  static absl::StatusOr<std::unique_ptr<AgentServer>> Start(Provider* provider,
                                                            AgentServerOptions options);
  ~AgentServer();  // Stop(0)
  AgentServer(const AgentServer&) = delete;
  AgentServer& operator=(const AgentServer&) = delete;

  uint16_t port() const { return server_.port(); }
  // Stops accepting, lets requests in flight finish for up to deadline_s. Idempotent; blocks.
  void Stop(double deadline_s);

 private:
  AgentServer(Provider* provider, AgentServerOptions options);
  void Route(const std::string& method, const std::string& pattern,
             std::function<http::Response(const http::Request&)> fn);

  Provider* const provider_;
  const std::string token_;
  http::HttpServer server_;
};

}  // namespace weft::control::agent
