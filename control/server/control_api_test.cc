// SPDX-License-Identifier: Apache-2.0
#include "control/server/control_api.h"

#include "gtest/gtest.h"

namespace weft::control {
namespace {

TEST(ParseDemandReportTest, ReadsAReport) {
  auto r = ParseDemandReport(
      R"({"gateway": "gw-1", "deployments": {"chat": {"held": 3}, "b": {"held": 0}}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->gateway, "gw-1");
  EXPECT_EQ(r->held, (std::map<std::string, int64_t>{{"b", 0}, {"chat", 3}}));
  auto empty = ParseDemandReport(R"({"gateway": "gw-1", "deployments": {}})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->held.empty());
}

TEST(ParseDemandReportTest, RefusesWhatIsNotAReport) {
  for (const char* bad : {
           "",
           "{",
           "[]",
           "null",
           R"({"deployments": {}})",
           R"({"gateway": "", "deployments": {}})",
           R"({"gateway": 7, "deployments": {}})",
           R"({"gateway": "g"})",
           R"({"gateway": "g", "deployments": []})",
           R"({"gateway": "g", "deployments": {"d": 3}})",
           R"({"gateway": "g", "deployments": {"d": {}}})",
           R"({"gateway": "g", "deployments": {"d": {"held": -1}}})",
           R"({"gateway": "g", "deployments": {"d": {"held": 1.5}}})",
           R"({"gateway": "g", "deployments": {"d": {"held": 2.0}}})",
           R"({"gateway": "g", "deployments": {"d": {"held": "3"}}})",
           // Past the cap: the book sums reports, and the sum must not overflow.
           R"({"gateway": "g", "deployments": {"d": {"held": 9223372036854775807}}})",
           R"({"gateway": "g", "deployments": {"d": {"held": 18446744073709551615}}})",
       }) {
    EXPECT_FALSE(ParseDemandReport(bad).ok()) << bad;
  }
  auto r = ParseDemandReport(R"({"gateway": "g", "deployments": {"chat": {"held": 1.5}}})");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("deployments.chat.held"), std::string::npos);
  EXPECT_TRUE(
      ParseDemandReport(R"({"gateway": "g", "deployments": {"d": {"held": 2147483648}}})").ok());
}

TEST(ParseScaleRequestTest, ReadsMinAndMax) {
  auto both = ParseScaleRequest(R"({"min": 0, "max": 4})");
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->min, 0);
  EXPECT_EQ(both->max, 4);
  auto one = ParseScaleRequest(R"({"max": 2})");
  ASSERT_TRUE(one.ok());
  EXPECT_FALSE(one->min.has_value());
  EXPECT_EQ(one->max, 2);
  // Negative values parse; the spec's validation refuses them with its own message.
  EXPECT_TRUE(ParseScaleRequest(R"({"min": -1})").ok());
}

TEST(ParseScaleRequestTest, RefusesWhatIsNotAScaleRequest) {
  for (const char* bad :
       {"", "[1]", R"({"replicas": 2})", R"({"min": "1"})", R"({"min": 1.5})",
        R"({"max": 2147483648})", R"({"min": -2147483649})", R"({"max": 18446744073709551615})"}) {
    EXPECT_FALSE(ParseScaleRequest(bad).ok()) << bad;
  }
  EXPECT_NE(ParseScaleRequest(R"({"max": 2147483648})").status().message().find("max"),
            std::string::npos);
}

}  // namespace
}  // namespace weft::control
