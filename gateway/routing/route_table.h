// SPDX-License-Identifier: Apache-2.0
// RouteTable: an immutable snapshot of where each deployment runs (deployment, `deployment:adapter`
// and aliases -> replicas with provider, region, state). Built once, then shared read-only by every
// request thread through std::shared_ptr<const RouteTable>; RouteTableHolder swaps snapshots
// atomically when a RouteSource delivers a new one. The JSON form is what the control plane's
// watch stream carries (RouteTableToJson / RouteTableFromJson).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/config/gateway_config.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {

class RouteTable;

// Where one client model name goes.
struct RouteTarget {
  const DeploymentConfig* deployment = nullptr;  // owned by the table it came from
  std::string adapter;                           // "" = the base model
};

class RouteTable {
 public:
  // Validates (ValidateDeployments) and indexes `deployments`. `version` is an opaque resource
  // version ("" for a table built from a file). InvalidArgument names the offending field.
  static absl::StatusOr<std::shared_ptr<const RouteTable>> Build(
      std::vector<DeploymentConfig> deployments, std::string version = "");

  // "deployment", "deployment:adapter" or an alias. nullopt: no such deployment, an adapter the
  // deployment does not list (when it lists any), or a malformed name.
  std::optional<RouteTarget> Resolve(std::string_view model) const;

  const DeploymentConfig* FindDeployment(std::string_view name) const;
  // The replica with this id in any deployment, or nullptr.
  const ReplicaConfig* FindReplica(std::string_view id) const;

  const std::vector<DeploymentConfig>& deployments() const { return deployments_; }  // by name
  const std::string& version() const { return version_; }
  // Names clients may send (GET /v1/models): deployments, listed `deployment:adapter`s, aliases.
  std::vector<std::string> ModelNames() const;

 private:
  RouteTable() = default;

  std::vector<DeploymentConfig> deployments_;
  std::string version_;
  std::map<std::string, size_t, std::less<>> by_name_;                          // -> deployment
  std::map<std::string, std::pair<size_t, std::string>, std::less<>> aliases_;  // -> (dep, adapter)
  std::map<std::string, std::pair<size_t, size_t>, std::less<>> replicas_;      // -> (dep, replica)
};

// The current snapshot, swapped atomically. Get() from any thread; a reader keeps its snapshot
// alive for as long as it holds the shared_ptr.
class RouteTableHolder {
 public:
  RouteTableHolder();  // starts with an empty table
  std::shared_ptr<const RouteTable> Get() const { return table_.load(std::memory_order_acquire); }
  void Set(std::shared_ptr<const RouteTable> table) {
    table_.store(std::move(table), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const RouteTable>> table_;
};

// JSON wire form of a snapshot:
// {"version": "17", "deployments": [{"name": "m", "replicas": [{"id", "url", "provider", "region",
//   "state": "ready|draining|down", "weight"}], "adapters": [...], "aliases": {"alias": "adapter"},
//   "preferred_providers": [...], "preferred_regions": [...]}]}
// Unknown fields are ignored (newer control planes); missing ones take the defaults.
nlohmann::ordered_json RouteTableToJson(const RouteTable& table);
// InvalidArgument for malformed JSON, wrong types, or deployments that do not validate.
absl::StatusOr<std::shared_ptr<const RouteTable>> RouteTableFromJson(std::string_view body);

}  // namespace weft::gateway
