// SPDX-License-Identifier: Apache-2.0
// The control loop against FakeProviders on a simulated clock: deploy, a provider outage,
// autoscaling up and down, a rolling update, an in-place spec change, delete; and convergence under
// seeded random provisioning failures.
#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "control/providers/fake/fake_provider.h"
#include "control/reconciler/controller.h"
#include "control/store/memory_control_store.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

std::string SpecYaml(const std::string& model, int min, int max) {
  return absl::StrCat("name: chat\nmodel: ", model, "\nreplicas: {min: ", min, ", max: ", max,
                      "}\nautoscaling: {target_concurrency: 4, scale_down_delay_s: 5, "
                      "evaluation_period_s: 1}\n");
}

class Sim {
 public:
  explicit Sim(double failure_rate = 0, uint64_t seed = 1) {
    store_ = std::make_unique<MemoryControlStore>();
    for (const char* name : {"a", "b"}) {
      FakeProviderOptions o;
      o.slots = 4;
      o.provision_delay_ms = 1000;
      o.failure_rate = failure_rate;
      o.seed = seed + (name[0] == 'b' ? 100 : 0);
      o.now_ms = [this] { return now_.load(); };
      o.usd_per_hour = name[0] == 'a' ? 1.0 : 1.5;
      providers_[name[0] - 'a'] = std::make_unique<FakeProvider>(o);
    }
    ControllerOptions co;
    co.now_ms = [this] { return now_.load(); };
    co.fetch_load = [this](const std::string&) {
      api::LoadReport l;
      l.ready = true;
      l.running = load_per_replica_.load();
      return std::optional<api::LoadReport>(l);
    };
    co.new_id = [this](const std::string& d) { return absl::StrCat(d, "-", ++next_id_); };
    controller_ =
        std::make_unique<Controller>(store_.get(),
                                     std::vector<ProviderEntry>{{"a", "fake", providers_[0].get()},
                                                                {"b", "fake", providers_[1].get()}},
                                     co);
    EXPECT_TRUE(controller_->Init().ok());
  }

  void Deploy(const std::string& yaml) {
    DeploymentRecord d;
    if (auto existing = store_->Get<DeploymentRecord>("chat");
        existing.ok() && existing->has_value()) {
      d = **existing;
    }
    d.name = "chat";
    d.spec = yaml;
    d.version = kAnyVersion;
    ASSERT_TRUE(store_->Put<DeploymentRecord>(d).ok());
  }

  // One tick, 500 ms of simulated time later.
  void Tick() {
    now_ += 500;
    absl::StatusOr<Plan> plan = controller_->Tick();
    ASSERT_TRUE(plan.ok()) << plan.status();
  }

  std::vector<ReplicaRecord> Replicas() {
    auto rs = store_->List<ReplicaRecord>();
    EXPECT_TRUE(rs.ok());
    return rs.ok() ? *rs : std::vector<ReplicaRecord>{};
  }
  int Ready(const std::string& provider = "", int64_t generation = 0) {
    int n = 0;
    for (const ReplicaRecord& r : Replicas()) {
      if (r.phase == ReplicaPhase::kReady && (provider.empty() || r.provider == provider) &&
          (generation == 0 || r.spec_generation == generation)) {
        n++;
      }
    }
    return n;
  }
  int Live() {
    int n = 0;
    for (const ReplicaRecord& r : Replicas()) n += IsLive(r.phase) ? 1 : 0;
    return n;
  }
  // Ticks until `done` holds (at most `max_ticks`); returns the ticks taken, or -1.
  template <typename F>
  int TickUntil(F done, int max_ticks) {
    for (int i = 1; i <= max_ticks; ++i) {
      Tick();
      if (done()) return i;
    }
    return -1;
  }
  ProviderRecord ProviderRec(const std::string& name) {
    auto p = store_->Get<ProviderRecord>(name);
    EXPECT_TRUE(p.ok() && p->has_value());
    return p.ok() && p->has_value() ? **p : ProviderRecord{};
  }

  std::unique_ptr<MemoryControlStore> store_;
  std::unique_ptr<FakeProvider> providers_[2];
  std::unique_ptr<Controller> controller_;
  std::atomic<int64_t> now_{1'000'000};
  std::atomic<int> load_per_replica_{0};
  int next_id_ = 0;
};

TEST(ControllerSimulationTest, DeployOutageScaleRollDelete) {
  Sim sim;
  sim.Deploy(SpecYaml("/m/v1.gguf", 3, 6));
  ASSERT_GT(sim.TickUntil([&] { return sim.Ready() == 3; }, 10), 0);
  EXPECT_GT(sim.Ready("a"), 0);
  EXPECT_GT(sim.Ready("b"), 0) << "spread over both providers";
  auto d = sim.store_->Get<DeploymentRecord>("chat");
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->status, "3/3 ready");

  // Provider b goes down entirely: its replicas are replaced on a within a few ticks.
  sim.providers_[1]->SetOutage(true, "zone on fire");
  ASSERT_GT(sim.TickUntil([&] { return sim.Ready("a") == 3; }, 6), 0);
  EXPECT_TRUE(sim.ProviderRec("b").degraded);
  EXPECT_GT(sim.ProviderRec("b").failures, 0);
  EXPECT_GT(sim.ProviderRec("a").successes, 0);
  auto events = sim.store_->ListEvents({.object = "provider/b", .after_id = 0, .limit = 10});
  ASSERT_TRUE(events.ok());
  ASSERT_FALSE(events->empty());
  EXPECT_NE(events->front().message.find("zone on fire"), std::string::npos);

  // b comes back: the failed replicas there are cleaned up and the flag clears.
  sim.providers_[1]->SetOutage(false);
  ASSERT_GT(sim.TickUntil(
                [&] { return !sim.ProviderRec("b").degraded && sim.Replicas().size() == 3u; }, 10),
            0);

  // Load: 8 per replica over 3 -> 24 / target 4 = 6 replicas.
  sim.load_per_replica_ = 8;
  ASSERT_GT(sim.TickUntil([&] { return sim.Ready() == 6; }, 10), 0);
  // Idle: back to min after the 5 s scale-down delay, not before.
  sim.load_per_replica_ = 0;
  sim.Tick();
  sim.Tick();
  EXPECT_EQ(sim.Live(), 6) << "held during the scale-down delay";
  ASSERT_GT(sim.TickUntil([&] { return sim.Live() == 3; }, 20), 0);

  // Rolling update: never fewer than 3 ready, ends with 3 ready replicas of generation 2... or
  // later; each step surges one.
  ASSERT_GT(sim.TickUntil([&] { return sim.Replicas().size() == 3u; }, 10), 0);
  sim.Deploy(SpecYaml("/m/v2.gguf", 3, 6));
  auto gen = sim.store_->Get<DeploymentRecord>("chat");
  ASSERT_TRUE(gen.ok() && gen->has_value());
  const int64_t g2 = (*gen)->generation;
  int min_ready = 99, max_live = 0;
  ASSERT_GT(sim.TickUntil(
                [&] {
                  min_ready = std::min(min_ready, sim.Ready());
                  max_live = std::max(max_live, sim.Live());
                  return sim.Ready("", g2) == 3 && sim.Live() == 3;
                },
                40),
            0);
  EXPECT_GE(min_ready, 3);
  EXPECT_LE(max_live, 4) << "surge of one";

  // A spec change that needs no new replicas (replicas.max): relabelled in place.
  const int64_t provisions = sim.providers_[0]->provisions() + sim.providers_[1]->provisions();
  sim.Deploy(SpecYaml("/m/v2.gguf", 3, 5));
  for (int i = 0; i < 6; ++i) sim.Tick();
  EXPECT_EQ(sim.providers_[0]->provisions() + sim.providers_[1]->provisions(), provisions);
  EXPECT_EQ(sim.Ready(), 3);

  // Delete: drained, then the deployment record is removed.
  auto rec = sim.store_->Get<DeploymentRecord>("chat");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  DeploymentRecord del = **rec;
  del.deleted = true;
  ASSERT_TRUE(sim.store_->Put<DeploymentRecord>(del).ok());
  ASSERT_GT(sim.TickUntil(
                [&] {
                  auto r = sim.store_->Get<DeploymentRecord>("chat");
                  return r.ok() && !r->has_value() && sim.Replicas().empty();
                },
                10),
            0);
  auto a = sim.providers_[0]->List();
  auto b = sim.providers_[1]->List();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->empty());
  EXPECT_TRUE(b->empty());
}

std::string CanarySpecYaml(const std::string& model, int hold_s) {
  return absl::StrCat("name: chat\nmodel: ", model,
                      "\nreplicas: 4\nrollout: {canary_percent: 25, canary_hold_s: ", hold_s,
                      "}\n");
}

std::string Status(Sim& sim) {
  auto d = sim.store_->Get<DeploymentRecord>("chat");
  return d.ok() && d->has_value() ? (*d)->status : std::string();
}

bool HasEvent(Sim& sim, const std::string& text) {
  auto events = sim.store_->ListEvents({.object = "deployment/chat", .after_id = 0, .limit = 1000});
  if (!events.ok()) return false;
  for (const EventRecord& e : *events) {
    if (e.message.find(text) != std::string::npos) return true;
  }
  return false;
}

int64_t Generation(Sim& sim) {
  auto d = sim.store_->Get<DeploymentRecord>("chat");
  return d.ok() && d->has_value() ? (*d)->generation : 0;
}

TEST(ControllerSimulationTest, CanaryHoldsThenRollsAndPausesWhenTheCanaryFails) {
  Sim sim;
  sim.Deploy(CanarySpecYaml("/m/v1.gguf", 10));
  ASSERT_GT(sim.TickUntil([&] { return sim.Ready() == 4; }, 10), 0);
  const int64_t g1 = Generation(sim);

  // v2: one canary (ceil(4 x 25%)) beside the 4 old replicas, with 25% of the route capacity.
  sim.Deploy(CanarySpecYaml("/m/v2.gguf", 10));
  const int64_t g2 = Generation(sim);
  // The tick that sees the canary ready plans with it: the hold starts then.
  ASSERT_GT(sim.TickUntil([&] { return sim.Ready("", g2) == 1; }, 10), 0);
  EXPECT_EQ(sim.Ready("", g1), 4);
  EXPECT_EQ(sim.Live(), 5);
  EXPECT_EQ(Status(sim), "canary: 1/1 ready (25% of traffic), holding 10 s; 4 old");
  EXPECT_TRUE(HasEvent(sim, "canary ready; holding 10 s"));
  auto weights = RouteWeights("chat", g2, 25, Status(sim), sim.Replicas());
  double canary_weight = 0, total_weight = 0;
  for (const ReplicaRecord& r : sim.Replicas()) {
    if (!weights.count(r.id)) continue;
    total_weight += weights[r.id];
    if (r.spec_generation == g2) canary_weight += weights[r.id];
  }
  EXPECT_NEAR(canary_weight / total_weight, 0.25, 1e-9);

  // The hold: 10 s (20 ticks) with every old replica kept.
  for (int i = 0; i < 19; ++i) {
    sim.Tick();
    ASSERT_EQ(sim.Ready("", g1), 4) << "tick " << i;
    ASSERT_EQ(sim.Live(), 5) << "tick " << i;
  }
  // Then surge one, drain one to the end.
  int max_live = 0, min_ready = 99;
  ASSERT_GT(sim.TickUntil(
                [&] {
                  max_live = std::max(max_live, sim.Live());
                  min_ready = std::min(min_ready, sim.Ready());
                  return sim.Ready("", g2) == 4 && sim.Live() == 4;
                },
                60),
            0);
  EXPECT_LE(max_live, 5);
  EXPECT_GE(min_ready, 4);
  EXPECT_TRUE(HasEvent(sim, "canary passed; rolling on"));
  sim.Tick();
  EXPECT_EQ(Status(sim), "4/4 ready");

  // v3 with a canary that dies during the hold: replaced, and the rollout pauses.
  sim.Deploy(CanarySpecYaml("/m/v3.gguf", 60));
  const int64_t g3 = Generation(sim);
  ASSERT_GT(sim.TickUntil([&] { return sim.Ready("", g3) == 1; }, 10), 0);
  sim.Tick();
  ASSERT_TRUE(Status(sim).starts_with("canary: 1/1 ready")) << Status(sim);
  for (const ReplicaRecord& r : sim.Replicas()) {
    if (r.spec_generation != g3 || r.phase != ReplicaPhase::kReady) continue;
    ASSERT_TRUE(sim.providers_[r.provider[0] - 'a']->FailReplica(r.id, "segfault").ok());
  }
  sim.Tick();
  EXPECT_TRUE(Status(sim).starts_with("canary failed: segfault; rollout paused")) << Status(sim);
  EXPECT_TRUE(HasEvent(sim, "canary failed: segfault"));
  for (int i = 0; i < 300; ++i) sim.Tick();  // 150 s, long past the 60 s hold
  EXPECT_EQ(sim.Ready("", g2), 4) << "paused: the old generation stays";
  EXPECT_EQ(sim.Ready("", g3), 1) << "the failed canary was replaced, and no more";
  EXPECT_TRUE(Status(sim).starts_with("canary failed: segfault")) << Status(sim);

  // A new spec (the fix) clears the pause and rolls with a fresh canary.
  sim.Deploy(CanarySpecYaml("/m/v4.gguf", 1));
  const int64_t g4 = Generation(sim);
  ASSERT_GT(sim.TickUntil([&] { return sim.Ready("", g4) == 4 && sim.Live() == 4; }, 80), 0);
}

TEST(ControllerSimulationTest, ConvergesDespiteRandomProvisioningFailures) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    Sim sim(/*failure_rate=*/0.3, seed);
    sim.Deploy(SpecYaml("/m/v1.gguf", 4, 6));
    EXPECT_GT(sim.TickUntil([&] { return sim.Ready() == 4 && sim.Live() == 4; }, 60), 0)
        << "seed " << seed;
  }
}

TEST(ControllerSimulationTest, RunsOnItsOwnThread) {
  Sim sim;
  sim.Deploy(SpecYaml("/m/v1.gguf", 1, 1));
  // The background loop with the real clock; the fake providers follow the simulated clock, which
  // the test advances.
  sim.controller_->Start();
  for (int i = 0; i < 200 && sim.Ready() < 1; ++i) {
    sim.now_ += 100;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  sim.controller_->Stop();
  EXPECT_EQ(sim.Ready(), 1);
  EXPECT_GT(sim.controller_->ticks(), 0);
}

}  // namespace
}  // namespace weft::control
