// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/usage_report.h"

#include <algorithm>
#include <array>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {
namespace {

UsageRow Total(std::span<const UsageRow> rows) {
  UsageRow total{"TOTAL", 0, 0, 0, 0};
  for (const UsageRow& r : rows) {
    total.requests += r.requests;
    total.prompt_tokens += r.prompt_tokens;
    total.cached_tokens += r.cached_tokens;
    total.completion_tokens += r.completion_tokens;
  }
  return total;
}

nlohmann::json Counters(const UsageRow& r) {
  return {{"requests", r.requests},
          {"prompt_tokens", r.prompt_tokens},
          {"cached_tokens", r.cached_tokens},
          {"completion_tokens", r.completion_tokens}};
}

}  // namespace

std::string FormatUsageTable(std::span<const UsageRow> rows, UsageGroupBy group_by) {
  using Line = std::array<std::string, 5>;
  std::vector<Line> lines;
  lines.push_back({absl::AsciiStrToUpper(std::string(UsageGroupByName(group_by))), "REQUESTS",
                   "PROMPT_TOKENS", "CACHED_TOKENS", "COMPLETION_TOKENS"});
  auto add = [&](const UsageRow& r, std::string group) {
    lines.push_back({std::move(group), absl::StrCat(r.requests), absl::StrCat(r.prompt_tokens),
                     absl::StrCat(r.cached_tokens), absl::StrCat(r.completion_tokens)});
  };
  for (const UsageRow& r : rows) add(r, r.group.empty() ? "(none)" : r.group);
  add(Total(rows), "TOTAL");
  std::array<size_t, 5> width{};
  for (const Line& line : lines) {
    for (size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  }
  std::string out;
  for (const Line& line : lines) {
    for (size_t c = 0; c < line.size(); ++c) {
      const std::string pad(width[c] - line[c].size(), ' ');
      if (c == 0) {
        absl::StrAppend(&out, line[c], pad);  // text left-aligned, numbers right-aligned
      } else {
        absl::StrAppend(&out, "  ", pad, line[c]);
      }
    }
    out += '\n';
  }
  return out;
}

std::string FormatUsageJson(std::span<const UsageRow> rows, UsageGroupBy group_by) {
  nlohmann::json j = {{"group_by", std::string(UsageGroupByName(group_by))},
                      {"rows", nlohmann::json::array()}};
  for (const UsageRow& r : rows) {
    nlohmann::json row = Counters(r);
    row["group"] = r.group;
    j["rows"].push_back(std::move(row));
  }
  j["total"] = Counters(Total(rows));
  // Group values come from the store; replace invalid UTF-8 rather than throw.
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace weft::gateway
