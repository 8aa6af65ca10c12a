// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/route_table.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace weft::gateway {
namespace {

using json = nlohmann::ordered_json;

absl::Status TypeError(std::string_view path, std::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("route table: ", std::string(path), ": expected ", std::string(expected)));
}

absl::Status GetString(const json& obj, const char* key, const std::string& path,
                       std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return TypeError(absl::StrCat(path, ".", key), "a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetStrings(const json& obj, const char* key, const std::string& path,
                        std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return TypeError(absl::StrCat(path, ".", key), "an array of strings");
  for (const json& v : *it) {
    if (!v.is_string()) return TypeError(absl::StrCat(path, ".", key), "an array of strings");
    out->push_back(v.get<std::string>());
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplicaConfig> ReplicaFromJson(const json& j, const std::string& path) {
  if (!j.is_object()) return TypeError(path, "an object");
  ReplicaConfig r;
  WEFT_RETURN_IF_ERROR(GetString(j, "id", path, &r.id));
  WEFT_RETURN_IF_ERROR(GetString(j, "url", path, &r.url));
  WEFT_RETURN_IF_ERROR(GetString(j, "provider", path, &r.provider));
  WEFT_RETURN_IF_ERROR(GetString(j, "region", path, &r.region));
  std::string state = "ready";
  WEFT_RETURN_IF_ERROR(GetString(j, "state", path, &state));
  std::optional<ReplicaState> st = ParseReplicaState(state);
  if (!st) return TypeError(path + ".state", "ready, draining or down");
  r.state = *st;
  if (auto it = j.find("weight"); it != j.end() && !it->is_null()) {
    // Finite: JSON has no inf, and one parsed from an overflowing literal would go back out as
    // null.
    if (!it->is_number() || !std::isfinite(it->get<double>())) {
      return TypeError(path + ".weight", "a finite number");
    }
    r.weight = it->get<double>();
  }
  return r;
}

absl::StatusOr<DeploymentConfig> DeploymentFromJson(const json& j, size_t index) {
  std::string path = absl::StrCat("deployments[", index, "]");
  if (!j.is_object()) return TypeError(path, "an object");
  DeploymentConfig d;
  WEFT_RETURN_IF_ERROR(GetString(j, "name", path, &d.name));
  if (auto it = j.find("replicas"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return TypeError(path + ".replicas", "an array");
    for (size_t i = 0; i < it->size(); ++i) {
      WEFT_ASSIGN_OR_RETURN(ReplicaConfig r,
                            ReplicaFromJson((*it)[i], absl::StrCat(path, ".replicas[", i, "]")));
      d.replicas.push_back(std::move(r));
    }
  }
  WEFT_RETURN_IF_ERROR(GetStrings(j, "adapters", path, &d.adapters));
  WEFT_RETURN_IF_ERROR(GetStrings(j, "preferred_providers", path, &d.preferred_providers));
  WEFT_RETURN_IF_ERROR(GetStrings(j, "preferred_regions", path, &d.preferred_regions));
  if (auto it = j.find("aliases"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return TypeError(path + ".aliases", "an object of alias: adapter");
    for (const auto& [alias, adapter] : it->items()) {
      if (!adapter.is_string()) return TypeError(path + ".aliases." + alias, "a string");
      d.aliases[alias] = adapter.get<std::string>();
    }
  }
  return d;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const RouteTable>> RouteTable::Build(
    std::vector<DeploymentConfig> deployments, std::string version) {
  std::sort(deployments.begin(), deployments.end(),
            [](const DeploymentConfig& a, const DeploymentConfig& b) { return a.name < b.name; });
  WEFT_RETURN_IF_ERROR(ValidateDeployments(deployments));
  std::shared_ptr<RouteTable> t(new RouteTable());
  t->deployments_ = std::move(deployments);
  t->version_ = std::move(version);
  for (size_t d = 0; d < t->deployments_.size(); ++d) {
    const DeploymentConfig& dep = t->deployments_[d];
    t->by_name_.emplace(dep.name, d);
    for (const auto& [alias, adapter] : dep.aliases) {
      t->aliases_.emplace(alias, std::make_pair(d, adapter));
    }
    for (size_t r = 0; r < dep.replicas.size(); ++r) {
      t->replicas_.emplace(dep.replicas[r].id, std::make_pair(d, r));
    }
  }
  return std::shared_ptr<const RouteTable>(std::move(t));
}

std::optional<RouteTarget> RouteTable::Resolve(std::string_view model) const {
  if (auto it = aliases_.find(model); it != aliases_.end()) {
    return RouteTarget{&deployments_[it->second.first], it->second.second};
  }
  std::string_view name = model;
  std::string_view adapter;
  if (size_t colon = model.find(':'); colon != std::string_view::npos) {
    name = model.substr(0, colon);
    adapter = model.substr(colon + 1);
    if (adapter.empty() || adapter.find(':') != std::string_view::npos) return std::nullopt;
  }
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  const DeploymentConfig& dep = deployments_[it->second];
  if (!adapter.empty() && !dep.adapters.empty() &&
      std::find(dep.adapters.begin(), dep.adapters.end(), adapter) == dep.adapters.end()) {
    return std::nullopt;
  }
  return RouteTarget{&dep, std::string(adapter)};
}

const DeploymentConfig* RouteTable::FindDeployment(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &deployments_[it->second];
}

const ReplicaConfig* RouteTable::FindReplica(std::string_view id) const {
  auto it = replicas_.find(id);
  if (it == replicas_.end()) return nullptr;
  return &deployments_[it->second.first].replicas[it->second.second];
}

std::vector<std::string> RouteTable::ModelNames() const {
  std::vector<std::string> names;
  for (const DeploymentConfig& d : deployments_) {
    names.push_back(d.name);
    for (const std::string& a : d.adapters) names.push_back(absl::StrCat(d.name, ":", a));
  }
  for (const auto& [alias, unused] : aliases_) names.push_back(alias);
  std::sort(names.begin(), names.end());
  return names;
}

RouteTableHolder::RouteTableHolder() { Set(RouteTable::Build({}).value()); }

nlohmann::ordered_json RouteTableToJson(const RouteTable& table) {
  json deployments = json::array();
  for (const DeploymentConfig& d : table.deployments()) {
    json replicas = json::array();
    for (const ReplicaConfig& r : d.replicas) {
      replicas.push_back({{"id", r.id},
                          {"url", r.url},
                          {"provider", r.provider},
                          {"region", r.region},
                          {"state", std::string(ReplicaStateName(r.state))},
                          {"weight", r.weight}});
    }
    json aliases = json::object();
    for (const auto& [alias, adapter] : d.aliases) aliases[alias] = adapter;
    deployments.push_back({{"name", d.name},
                           {"replicas", std::move(replicas)},
                           {"adapters", d.adapters},
                           {"aliases", std::move(aliases)},
                           {"preferred_providers", d.preferred_providers},
                           {"preferred_regions", d.preferred_regions}});
  }
  return {{"version", table.version()}, {"deployments", std::move(deployments)}};
}

absl::StatusOr<std::shared_ptr<const RouteTable>> RouteTableFromJson(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("route table: malformed JSON");
  if (!j.is_object()) return TypeError("(top)", "an object");
  std::string version;
  if (auto it = j.find("version"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      version = it->get<std::string>();
    } else if (it->is_number_integer()) {
      version = it->dump();  // tolerate an integer resource version
    } else {
      return TypeError("version", "a string");
    }
  }
  std::vector<DeploymentConfig> deployments;
  if (auto it = j.find("deployments"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return TypeError("deployments", "an array");
    for (size_t i = 0; i < it->size(); ++i) {
      WEFT_ASSIGN_OR_RETURN(DeploymentConfig d, DeploymentFromJson((*it)[i], i));
      deployments.push_back(std::move(d));
    }
  }
  auto table = RouteTable::Build(std::move(deployments), std::move(version));
  if (!table.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("route table: ", table.status().message()));
  }
  return table;
}

}  // namespace weft::gateway
