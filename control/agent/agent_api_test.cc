// SPDX-License-Identifier: Apache-2.0
#include "control/agent/agent_api.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace weft::control::agent {
namespace {

using nlohmann::json;

TEST(AgentApiTest, ReplicaSpecRoundTrips) {
  ReplicaSpec s;
  s.id = "demo-0a1b2c3d";
  s.deployment = "demo";
  s.model_path = "/models/m.gguf";
  s.adapters = {{"sql", "/a/sql.gguf"}};
  s.engine.threads = 4;
  s.engine.ctx = 2048;
  s.engine.extra = {"--kv-mem", "256"};
  s.accelerator = "nvidia-h100";
  s.accelerator_count = 2;
  absl::StatusOr<ReplicaSpec> back = ReplicaSpecFromJson(json::parse(ToJson(s).dump()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
}

TEST(AgentApiTest, StatusCapacityAndHealthRoundTrip) {
  ReplicaStatus st;
  st.id = "r1";
  st.deployment = "demo";
  st.phase = ReplicaPhase::kFailed;
  st.endpoint = "http://10.0.0.1:4000";
  st.failure_reason = "engine killed by signal 9";
  st.started_ms = 1700000000123;
  absl::StatusOr<ReplicaStatus> st2 = ReplicaStatusFromJson(ToJson(st));
  ASSERT_TRUE(st2.ok()) << st2.status();
  EXPECT_EQ(*st2, st);

  ProviderCapacity c;
  c.accelerators.push_back({.kind = "cpu", .total = 4, .free = 3, .usd_per_hour = 0.5});
  c.regions = {"us-east"};
  absl::StatusOr<ProviderCapacity> c2 = CapacityFromJson(ToJson(c));
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->accelerators, c.accelerators);
  EXPECT_EQ(c2->regions, c.regions);

  absl::StatusOr<ProviderHealth> h = HealthFromJson(ToJson(ProviderHealth{false, "down"}));
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->ok);
  EXPECT_EQ(h->reason, "down");

  absl::StatusOr<std::vector<ReplicaStatus>> list =
      ReplicaListFromJson(json{{"replicas", json::array({ToJson(st)})}});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0], st);
}

TEST(AgentApiTest, DecodersNameTheBadField) {
  auto bad = [](const json& j) { return std::string(ReplicaSpecFromJson(j).status().message()); };
  EXPECT_TRUE(absl::StartsWith(bad(json{{"id", 3}}), "id:")) << bad(json{{"id", 3}});
  EXPECT_TRUE(absl::StartsWith(bad(json{{"engine", {{"threads", "4"}}}}), "engine.threads:"));
  EXPECT_TRUE(absl::StartsWith(bad(json{{"adapters", {{"sql", 1}}}}), "adapters.sql:"));
  EXPECT_TRUE(absl::StartsWith(bad(json{{"accelerator_count", 1e12}}), "accelerator_count:"));
  EXPECT_TRUE(absl::StartsWith(bad(json{{"accelerator_count", 1LL << 40}}), "accelerator_count:"));
  EXPECT_FALSE(ReplicaSpecFromJson(json::array()).ok());
  EXPECT_TRUE(absl::StartsWith(ReplicaStatusFromJson(json{{"phase", "sleepy"}}).status().message(),
                               "phase:"));
  EXPECT_FALSE(ReplicaListFromJson(json{{"replicas", 1}}).ok());
  EXPECT_FALSE(CapacityFromJson(json{{"accelerators", {{{"total", "x"}}}}}).ok());
}

TEST(AgentApiTest, ErrorsCarryTheirCodeAcrossTheWire) {
  const absl::Status s = absl::ResourceExhaustedError("no free cpu slots");
  EXPECT_EQ(HttpStatusOf(s), 429);
  const absl::Status back = StatusFromError(429, ErrorJson(s).dump(), "host http://h:1");
  EXPECT_EQ(back.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(back.message(), "host http://h:1: no free cpu slots");
  // A body that is not ours: the code comes from the HTTP status.
  EXPECT_EQ(StatusFromError(400, "<html>", "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromError(502, "", "").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(StatusFromError(503, "", "x").message(), "x: HTTP 503");
}

TEST(AgentApiTest, PathSegmentsRoundTrip) {
  EXPECT_EQ(EncodePathSegment("demo-0a1b.c_~"), "demo-0a1b.c_~");
  EXPECT_EQ(EncodePathSegment("a/b c"), "a%2Fb%20c");
  EXPECT_EQ(DecodePathSegment(EncodePathSegment("a/b c%?é")), "a/b c%?é");
  EXPECT_EQ(DecodePathSegment("100%"), "100%");
  EXPECT_EQ(DecodePathSegment("%zz"), "%zz");
}

TEST(AgentApiTest, BearerMatchesOnlyTheExactToken) {
  EXPECT_TRUE(BearerMatches("Bearer s3cret", "s3cret"));
  EXPECT_FALSE(BearerMatches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(BearerMatches("Bearer s3cret2", "s3cret"));
  EXPECT_FALSE(BearerMatches("Bearer S3cret", "s3cret"));
  EXPECT_FALSE(BearerMatches("s3cret", "s3cret"));
  EXPECT_FALSE(BearerMatches("", "s3cret"));
  EXPECT_FALSE(BearerMatches("Bearer ", ""));  // an empty token never matches
}

}  // namespace
}  // namespace weft::control::agent
