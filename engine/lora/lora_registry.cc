// SPDX-License-Identifier: Apache-2.0
#include "engine/lora/lora_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace weft::lora {

absl::Status LoraRegistry::CheckName(const std::string& name) {
  if (name.empty() || name.find(':') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter name '", name, "' is empty or contains ':'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const LoraAdapter>> LoraRegistry::Load(const std::string& name,
                                                                      const std::string& path) {
  WEFT_RETURN_IF_ERROR(CheckName(name));
  if (Find(name) != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat("adapter '", name, "' is already loaded"));
  }
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<LoraAdapter> loaded, LoadLoraAdapter(path, base_));
  std::shared_ptr<const LoraAdapter> adapter = std::move(loaded);
  WEFT_RETURN_IF_ERROR(Add(name, adapter));
  return adapter;
}

absl::Status LoraRegistry::Add(const std::string& name,
                               std::shared_ptr<const LoraAdapter> adapter) {
  WEFT_RETURN_IF_ERROR(CheckName(name));
  if (adapter == nullptr) return absl::InvalidArgumentError("null adapter");
  std::lock_guard<std::mutex> lock(mu_);
  if (adapters_.count(name) != 0 || aliases_.count(name) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("adapter '", name, "' is already loaded"));
  }
  adapters_.emplace(name, std::move(adapter));
  return absl::OkStatus();
}

absl::Status LoraRegistry::AddAlias(const std::string& alias, const std::string& name) {
  WEFT_RETURN_IF_ERROR(CheckName(alias));
  std::lock_guard<std::mutex> lock(mu_);
  if (adapters_.count(name) == 0) {
    return absl::NotFoundError(absl::StrCat("no adapter named '", name, "'"));
  }
  if (adapters_.count(alias) != 0 || aliases_.count(alias) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("name '", alias, "' is already taken"));
  }
  aliases_.emplace(alias, name);
  return absl::OkStatus();
}

absl::Status LoraRegistry::Remove(const std::string& name_or_alias) {
  std::shared_ptr<const LoraAdapter> dropped;  // released after the lock
  std::lock_guard<std::mutex> lock(mu_);
  std::string name = name_or_alias;
  if (auto a = aliases_.find(name); a != aliases_.end()) name = a->second;
  auto it = adapters_.find(name);
  if (it == adapters_.end()) {
    return absl::NotFoundError(absl::StrCat("no adapter named '", name_or_alias, "'"));
  }
  dropped = std::move(it->second);
  adapters_.erase(it);
  for (auto a = aliases_.begin(); a != aliases_.end();) {
    a = a->second == name ? aliases_.erase(a) : std::next(a);
  }
  return absl::OkStatus();
}

std::shared_ptr<const LoraAdapter> LoraRegistry::Find(const std::string& name_or_alias) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string name = name_or_alias;
  if (auto a = aliases_.find(name); a != aliases_.end()) name = a->second;
  auto it = adapters_.find(name);
  return it == adapters_.end() ? nullptr : it->second;
}

std::vector<LoraInfo> LoraRegistry::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<LoraInfo> out;
  for (const auto& [name, a] : adapters_) {
    LoraInfo info{name, a->path, a->format, a->max_rank, a->n_targets, a->bytes, {}};
    for (const auto& [alias, target] : aliases_) {
      if (target == name) info.aliases.push_back(alias);
    }
    out.push_back(std::move(info));
  }
  return out;
}

size_t LoraRegistry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return adapters_.size();
}

}  // namespace weft::lora
