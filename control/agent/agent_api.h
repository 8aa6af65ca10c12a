// SPDX-License-Identifier: Apache-2.0
// The `weft agent` wire contract, shared by the agent (AgentServer) and its client (the hosts
// provider): the Provider interface as JSON over HTTP, every route but /health behind
// `Authorization: Bearer <token>`.
//   GET    /health                -> 200 {"ok": true}                      (no token needed)
//   GET    /v1/health             -> ProviderHealth
//   GET    /v1/capacity           -> ProviderCapacity
//   GET    /v1/replicas           -> {"replicas": [ReplicaStatus...]}
//   POST   /v1/replicas           <- ReplicaSpec  -> ReplicaStatus (Provision; idempotent by id)
//   DELETE /v1/replicas/{id}      -> {} (Terminate; idempotent)
// Errors: {"error": {"message": ..., "code": <http status>, "status": "RESOURCE_EXHAUSTED"}}, the
// absl code travels by name so the client returns the provider's own status. Pure functions; any
// thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/providers/provider.h"
#include "nlohmann/json.hpp"

namespace weft::control::agent {

nlohmann::json ToJson(const ReplicaSpec& spec);
nlohmann::json ToJson(const ReplicaStatus& status);
nlohmann::json ToJson(const ProviderCapacity& capacity);
nlohmann::json ToJson(const ProviderHealth& health);

// Strict decoders: InvalidArgument naming the field ("engine.threads: want an integer") for a
// wrong type; missing optional fields take the struct defaults.
absl::StatusOr<ReplicaSpec> ReplicaSpecFromJson(const nlohmann::json& j);
absl::StatusOr<ReplicaStatus> ReplicaStatusFromJson(const nlohmann::json& j);
absl::StatusOr<ProviderCapacity> CapacityFromJson(const nlohmann::json& j);
absl::StatusOr<ProviderHealth> HealthFromJson(const nlohmann::json& j);
absl::StatusOr<std::vector<ReplicaStatus>> ReplicaListFromJson(const nlohmann::json& j);

// The HTTP status an error is answered with (InvalidArgument 400, NotFound 404, ResourceExhausted
// 429, Unavailable 503, Unauthenticated 401, PermissionDenied 403, others 500).
int HttpStatusOf(const absl::Status& status);
// The error body for `status` (not OK).
nlohmann::json ErrorJson(const absl::Status& status);
// The status an error answer stands for: the named absl code when the body carries one, else one
// derived from the HTTP status; the message is the body's, prefixed with `context`.
absl::Status StatusFromError(int http_status, std::string_view body, std::string_view context);

// Percent-encodes a replica id for a URL path segment (unreserved characters stay) and back.
std::string EncodePathSegment(std::string_view s);
std::string DecodePathSegment(std::string_view s);

// True when `got` equals "Bearer " + `token`, in time independent of where they differ (and of the
// token's contents); an empty token never matches.
bool BearerMatches(std::string_view got, std::string_view token);

}  // namespace weft::control::agent
