// SPDX-License-Identifier: Apache-2.0
#include "cli/args.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace weft::cli {

absl::StatusOr<Args> Args::Parse(int argc, char** argv, int begin,
                                 const std::vector<FlagSpec>& specs) {
  Args args;
  bool only_positional = false;
  for (int i = begin; i < argc; ++i) {
    std::string a = argv[i];
    if (only_positional || a.size() < 2 || a[0] != '-' ||
        (a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.'))) {
      args.positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    std::string name = a;
    std::optional<std::string> inline_value;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      inline_value = a.substr(eq + 1);
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      for (const std::string& n : s.names) {
        if (n == name) spec = &s;
      }
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag ", name));
    const std::string& canonical = spec->names.back();
    std::string value = "true";
    if (spec->takes_value) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag ", name, " needs a value"));
      }
    } else if (inline_value) {
      return absl::InvalidArgumentError(absl::StrCat("flag ", name, " takes no value"));
    }
    auto& slot = args.values_[canonical];
    if (!spec->repeated) slot.clear();
    slot.push_back(value);
  }
  return args;
}

std::optional<std::string> Args::Get(const std::string& canonical) const {
  auto it = values_.find(canonical);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Args::GetAll(const std::string& canonical) const {
  auto it = values_.find(canonical);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<int64_t> Args::GetInt(const std::string& canonical, int64_t def) const {
  auto v = Get(canonical);
  if (!v) return def;
  int64_t out;
  if (!absl::SimpleAtoi(*v, &out)) {
    return absl::InvalidArgumentError(absl::StrCat(canonical, ": '", *v, "' is not an integer"));
  }
  return out;
}

absl::StatusOr<double> Args::GetDouble(const std::string& canonical, double def) const {
  auto v = Get(canonical);
  if (!v) return def;
  double out;
  if (!absl::SimpleAtod(*v, &out)) {
    return absl::InvalidArgumentError(absl::StrCat(canonical, ": '", *v, "' is not a number"));
  }
  return out;
}

std::string Args::GetString(const std::string& canonical, const std::string& def) const {
  auto v = Get(canonical);
  return v ? *v : def;
}

}  // namespace weft::cli
