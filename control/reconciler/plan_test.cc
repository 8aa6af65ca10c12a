// SPDX-License-Identifier: Apache-2.0
#include "control/reconciler/plan.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

DeploymentSpec Spec(int min, int max) {
  auto spec = ParseDeploymentSpecYaml(absl::StrCat(
      "name: chat\nmodel: /m/model.gguf\nreplicas: {min: ", min, ", max: ", max, "}\n"));
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

DesiredDeployment Want(int n, int64_t generation = 1) {
  return {.name = "chat",
          .generation = generation,
          .spec = Spec(std::min(n, 3), std::max(n, 3)),
          .deleted = false,
          .desired_replicas = n};
}

ProviderState Provider(std::string name, int free = 4, bool healthy = true) {
  ProviderState s;
  s.view.name = std::move(name);
  s.view.kind = "fake";
  s.view.accelerators = {"cpu"};
  s.view.free_slots = free;
  s.view.usd_per_hour = 1;
  s.healthy = healthy;
  if (!healthy) s.reason = "outage";
  return s;
}

ReplicaRecord Replica(std::string id, std::string provider, ReplicaPhase phase,
                      int64_t generation = 1, int64_t created_ms = 0) {
  ReplicaRecord r;
  r.id = std::move(id);
  r.deployment = "chat";
  r.provider = std::move(provider);
  r.phase = phase;
  r.spec_generation = generation;
  r.created_ms = created_ms;
  return r;
}

ReplicaIdGenerator Ids() {
  auto n = std::make_shared<int>(0);
  return [n](const std::string& d) { return absl::StrCat(d, "-n", ++*n); };
}

std::map<std::string, int> CountByProvider(const Plan& plan) {
  std::map<std::string, int> out;
  for (const ProvisionAction& a : plan.provision) out[a.provider]++;
  return out;
}

TEST(PlanReconcileTest, ScalesFromNothingAcrossProviders) {
  Plan plan = PlanReconcile({Want(3)}, {}, {Provider("a"), Provider("b")}, Ids());
  ASSERT_EQ(plan.provision.size(), 3u);
  auto counts = CountByProvider(plan);
  EXPECT_EQ(counts.size(), 2u) << "spread over both providers";
  EXPECT_EQ(plan.provision[0].replica, "chat-n1");
  EXPECT_EQ(plan.provision[0].generation, 1);
  EXPECT_TRUE(plan.terminate.empty());
}

TEST(PlanReconcileTest, SteadyStateDoesNothing) {
  Plan plan = PlanReconcile(
      {Want(2)},
      {Replica("r1", "a", ReplicaPhase::kReady), Replica("r2", "b", ReplicaPhase::kStarting)},
      {Provider("a"), Provider("b")}, Ids());
  EXPECT_TRUE(plan.empty());
  ASSERT_EQ(plan.status.size(), 1u);
  EXPECT_EQ(plan.status[0].second, "1/2 ready");
}

TEST(PlanReconcileTest, ReplacesAFailedReplica) {
  ReplicaRecord failed = Replica("r2", "b", ReplicaPhase::kFailed);
  failed.failure_reason = "exited with status 9";
  Plan plan = PlanReconcile({Want(2)}, {Replica("r1", "a", ReplicaPhase::kReady), failed},
                            {Provider("a"), Provider("b")}, Ids());
  ASSERT_EQ(plan.terminate.size(), 1u);
  EXPECT_EQ(plan.terminate[0].replica, "r2");
  EXPECT_EQ(plan.terminate[0].reason, "failed: exited with status 9");
  ASSERT_EQ(plan.provision.size(), 1u);
  EXPECT_EQ(plan.provision[0].provider, "b") << "spread: a already has one";
}

TEST(PlanReconcileTest, UnhealthyProviderIsDegradedAndAvoided) {
  Plan plan = PlanReconcile(
      {Want(3)},
      {Replica("r1", "a", ReplicaPhase::kReady), Replica("r2", "b", ReplicaPhase::kFailed),
       Replica("r3", "b", ReplicaPhase::kFailed)},
      {Provider("a"), Provider("b", 4, /*healthy=*/false)}, Ids());
  ASSERT_EQ(plan.degrade.size(), 1u);
  EXPECT_EQ(plan.degrade[0].provider, "b");
  EXPECT_TRUE(plan.degrade[0].degraded);
  EXPECT_EQ(plan.degrade[0].reason, "outage");
  EXPECT_EQ(plan.terminate.size(), 2u);
  auto counts = CountByProvider(plan);
  EXPECT_EQ(counts["a"], 2);
  EXPECT_EQ(counts["b"], 0);
}

TEST(PlanReconcileTest, RecentFailuresDegradeAndRecoveryClears) {
  ProviderState flaky = Provider("b");
  flaky.recent_failures = 3;
  Plan plan = PlanReconcile({}, {}, {Provider("a"), flaky}, Ids());
  ASSERT_EQ(plan.degrade.size(), 1u);
  EXPECT_TRUE(plan.degrade[0].degraded);

  ProviderState recovered = Provider("b");
  recovered.view.degraded = true;
  plan = PlanReconcile({}, {}, {recovered}, Ids());
  ASSERT_EQ(plan.degrade.size(), 1u);
  EXPECT_FALSE(plan.degrade[0].degraded);
}

TEST(PlanReconcileTest, ScaleDownDrainsNotReadyThenNewest) {
  Plan plan = PlanReconcile({Want(1)},
                            {Replica("r1", "a", ReplicaPhase::kReady, 1, 100),
                             Replica("r2", "b", ReplicaPhase::kReady, 1, 300),
                             Replica("r3", "a", ReplicaPhase::kStarting, 1, 200)},
                            {Provider("a"), Provider("b")}, Ids());
  ASSERT_EQ(plan.terminate.size(), 2u);
  EXPECT_EQ(plan.terminate[0].replica, "r3");
  EXPECT_EQ(plan.terminate[1].replica, "r2");
  EXPECT_EQ(plan.terminate[0].reason, "scale down 3 -> 1");
  EXPECT_TRUE(plan.provision.empty());
}

TEST(PlanReconcileTest, RollingUpdateSurgesOneThenDrainsOne) {
  const std::vector<ProviderState> providers = {Provider("a"), Provider("b")};
  std::vector<ReplicaRecord> rs = {Replica("o1", "a", ReplicaPhase::kReady, 1, 1),
                                   Replica("o2", "b", ReplicaPhase::kReady, 1, 2)};
  // Generation 2: one new replica, nothing drained yet.
  Plan plan = PlanReconcile({Want(2, 2)}, rs, providers, Ids());
  ASSERT_EQ(plan.provision.size(), 1u);
  EXPECT_EQ(plan.provision[0].generation, 2);
  EXPECT_TRUE(plan.terminate.empty());
  // While the new one starts: wait.
  rs.push_back(Replica("n1", "a", ReplicaPhase::kStarting, 2, 3));
  plan = PlanReconcile({Want(2, 2)}, rs, providers, Ids());
  EXPECT_TRUE(plan.empty());
  // Ready: drain the oldest old one and surge the next.
  rs.back().phase = ReplicaPhase::kReady;
  plan = PlanReconcile({Want(2, 2)}, rs, providers, Ids());
  ASSERT_EQ(plan.terminate.size(), 1u);
  EXPECT_EQ(plan.terminate[0].replica, "o1");
  EXPECT_EQ(plan.terminate[0].reason, "rolling update");
  ASSERT_EQ(plan.provision.size(), 1u);
  // Last step: the second new one is ready; the last old one goes, nothing more is added.
  rs = {Replica("o2", "b", ReplicaPhase::kReady, 1, 2),
        Replica("n1", "a", ReplicaPhase::kReady, 2, 3),
        Replica("n2", "b", ReplicaPhase::kReady, 2, 4)};
  plan = PlanReconcile({Want(2, 2)}, rs, providers, Ids());
  ASSERT_EQ(plan.terminate.size(), 1u);
  EXPECT_EQ(plan.terminate[0].replica, "o2");
  EXPECT_TRUE(plan.provision.empty());
}

TEST(PlanReconcileTest, DeletedDeploymentDrainsThenIsRemoved) {
  DesiredDeployment d = Want(2);
  d.deleted = true;
  Plan plan = PlanReconcile(
      {d}, {Replica("r1", "a", ReplicaPhase::kReady), Replica("r2", "b", ReplicaPhase::kDraining)},
      {Provider("a"), Provider("b")}, Ids());
  ASSERT_EQ(plan.terminate.size(), 1u);
  EXPECT_EQ(plan.terminate[0].reason, "deployment deleted");
  EXPECT_TRUE(plan.remove_deployments.empty());
  EXPECT_TRUE(plan.provision.empty());

  plan = PlanReconcile({d}, {Replica("r2", "b", ReplicaPhase::kGone)}, {Provider("a")}, Ids());
  EXPECT_EQ(plan.forget, std::vector<ReplicaId>{"r2"});
  EXPECT_EQ(plan.remove_deployments, std::vector<std::string>{"chat"});
}

TEST(PlanReconcileTest, ReplicasOfUndeclaredDeploymentsAreTerminated) {
  Plan plan = PlanReconcile({}, {Replica("r1", "a", ReplicaPhase::kReady)}, {Provider("a")}, Ids());
  ASSERT_EQ(plan.terminate.size(), 1u);
  EXPECT_EQ(plan.terminate[0].reason, "deployment not declared");
}

TEST(PlanReconcileTest, NoCapacitySaysWhy) {
  Plan plan = PlanReconcile({Want(3)}, {}, {Provider("a", 1)}, Ids());
  EXPECT_EQ(plan.provision.size(), 1u);
  ASSERT_EQ(plan.status.size(), 1u);
  EXPECT_NE(plan.status[0].second.find("unplaced 2"), std::string::npos) << plan.status[0].second;
}

TEST(PlanReconcileTest, SlotsAreSharedAcrossDeployments) {
  DesiredDeployment other = Want(2);
  other.name = "other";
  other.spec.name = "other";
  Plan plan = PlanReconcile({Want(2), other}, {}, {Provider("a", 3)}, Ids());
  EXPECT_EQ(plan.provision.size(), 3u);
}

}  // namespace
}  // namespace weft::control
