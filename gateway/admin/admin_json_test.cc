// SPDX-License-Identifier: Apache-2.0
#include "gateway/admin/admin_json.h"

#include "api/openai.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::admin {
namespace {

using ::testing::ElementsAre;

TEST(AdminJsonTest, Durations) {
  EXPECT_EQ(*ParseDurationSeconds("30d"), 30 * 86400);
  EXPECT_EQ(*ParseDurationSeconds("12h"), 12 * 3600);
  EXPECT_EQ(*ParseDurationSeconds("90m"), 90 * 60);
  EXPECT_EQ(*ParseDurationSeconds("45s"), 45);
  EXPECT_EQ(*ParseDurationSeconds("2w"), 14 * 86400);
  EXPECT_EQ(*ParseDurationSeconds("3600"), 3600);
  for (const char* bad :
       {"", "d", "0d", "-1d", "1.5h", "10y", "1dd", " 1d", "99999999999999999d"}) {
    EXPECT_FALSE(ParseDurationSeconds(bad).ok()) << bad;
  }
}

TEST(AdminJsonTest, SplitList) {
  EXPECT_THAT(SplitList("a,b, c ,,"), ElementsAre("a", "b", "c"));
  EXPECT_TRUE(SplitList("").empty());
  EXPECT_THAT(SplitList("*"), ElementsAre("*"));
}

TEST(AdminJsonTest, TenantCreate) {
  auto t = ParseTenantCreate(
      R"({"id":"acme","name":"Acme","deployments":["llama"],"quotas":{"requests_per_min":5}})");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->id, "acme");
  EXPECT_EQ(t->name, "Acme");
  EXPECT_THAT(t->deployments, ElementsAre("llama"));
  EXPECT_EQ(t->quotas.requests_per_min, 5);
  EXPECT_EQ(t->quotas.tokens_per_min, 0);
  auto minimal = ParseTenantCreate(R"({"id":"x"})");
  ASSERT_TRUE(minimal.ok());
  EXPECT_THAT(minimal->deployments, ElementsAre("*"));

  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {"not json", ""},
      {"[1]", ""},
      {R"({})", "id"},
      {R"({"id":7})", "id"},
      {R"({"id":"a b"})", "id"},
      {R"({"id":"a","deployment":["x"]})", "deployment"},
      {R"({"id":"a","deployments":"x"})", "deployments"},
      {R"({"id":"a","deployments":[1]})", "deployments"},
      {R"({"id":"a","deployments":["a,b"]})", "deployments"},
      {R"({"id":"a","quotas":{"rpm":1}})", "quotas.rpm"},
      {R"({"id":"a","quotas":{"requests_per_min":-1}})", "quotas.requests_per_min"},
      {R"({"id":"a","quotas":{"requests_per_min":1.5}})", "quotas.requests_per_min"},
      {R"({"id":"a","quotas":{"tokens_per_month":"9"}})", "quotas.tokens_per_month"},
      {R"({"id":"a","quotas":{"tokens_per_month":18446744073709551615}})",
       "quotas.tokens_per_month"},
  };
  for (const Case& c : cases) {
    auto r = ParseTenantCreate(c.body);
    ASSERT_TRUE(absl::IsInvalidArgument(r.status())) << c.body;
    EXPECT_EQ(api::ErrorParam(r.status()), c.param) << c.body;
  }
}

TEST(AdminJsonTest, TenantPatchKeepsAbsentFields) {
  auto p = ParseTenantPatch(R"({"quotas":{"tokens_per_min":100}})");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->name);
  EXPECT_FALSE(p->deployments);
  EXPECT_FALSE(p->requests_per_min);
  EXPECT_EQ(p->tokens_per_min, 100);
  EXPECT_FALSE(ParseTenantPatch(R"({"id":"renamed"})").ok());
}

TEST(AdminJsonTest, KeyCreate) {
  auto k = ParseKeyCreate(R"({"tenant":"acme","name":"ci","expires_in":"30d",
                              "quotas":{"requests_per_min":3,"tokens_per_min":40}})",
                          1000);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->tenant, "acme");
  EXPECT_EQ(k->expires_unix_s, 1000 + 30 * 86400);
  EXPECT_EQ(k->quotas.requests_per_min, 3);
  EXPECT_EQ(k->quotas.tokens_per_min, 40);
  EXPECT_EQ(ParseKeyCreate(R"({"tenant":"a","expires_in":60})", 1000)->expires_unix_s, 1060);
  EXPECT_EQ(ParseKeyCreate(R"({"tenant":"a","expires_at":5000})", 1000)->expires_unix_s, 5000);
  EXPECT_EQ(ParseKeyCreate(R"({"tenant":"a"})", 1000)->expires_unix_s, 0);
  for (const char* bad :
       {R"({})", R"({"tenant":"a","expires_in":"soon"})", R"({"tenant":"a","expires_in":0})",
        R"({"tenant":"a","expires_in":"1d","expires_at":5})",
        R"({"tenant":"a","quotas":{"tokens_per_month":5}})", R"({"tenant":"a","key":"wft_x"})"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseKeyCreate(bad, 1000).status())) << bad;
  }
}

TEST(AdminJsonTest, KeyJsonNeverHoldsSecrets) {
  auth::ApiKey k;
  k.key_id = "0123456789abcdef";
  k.tenant = "acme";
  nlohmann::ordered_json j = KeyJson(k);
  EXPECT_EQ(j["id"], "0123456789abcdef");
  EXPECT_TRUE(j["expires_at"].is_null());
  EXPECT_FALSE(j.contains("key"));
  EXPECT_FALSE(j.contains("hash"));
  EXPECT_FALSE(j.contains("salt"));
}

}  // namespace
}  // namespace weft::admin
