// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/usage_report.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {
namespace {

const std::vector<UsageRow> kRows = {
    {"2024-05-01", 3, 1200, 400, 96},
    {"2024-05-02", 12345, 7, 0, 1234567},
};

TEST(UsageReportTest, TableIsAligned) {
  EXPECT_EQ(FormatUsageTable(kRows, UsageGroupBy::kDay),
            "DAY         REQUESTS  PROMPT_TOKENS  CACHED_TOKENS  COMPLETION_TOKENS\n"
            "2024-05-01         3           1200            400                 96\n"
            "2024-05-02     12345              7              0            1234567\n"
            "TOTAL          12348           1207            400            1234663\n");
}

TEST(UsageReportTest, EmptyAndBlankGroups) {
  EXPECT_EQ(FormatUsageTable({}, UsageGroupBy::kKey),
            "KEY    REQUESTS  PROMPT_TOKENS  CACHED_TOKENS  COMPLETION_TOKENS\n"
            "TOTAL         0              0              0                  0\n");
  const std::vector<UsageRow> blank = {{"", 1, 2, 3, 4}};
  EXPECT_NE(FormatUsageTable(blank, UsageGroupBy::kDeployment).find("(none)"), std::string::npos);
}

TEST(UsageReportTest, Json) {
  const auto j = nlohmann::json::parse(FormatUsageJson(kRows, UsageGroupBy::kTenant));
  EXPECT_EQ(j["group_by"], "tenant");
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][1]["group"], "2024-05-02");
  EXPECT_EQ(j["rows"][1]["requests"], 12345);
  EXPECT_EQ(j["rows"][0]["cached_tokens"], 400);
  EXPECT_EQ(j["total"]["completion_tokens"], 1234663);
  EXPECT_EQ(j["total"]["prompt_tokens"], 1207);
  // Invalid UTF-8 from the store does not throw.
  const std::vector<UsageRow> bad = {{"\xff\xfe", 1, 0, 0, 0}};
  EXPECT_NO_THROW(FormatUsageJson(bad, UsageGroupBy::kKey));
}

}  // namespace
}  // namespace weft::gateway
