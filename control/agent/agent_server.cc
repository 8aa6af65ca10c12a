// SPDX-License-Identifier: Apache-2.0
#include "control/agent/agent_server.h"

#include <utility>

#include "control/agent/agent_api.h"
#include "nlohmann/json.hpp"

namespace weft::control::agent {
namespace {

using nlohmann::json;

http::Response JsonResponse(int status, const json& body) {
  http::Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

http::Response Error(const absl::Status& s) { return JsonResponse(HttpStatusOf(s), ErrorJson(s)); }

}  // namespace

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Start(Provider* provider,
                                                                AgentServerOptions options) {
  if (provider == nullptr) return absl::InvalidArgumentError("agent: no provider");
  if (options.token.empty()) {
    return absl::InvalidArgumentError("agent: token: empty (give --token or WEFT_AGENT_TOKEN)");
  }
  std::unique_ptr<AgentServer> s(new AgentServer(provider, std::move(options)));
  if (absl::Status st = s->server_.Start(); !st.ok()) return st;
  return s;
}

AgentServer::AgentServer(Provider* provider, AgentServerOptions options)
    : provider_(provider), token_(std::move(options.token)), server_(std::move(options.http)) {
  server_.Handle("GET", "/health",
                 [](const http::Request&, std::shared_ptr<http::ResponseWriter> w) {
                   w->Respond(JsonResponse(200, json{{"ok", true}}));
                 });
  Route("GET", "/v1/health",
        [this](const http::Request&) { return JsonResponse(200, ToJson(provider_->Health())); });
  Route("GET", "/v1/capacity", [this](const http::Request&) {
    absl::StatusOr<ProviderCapacity> c = provider_->Capacity();
    return c.ok() ? JsonResponse(200, ToJson(*c)) : Error(c.status());
  });
  Route("GET", "/v1/replicas", [this](const http::Request&) {
    absl::StatusOr<std::vector<ReplicaStatus>> list = provider_->List();
    if (!list.ok()) return Error(list.status());
    json out = json::array();
    for (const ReplicaStatus& s : *list) out.push_back(ToJson(s));
    return JsonResponse(200, json{{"replicas", std::move(out)}});
  });
  Route("POST", "/v1/replicas", [this](const http::Request& req) {
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return Error(absl::InvalidArgumentError("body: not JSON"));
    absl::StatusOr<ReplicaSpec> spec = ReplicaSpecFromJson(body);
    if (!spec.ok()) return Error(spec.status());
    absl::StatusOr<ReplicaStatus> s = provider_->Provision(*spec);
    return s.ok() ? JsonResponse(200, ToJson(*s)) : Error(s.status());
  });
  Route("DELETE", "/v1/replicas/{id}", [this](const http::Request& req) {
    absl::Status s = provider_->Terminate(DecodePathSegment(req.params.at("id")));
    return s.ok() ? JsonResponse(200, json::object()) : Error(s);
  });
}

AgentServer::~AgentServer() { Stop(0); }

void AgentServer::Stop(double deadline_s) { server_.Stop(deadline_s); }

void AgentServer::Route(const std::string& method, const std::string& pattern,
                        std::function<http::Response(const http::Request&)> fn) {
  server_.Handle(method, pattern,
                 [this, fn = std::move(fn)](const http::Request& req,
                                            std::shared_ptr<http::ResponseWriter> w) {
                   if (!BearerMatches(req.Header("Authorization"), token_)) {
                     http::Response r = Error(absl::UnauthenticatedError(
                         "agent: missing or wrong bearer token (Authorization: Bearer <token>)"));
                     r.headers.emplace_back("WWW-Authenticate", "Bearer");
                     w->Respond(std::move(r));
                     return;
                   }
                   w->Respond(fn(req));
                 });
}

}  // namespace weft::control::agent
