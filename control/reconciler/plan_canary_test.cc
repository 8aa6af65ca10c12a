// SPDX-License-Identifier: Apache-2.0
// PlanReconcile's canary rollouts (spec.rollout): canary count, route weights, the hold, the pause
// on a failed canary, and canary_percent 0 rolling as before.
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "control/reconciler/plan.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

constexpr int64_t kHoldMs = 120'000;

// `desired` replicas of "chat" at generation 2 (a new model), rolling with `percent`% canaries.
DesiredDeployment Rolling(int desired, int percent, CanaryState canary = {}) {
  auto spec = ParseDeploymentSpecYaml(
      absl::StrCat("name: chat\nmodel: /m/v2.gguf\nreplicas: {min: ", desired, ", max: ", desired,
                   "}\nrollout: {canary_percent: ", percent, ", canary_hold_s: 120}\n"));
  EXPECT_TRUE(spec.ok()) << spec.status();
  return {.name = "chat",
          .generation = 2,
          .spec = *spec,
          .deleted = false,
          .desired_replicas = desired,
          .canary = std::move(canary)};
}

ProviderState Provider(std::string name) {
  ProviderState s;
  s.view.name = std::move(name);
  s.view.kind = "fake";
  s.view.accelerators = {"cpu"};
  s.view.free_slots = 8;
  s.view.usd_per_hour = 1;
  return s;
}

ReplicaRecord Replica(std::string id, int64_t generation, ReplicaPhase phase = ReplicaPhase::kReady,
                      std::string failure = "") {
  ReplicaRecord r;
  r.id = std::move(id);
  r.deployment = "chat";
  r.provider = "a";
  r.phase = phase;
  r.spec_generation = generation;
  r.failure_reason = std::move(failure);
  r.endpoint = "http://" + r.id;
  return r;
}

// `old` ready replicas of generation 1, then `fresh` of generation 2 in `phase`.
std::vector<ReplicaRecord> Fleet(int old, int fresh, ReplicaPhase phase = ReplicaPhase::kReady) {
  std::vector<ReplicaRecord> out;
  for (int i = 0; i < old; ++i) out.push_back(Replica(absl::StrCat("old", i), 1));
  for (int i = 0; i < fresh; ++i) out.push_back(Replica(absl::StrCat("new", i), 2, phase));
  return out;
}

ReplicaIdGenerator Ids() {
  auto n = std::make_shared<int>(0);
  return [n](const std::string& d) { return absl::StrCat(d, "-n", ++*n); };
}

Plan PlanAt(const DesiredDeployment& d, const std::vector<ReplicaRecord>& replicas,
            int64_t now_ms) {
  return PlanReconcile({d}, replicas, {Provider("a"), Provider("b")}, Ids(), {}, now_ms);
}

CanaryState Next(const Plan& plan) {
  EXPECT_EQ(plan.canary.size(), 1u);
  return plan.canary.empty() ? CanaryState{} : plan.canary[0].second;
}

TEST(PlanCanaryTest, CanaryCountRoundsUpToAtLeastOne) {
  EXPECT_EQ(CanaryCount(10, 10), 1);
  EXPECT_EQ(CanaryCount(10, 11), 2);
  EXPECT_EQ(CanaryCount(3, 10), 1);
  EXPECT_EQ(CanaryCount(3, 50), 2);
  EXPECT_EQ(CanaryCount(1, 1), 1);
  EXPECT_EQ(CanaryCount(4, 100), 4);
  EXPECT_EQ(CanaryCount(7, 30), 3);
  EXPECT_EQ(CanaryCount(0, 50), 0);
  EXPECT_EQ(CanaryCount(5, 0), 0);
}

TEST(PlanCanaryTest, RouteWeightGivesThePercentOfCapacity) {
  for (int p : {1, 10, 25, 50, 90, 99}) {
    for (int c = 1; c <= 4; ++c) {
      for (int o = 1; o <= 12; ++o) {
        const double w = CanaryRouteWeight(p, c, o);
        ASSERT_GT(w, 0);
        EXPECT_NEAR(c * w / (c * w + o), p / 100.0, 1e-9) << p << " " << c << " " << o;
      }
    }
  }
  EXPECT_EQ(CanaryRouteWeight(0, 1, 3), 1.0);
  EXPECT_EQ(CanaryRouteWeight(100, 1, 3), 1.0);
  EXPECT_EQ(CanaryRouteWeight(10, 1, 0), 1.0);
  EXPECT_EQ(CanaryRouteWeight(10, 0, 3), 1.0);
}

TEST(PlanCanaryTest, RouteWeightsOnlyWhileTheStatusShowsACanary) {
  std::vector<ReplicaRecord> rs = Fleet(9, 1);
  rs.push_back(Replica("starting", 2, ReplicaPhase::kStarting));
  auto canary = RouteWeights("chat", 2, 10, "canary: 1/1 ready (10% of traffic); 9 old", rs);
  ASSERT_EQ(canary.size(), 10u) << "ready replicas only";
  EXPECT_NEAR(canary.at("new0"), 1.0, 1e-9);  // 10 x 9 / (90 x 1)
  EXPECT_EQ(canary.at("old3"), 1.0);
  auto paused = RouteWeights("chat", 2, 25, "Pending: x; canary failed: boom; rollout paused", rs);
  EXPECT_NEAR(paused.at("new0"), 3.0, 1e-9);  // 25 x 9 / (75 x 1)
  for (const auto& [id, w] : RouteWeights("chat", 2, 25, "9/10 ready; rolling update: ...", rs)) {
    EXPECT_EQ(w, 1.0) << id;
  }
}

TEST(PlanCanaryTest, StartsWithTheCanariesBesideEveryOldReplica) {
  Plan plan = PlanAt(Rolling(10, 15), Fleet(10, 0), 1000);
  ASSERT_EQ(plan.provision.size(), 2u) << "ceil(10 x 15%) = 2 canaries at once";
  EXPECT_EQ(plan.provision[0].generation, 2);
  EXPECT_TRUE(plan.terminate.empty()) << "old replicas stay during the canary";
  ASSERT_EQ(plan.status.size(), 1u);
  EXPECT_EQ(plan.status[0].second, "canary: 0/2 ready (15% of traffic); 10 old");
  EXPECT_EQ(Next(plan), (CanaryState{.generation = 2}));

  // One up, one starting: no hold yet, nothing more provisioned.
  std::vector<ReplicaRecord> rs = Fleet(10, 1);
  rs.push_back(Replica("new1", 2, ReplicaPhase::kStarting));
  plan = PlanAt(Rolling(10, 15, Next(plan)), rs, 2000);
  EXPECT_TRUE(plan.empty());
  EXPECT_EQ(Next(plan).ready_since_ms, -1);
  EXPECT_EQ(plan.status[0].second, "canary: 1/2 ready (15% of traffic); 10 old");
}

TEST(PlanCanaryTest, HoldsOnceReadyThenRollsOn) {
  CanaryState state{.generation = 2};
  Plan plan = PlanAt(Rolling(4, 25, state), Fleet(4, 1), 5000);
  EXPECT_TRUE(plan.empty()) << "holding: no drain, no surge";
  state = Next(plan);
  EXPECT_EQ(state.ready_since_ms, 5000);
  EXPECT_FALSE(state.done);
  EXPECT_EQ(plan.status[0].second, "canary: 1/1 ready (25% of traffic), holding 120 s; 4 old");

  plan = PlanAt(Rolling(4, 25, state), Fleet(4, 1), 5000 + kHoldMs - 1);
  EXPECT_TRUE(plan.empty());
  EXPECT_EQ(Next(plan), state) << "the status line and state stay put during the hold";

  plan = PlanAt(Rolling(4, 25, state), Fleet(4, 1), 5000 + kHoldMs);
  EXPECT_TRUE(Next(plan).done);
  ASSERT_EQ(plan.terminate.size(), 1u) << "back to the desired count: one old replica drains";
  EXPECT_EQ(plan.terminate[0].reason, "rolling update");
  EXPECT_EQ(plan.terminate[0].replica.substr(0, 3), "old");
  ASSERT_EQ(plan.provision.size(), 1u) << "and the next one surges";
  EXPECT_FALSE(plan.status[0].second.starts_with("canary")) << plan.status[0].second;

  // Rolling on: surge one, drain one, never back to a canary phase.
  std::vector<ReplicaRecord> rs = Fleet(3, 1);
  rs.push_back(Replica("new1", 2, ReplicaPhase::kStarting));
  plan = PlanAt(Rolling(4, 25, Next(plan)), rs, 5000 + kHoldMs + 500);
  EXPECT_TRUE(plan.empty());
  EXPECT_TRUE(Next(plan).done);
  plan = PlanAt(Rolling(4, 25, Next(plan)), Fleet(3, 2), 5000 + kHoldMs + 1000);
  ASSERT_EQ(plan.terminate.size(), 1u);
  EXPECT_EQ(plan.terminate[0].reason, "rolling update");
}

TEST(PlanCanaryTest, ZeroHoldRollsOnAsSoonAsTheCanaryIsReady) {
  DesiredDeployment d = Rolling(4, 25, {.generation = 2});
  d.spec.rollout.canary_hold_s = 0;
  Plan plan = PlanAt(d, Fleet(4, 1), 7000);
  EXPECT_TRUE(Next(plan).done);
  EXPECT_EQ(plan.terminate.size(), 1u);
}

TEST(PlanCanaryTest, AFailedCanaryPausesTheRollout) {
  CanaryState holding{.generation = 2, .ready_since_ms = 5000};
  std::vector<ReplicaRecord> rs = Fleet(4, 0);
  rs.push_back(Replica("new0", 2, ReplicaPhase::kFailed, "engine exited with code 139"));
  Plan plan = PlanAt(Rolling(4, 25, holding), rs, 6000);
  CanaryState paused = Next(plan);
  EXPECT_EQ(paused.failed, "engine exited with code 139");
  EXPECT_FALSE(paused.done);
  ASSERT_EQ(plan.terminate.size(), 1u);
  EXPECT_EQ(plan.terminate[0].replica, "new0");
  ASSERT_EQ(plan.provision.size(), 1u) << "the failed canary is replaced";
  EXPECT_EQ(plan.provision[0].generation, 2);
  EXPECT_EQ(plan.status[0].second,
            "canary failed: engine exited with code 139; rollout paused (0/1 ready, 4 old)");

  // Long past the hold with a ready replacement: still paused, old replicas untouched.
  plan = PlanAt(Rolling(4, 25, paused), Fleet(4, 1), 6000 + 10 * kHoldMs);
  EXPECT_TRUE(plan.empty());
  EXPECT_EQ(Next(plan).failed, paused.failed);
  EXPECT_FALSE(Next(plan).done);
  EXPECT_TRUE(plan.status[0].second.starts_with("canary failed: engine exited"))
      << plan.status[0].second;
}

TEST(PlanCanaryTest, ACanaryFailingWhileStartingIsReplacedWithoutPausing) {
  std::vector<ReplicaRecord> rs = Fleet(4, 0);
  rs.push_back(Replica("new0", 2, ReplicaPhase::kFailed, "provision: no capacity"));
  Plan plan = PlanAt(Rolling(4, 25, {.generation = 2}), rs, 6000);
  EXPECT_TRUE(Next(plan).failed.empty());
  EXPECT_EQ(plan.provision.size(), 1u);
}

TEST(PlanCanaryTest, ARestartedControllerPicksUpWhereTheReplicasAre) {
  // No state, more new replicas than the canary: past the canary, rolling on.
  Plan plan = PlanAt(Rolling(4, 25), Fleet(2, 2), 1000);
  EXPECT_TRUE(Next(plan).done);
  EXPECT_EQ(plan.terminate.size(), 0u);
  EXPECT_EQ(plan.provision.size(), 1u) << "surge the next";
  // No state, the canary up: hold (again) from now.
  plan = PlanAt(Rolling(4, 25), Fleet(4, 1), 1000);
  EXPECT_EQ(Next(plan), (CanaryState{.generation = 2, .ready_since_ms = 1000}));
  EXPECT_TRUE(plan.empty());
}

TEST(PlanCanaryTest, ScaleChangesDuringTheCanaryKeepCapacityAndTheCount) {
  CanaryState holding{.generation = 2, .ready_since_ms = 5000};
  // The autoscaler went 4 -> 2: the extra old replicas drain, the canary stays.
  Plan plan = PlanAt(Rolling(2, 25, holding), Fleet(4, 1), 6000);
  EXPECT_EQ(plan.terminate.size(), 2u);
  for (const TerminateAction& t : plan.terminate) EXPECT_EQ(t.replica.substr(0, 3), "old");
  EXPECT_TRUE(plan.provision.empty());
  // Two old replicas died: new ones stand in so that 4 are live.
  plan = PlanAt(Rolling(4, 25, holding), Fleet(2, 1), 6000);
  EXPECT_EQ(plan.provision.size(), 1u);
  EXPECT_TRUE(plan.terminate.empty());
}

TEST(PlanCanaryTest, ZeroPercentRollsAsBefore) {
  for (int percent : {0, 25}) {
    DesiredDeployment d = Rolling(4, percent, {.generation = 2});
    Plan plan = PlanAt(d, Fleet(4, 1), 1000);
    if (percent == 0) {
      EXPECT_TRUE(plan.canary.empty());
      ASSERT_EQ(plan.terminate.size(), 1u) << "the new replica is ready: drain one old";
      EXPECT_EQ(plan.terminate[0].reason, "rolling update");
      EXPECT_EQ(plan.provision.size(), 1u);
      EXPECT_EQ(plan.status[0].second, "5/4 ready; rolling update: 1 new ready, 3 old left");
    } else {
      EXPECT_TRUE(plan.terminate.empty()) << "holding";
    }
  }
  // Percent 0 from the start: one surge, as any rolling update.
  Plan plan = PlanAt(Rolling(10, 0), Fleet(10, 0), 1000);
  EXPECT_EQ(plan.provision.size(), 1u);
  EXPECT_TRUE(plan.canary.empty());
}

// Seeded property check: whatever the fleet and the time, a plan in a canary phase never drains a
// ready old replica while at most `desired` old ones run, never runs more new replicas than needed,
// and its status line names the phase.
TEST(PlanCanaryTest, SeededCanaryPhaseProperties) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&](int n) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return static_cast<int>(x % static_cast<uint64_t>(n));
  };
  for (int iter = 0; iter < 3000; ++iter) {
    const int desired = 1 + next(12);
    const int percent = 1 + next(100);
    std::vector<ReplicaRecord> rs;
    const int old = 1 + next(desired + 2);
    for (int i = 0; i < old; ++i) rs.push_back(Replica(absl::StrCat("old", i), 1));
    const int n = CanaryCount(desired, percent);
    const int fresh = next(n + 1);
    for (int i = 0; i < fresh; ++i) {
      const ReplicaPhase phases[] = {ReplicaPhase::kReady, ReplicaPhase::kStarting,
                                     ReplicaPhase::kFailed};
      rs.push_back(Replica(absl::StrCat("new", i), 2, phases[next(3)], "boom"));
    }
    CanaryState st{.generation = 2, .ready_since_ms = next(2) ? -1 : next(1000) * 1000};
    const int64_t now = 1'000'000 + next(300) * 1000;
    Plan plan = PlanAt(Rolling(desired, percent, st), rs, now);
    const CanaryState got = Next(plan);
    if (got.done) {
      EXPECT_GE(now - got.ready_since_ms, kHoldMs);
      EXPECT_TRUE(got.failed.empty());
      continue;
    }
    ASSERT_EQ(plan.status.size(), 1u);
    EXPECT_TRUE(plan.status[0].second.starts_with("canary")) << plan.status[0].second;
    for (const TerminateAction& t : plan.terminate) {
      if (t.replica.starts_with("old")) {
        EXPECT_GT(old, desired) << t.reason;
      }
    }
    int live_new = static_cast<int>(plan.provision.size());
    for (const ReplicaRecord& r : rs) live_new += r.spec_generation == 2 && IsLive(r.phase) ? 1 : 0;
    EXPECT_LE(live_new, std::max(n, desired - std::min(old, desired)));
  }
}

}  // namespace
}  // namespace weft::control
