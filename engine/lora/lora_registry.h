// SPDX-License-Identifier: Apache-2.0
// LoraRegistry: the adapters a replica serves, by name and alias. Thread-safe (one mutex; loading
// happens outside it). Removing an adapter only drops the registry's reference: a running request
// that holds the shared_ptr keeps it alive until it finishes. The base Model must outlive it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/lora/lora.h"
#include "engine/model/model.h"

namespace weft::lora {

struct LoraInfo {
  std::string name;
  std::string path;
  LoraFormat format = LoraFormat::kGguf;
  int max_rank = 0;
  int n_targets = 0;
  uint64_t bytes = 0;
  std::vector<std::string> aliases;
};

class LoraRegistry {
 public:
  explicit LoraRegistry(const model::Model& base) : base_(base) {}

  // Loads `path` (GGUF LoRA file or PEFT directory) against the base and registers it as `name`.
  // InvalidArgument for an empty name or one containing ':'; AlreadyExists when the name or an
  // alias is taken; the loader's error otherwise (nothing is registered then).
  absl::StatusOr<std::shared_ptr<const LoraAdapter>> Load(const std::string& name,
                                                          const std::string& path);
  // Registers an adapter loaded elsewhere.
  absl::Status Add(const std::string& name, std::shared_ptr<const LoraAdapter> adapter);
  // Makes `alias` another name of the adapter `name` (NotFound / AlreadyExists).
  absl::Status AddAlias(const std::string& alias, const std::string& name);
  // Unregisters an adapter (by name or alias) and all its aliases. NotFound if unknown.
  absl::Status Remove(const std::string& name_or_alias);
  // The adapter registered under a name or alias; null when none.
  std::shared_ptr<const LoraAdapter> Find(const std::string& name_or_alias) const;
  // All adapters, sorted by name.
  std::vector<LoraInfo> List() const;
  size_t size() const;

 private:
  static absl::Status CheckName(const std::string& name);
  const model::Model& base_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const LoraAdapter>> adapters_;  // guarded by mu_
  std::map<std::string, std::string> aliases_;                          // alias -> name; mu_
};

}  // namespace weft::lora
