// SPDX-License-Identifier: Apache-2.0
// A small command-line parser for the `weft` verbs: positional arguments and `--flag value`,
// `-f value`, `--flag=value` or boolean `--flag`. Parsing errors are Status values naming the flag.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::cli {

struct FlagSpec {
  std::vector<std::string> names;  // e.g. {"-p", "--prompt"}; the last one is the canonical name
  bool takes_value = true;
  bool repeated = false;
};

class Args {
 public:
  // Parses argv[begin..) against `specs`; unknown flags are errors.
  static absl::StatusOr<Args> Parse(int argc, char** argv, int begin,
                                    const std::vector<FlagSpec>& specs);

  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& canonical) const { return values_.count(canonical) > 0; }
  std::optional<std::string> Get(const std::string& canonical) const;
  std::vector<std::string> GetAll(const std::string& canonical) const;
  absl::StatusOr<int64_t> GetInt(const std::string& canonical, int64_t def) const;
  absl::StatusOr<double> GetDouble(const std::string& canonical, double def) const;
  std::string GetString(const std::string& canonical, const std::string& def) const;

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace weft::cli
