// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/replica_tracker.h"

#include "absl/strings/str_cat.h"
#include "gateway/routing/balancers.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

std::shared_ptr<const RouteTable> Table(int replicas, const std::string& name = "m") {
  DeploymentConfig d;
  d.name = name;
  for (int i = 0; i < replicas; ++i) {
    ReplicaConfig r;
    r.id = absl::StrCat(name, i);
    r.url = absl::StrCat("http://127.0.0.1:", 7000 + i);
    r.provider = i % 2 ? "gcp" : "aws";
    d.replicas.push_back(r);
  }
  return RouteTable::Build({d}).value();
}

ReplicaTrackerOptions Options() {
  ReplicaTrackerOptions o;
  o.max_outstanding = 3;
  o.outlier.consecutive_failures = 3;
  o.outlier.base_ejection_s = 10;
  o.outlier.max_ejection_percent = 100;
  o.outlier.breaker_failures = 100;  // the detector acts first unless a test lowers it
  o.unhealthy_threshold = 2;
  return o;
}

TEST(ReplicaTrackerTest, AccountsRequestsTokensAndLatency) {
  auto table = Table(2);
  const DeploymentConfig& d = table->deployments()[0];
  ReplicaTracker t(Options());
  t.SetRoutes(*table);
  auto snap = t.Views(d, 0);
  ASSERT_EQ(snap.views().size(), 2u);
  EXPECT_EQ(snap.views()[1].id, "m1");
  EXPECT_EQ(snap.views()[1].provider, "gcp");
  EXPECT_TRUE(snap.views()[0].healthy);
  EXPECT_EQ(snap.views()[0].max_outstanding, 3);

  ASSERT_TRUE(t.Begin("m0", 100, 0));
  ASSERT_TRUE(t.Begin("m0", 50, 0));
  t.FirstToken("m0", 40, 1);
  t.InterToken("m0", 8, 2);
  auto v = t.Views(d, 2).views()[0];
  EXPECT_EQ(v.outstanding_requests, 2);
  EXPECT_EQ(v.outstanding_tokens, 150);
  EXPECT_EQ(v.ewma_ttft_ms, 40);
  EXPECT_EQ(v.ewma_itl_ms, 8);
  EXPECT_EQ(v.latency_updated_s, 2);
  t.End("m0", 100, ReplicaTracker::Outcome::kSuccess, 3);
  t.End("m0", 50, ReplicaTracker::Outcome::kCancelled, 3);
  v = t.Views(d, 3).views()[0];
  EXPECT_EQ(v.outstanding_requests, 0);
  EXPECT_EQ(v.outstanding_tokens, 0);
  EXPECT_FALSE(t.Begin("nope", 1, 0));
}

TEST(ReplicaTrackerTest, FailuresEjectAndTheBalancerAvoidsTheReplica) {
  auto table = Table(3);
  const DeploymentConfig& d = table->deployments()[0];
  ReplicaTracker t(Options());
  t.SetRoutes(*table);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(t.Begin("m1", 10, 1));
    t.End("m1", 10, ReplicaTracker::Outcome::kFailure, 1);
  }
  EXPECT_EQ(t.ejections_total(), 1);
  auto snap = t.Views(d, 2);
  EXPECT_TRUE(snap.views()[1].ejected);
  RoundRobinBalancer b;
  RequestView r;
  r.deployment = "m";
  for (int i = 0; i < 10; ++i) EXPECT_NE(b.Pick(r, snap.views()), "m1");
  EXPECT_FALSE(t.Views(d, 11.5).views()[1].ejected);  // back after base_ejection_s
}

TEST(ReplicaTrackerTest, BreakerOpensThenProbes) {
  ReplicaTrackerOptions o = Options();
  o.outlier.breaker_failures = 2;
  o.outlier.breaker_open_s = 5;
  o.outlier.consecutive_failures = 100;
  auto table = Table(1);
  const DeploymentConfig& d = table->deployments()[0];
  ReplicaTracker t(o);
  t.SetRoutes(*table);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(t.Begin("m0", 1, 0));
    t.End("m0", 1, ReplicaTracker::Outcome::kFailure, 0);
  }
  EXPECT_TRUE(t.Views(d, 1).views()[0].ejected);  // open
  EXPECT_FALSE(t.Begin("m0", 1, 1));
  EXPECT_FALSE(t.Views(d, 5).views()[0].ejected);  // half-open: one probe may go
  ASSERT_TRUE(t.Begin("m0", 1, 5));
  EXPECT_TRUE(t.Views(d, 5).views()[0].ejected);  // the probe is out
  EXPECT_FALSE(t.Begin("m0", 1, 5));
  t.End("m0", 1, ReplicaTracker::Outcome::kSuccess, 6);
  EXPECT_FALSE(t.Views(d, 6).views()[0].ejected);
  EXPECT_TRUE(t.Begin("m0", 1, 6));
}

TEST(ReplicaTrackerTest, HealthAndLoadReports) {
  auto table = Table(1);
  const DeploymentConfig& d = table->deployments()[0];
  ReplicaTracker t(Options());
  t.SetRoutes(*table);
  api::LoadReport report;
  report.ready = true;
  report.waiting = 4;
  report.tokens_in_flight = 900;
  report.adapters = {"sql"};
  t.OnLoadReport("m0", report, 0);
  auto snap = t.Views(d, 0);
  ReplicaView v = snap.views()[0];
  EXPECT_TRUE(v.has_load);
  EXPECT_EQ(v.waiting, 4);
  EXPECT_EQ(v.tokens_in_flight, 900);
  ASSERT_EQ(v.adapters.size(), 1u);
  // A newer report does not invalidate the spans of a snapshot already taken.
  report.adapters = {"chat", "x"};
  t.OnLoadReport("m0", report, 1);
  EXPECT_EQ(snap.views()[0].adapters[0], "sql");

  t.OnLoadReport("m0", absl::UnavailableError("refused"), 2);
  EXPECT_TRUE(t.Views(d, 2).views()[0].healthy);  // one failed poll is not enough
  t.OnLoadReport("m0", absl::UnavailableError("refused"), 3);
  EXPECT_FALSE(t.Views(d, 3).views()[0].healthy);
  t.OnLoadReport("m0", report, 4);
  EXPECT_TRUE(t.Views(d, 4).views()[0].healthy);
  api::LoadReport loading;  // ready = false: still loading its model
  t.OnLoadReport("m0", loading, 5);
  t.OnLoadReport("m0", loading, 6);
  EXPECT_FALSE(t.Views(d, 6).views()[0].healthy);
}

TEST(ReplicaTrackerTest, NewTablesKeepStateOfReplicasThatStay) {
  ReplicaTracker t(Options());
  t.SetRoutes(*Table(3));
  ASSERT_TRUE(t.Begin("m0", 5, 0));
  ASSERT_TRUE(t.Begin("m2", 5, 0));
  auto smaller = Table(2);
  t.SetRoutes(*smaller);
  auto snap = t.Views(smaller->deployments()[0], 0);
  EXPECT_EQ(snap.views()[0].outstanding_requests, 1);
  t.End("m2", 5, ReplicaTracker::Outcome::kFailure, 0);  // forgotten: ignored
  EXPECT_FALSE(t.Begin("m2", 5, 0));
  t.End("m0", 5, ReplicaTracker::Outcome::kSuccess, 0);
  EXPECT_EQ(t.Views(smaller->deployments()[0], 0).views()[0].outstanding_requests, 0);
}

}  // namespace
}  // namespace weft::gateway
