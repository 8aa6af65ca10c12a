// SPDX-License-Identifier: Apache-2.0
#include "control/providers/fake/fake_provider.h"

#include <atomic>
#include <memory>

#include "control/providers/provider_conformance.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

ReplicaSpec Spec(const std::string& id) {
  ReplicaSpec s;
  s.id = id;
  s.deployment = "demo";
  s.model_path = "/models/m.gguf";
  return s;
}

// The fake on a manual clock that each poll of the suite advances by 100 ms, with a 500 ms
// provisioning delay and a 300 ms termination delay: the asynchronous phases are exercised.
absl::StatusOr<ConformanceSubject> MakeFakeSubject() {
  auto clock = std::make_shared<std::atomic<int64_t>>(1'700'000'000'000);
  FakeProviderOptions o;
  o.slots = 3;
  o.provision_delay_ms = 500;
  o.terminate_delay_ms = 300;
  o.now_ms = [clock] { return clock->load(); };
  auto fake = std::make_unique<FakeProvider>(o);
  FakeProvider* raw = fake.get();
  ConformanceSubject s;
  s.provider = std::move(fake);
  s.spec = Spec("");
  s.slots = 3;
  s.kill = [raw](const ReplicaId& id) { return raw->FailReplica(id, "killed by the test"); };
  s.tick = [clock] { *clock += 100; };
  s.timeout_s = 10;
  return s;
}

// The fake with no delays at all (phases settle inside Provision / Terminate).
absl::StatusOr<ConformanceSubject> MakeInstantFakeSubject() {
  FakeProviderOptions o;
  o.slots = 2;
  auto fake = std::make_unique<FakeProvider>(o);
  FakeProvider* raw = fake.get();
  ConformanceSubject s;
  s.provider = std::move(fake);
  s.spec = Spec("");
  s.slots = 2;
  s.kill = [raw](const ReplicaId& id) { return raw->FailReplica(id, "killed by the test"); };
  s.timeout_s = 5;
  return s;
}

INSTANTIATE_TEST_SUITE_P(Fake, ProviderConformanceTest,
                         ::testing::Values(ProviderConformanceCase{"delayed", &MakeFakeSubject},
                                           ProviderConformanceCase{"instant",
                                                                   &MakeInstantFakeSubject}),
                         ConformanceCaseName);

class FakeProviderTest : public ::testing::Test {
 protected:
  FakeProviderOptions Options() {
    FakeProviderOptions o;
    o.now_ms = [this] { return now_; };
    return o;
  }
  std::optional<ReplicaStatus> Find(FakeProvider& p, const ReplicaId& id) {
    auto list = p.List();
    EXPECT_TRUE(list.ok());
    if (!list.ok()) return std::nullopt;
    for (const ReplicaStatus& s : *list) {
      if (s.id == id) return s;
    }
    return std::nullopt;
  }
  int64_t now_ = 1000;
};

TEST_F(FakeProviderTest, BecomesReadyAfterTheDelayOnItsClock) {
  FakeProviderOptions o = Options();
  o.provision_delay_ms = 2000;
  FakeProvider p(o);
  auto s = p.Provision(Spec("r1"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->phase, ReplicaPhase::kStarting);
  EXPECT_EQ(s->started_ms, 1000);
  now_ = 2999;
  EXPECT_EQ(Find(p, "r1")->phase, ReplicaPhase::kStarting);
  now_ = 3000;
  EXPECT_EQ(Find(p, "r1")->phase, ReplicaPhase::kReady);
}

TEST_F(FakeProviderTest, DrainsForTheTerminateDelayHoldingItsSlot) {
  FakeProviderOptions o = Options();
  o.slots = 1;
  o.terminate_delay_ms = 500;
  FakeProvider p(o);
  ASSERT_TRUE(p.Provision(Spec("r1")).ok());
  ASSERT_TRUE(p.Terminate("r1").ok());
  EXPECT_EQ(Find(p, "r1")->phase, ReplicaPhase::kDraining);
  EXPECT_EQ(p.Provision(Spec("r2")).status().code(), absl::StatusCode::kResourceExhausted);
  now_ += 500;
  EXPECT_FALSE(Find(p, "r1").has_value());
  EXPECT_TRUE(p.Provision(Spec("r2")).ok());
}

TEST_F(FakeProviderTest, CapacityReportsPriceRegionAndKind) {
  FakeProviderOptions o = Options();
  o.accelerator = "h100";
  o.slots = 8;
  o.usd_per_hour = 2.5;
  o.region = "eu-west";
  FakeProvider p(o);
  ReplicaSpec s = Spec("r1");
  s.accelerator = "h100";
  s.accelerator_count = 3;
  ASSERT_TRUE(p.Provision(s).ok());
  auto c = p.Capacity();
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->accelerators.size(), 1u);
  EXPECT_EQ(c->accelerators[0], (AcceleratorSlots{"h100", 8, 5, 2.5}));
  EXPECT_EQ(c->regions, std::vector<std::string>{"eu-west"});
  EXPECT_EQ(c->Find("cpu"), nullptr);
}

TEST_F(FakeProviderTest, SeededFailureRateIsReproducibleAndNearTheRate) {
  auto run = [this](uint64_t seed) {
    FakeProviderOptions o = Options();
    o.slots = 1000;
    o.failure_rate = 0.3;
    o.seed = seed;
    FakeProvider p(o);
    std::vector<bool> failed;
    for (int i = 0; i < 1000; ++i) {
      auto s = p.Provision(Spec("r" + std::to_string(i)));
      EXPECT_TRUE(s.ok());
      failed.push_back(s->phase == ReplicaPhase::kFailed);
      if (s->phase == ReplicaPhase::kFailed) {
        EXPECT_FALSE(s->failure_reason.empty());
      }
    }
    return failed;
  };
  const std::vector<bool> a = run(7);
  EXPECT_EQ(a, run(7));
  EXPECT_NE(a, run(8));
  const auto n = std::count(a.begin(), a.end(), true);
  EXPECT_GT(n, 240);  // 300 expected; sd ~ 14.5
  EXPECT_LT(n, 360);
}

TEST_F(FakeProviderTest, OutageFailsEverythingUntilItEnds) {
  FakeProvider p(Options());
  ASSERT_TRUE(p.Provision(Spec("r1")).ok());
  ASSERT_TRUE(p.Provision(Spec("r2")).ok());
  ASSERT_TRUE(p.Terminate("r2").ok());
  p.SetOutage(true, "region on fire");
  EXPECT_FALSE(p.Health().ok);
  EXPECT_EQ(p.Health().reason, "region on fire");
  EXPECT_EQ(p.Provision(Spec("r3")).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(p.List().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(p.Capacity().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(p.Terminate("r1").code(), absl::StatusCode::kUnavailable);
  p.SetOutage(false);
  EXPECT_TRUE(p.Health().ok);
  auto r1 = Find(p, "r1");
  ASSERT_TRUE(r1.has_value());
  EXPECT_EQ(r1->phase, ReplicaPhase::kFailed);
  EXPECT_EQ(r1->failure_reason, "region on fire");
  EXPECT_TRUE(p.Terminate("r1").ok());
  EXPECT_FALSE(Find(p, "r1").has_value());
  EXPECT_TRUE(p.Provision(Spec("r3")).ok());
}

TEST_F(FakeProviderTest, FailReplicaNamesUnknownIds) {
  FakeProvider p(Options());
  EXPECT_EQ(p.FailReplica("nope", "x").code(), absl::StatusCode::kNotFound);
}

TEST_F(FakeProviderTest, CustomEndpoints) {
  FakeProviderOptions o = Options();
  o.endpoint = [](const ReplicaSpec& s) { return "http://" + s.id + ".test:80"; };
  FakeProvider p(o);
  EXPECT_EQ(p.Provision(Spec("r1"))->endpoint, "http://r1.test:80");
  EXPECT_EQ(p.provisions(), 1);
}

}  // namespace
}  // namespace weft::control
