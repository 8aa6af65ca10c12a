// SPDX-License-Identifier: Apache-2.0
// The control loop's autoscaling signals on a simulated clock with a FakeProvider: requests the
// gateways hold bring a scale-to-zero deployment from zero at once (not at the next evaluation
// period) and it returns to zero after the delay; the replicas' TTFT p95 over the SLO scales up
// when the concurrency target alone would not.
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

class Loop {
 public:
  explicit Loop(const std::string& spec_yaml) {
    FakeProviderOptions o;
    o.slots = 8;
    o.provision_delay_ms = 1000;
    o.now_ms = [this] { return now_.load(); };
    provider_ = std::make_unique<FakeProvider>(o);
    ControllerOptions co;
    co.now_ms = [this] { return now_.load(); };
    co.fetch_load = [this](const std::string&) {
      api::LoadReport l;
      l.ready = true;
      l.running = running_.load();
      l.ttft_p95_ms = ttft_ms_.load();
      l.ttft_samples = ttft_ms_.load() > 0 ? 20 : 0;
      return std::optional<api::LoadReport>(l);
    };
    co.held_requests = [this](const std::string& d) { return d == "chat" ? held_.load() : 0; };
    co.new_id = [this](const std::string& d) { return absl::StrCat(d, "-", ++next_id_); };
    controller_ = std::make_unique<Controller>(
        store_.get(), std::vector<ProviderEntry>{{"a", "fake", provider_.get()}}, co);
    EXPECT_TRUE(controller_->Init().ok());
    DeploymentRecord d;
    d.name = "chat";
    d.spec = spec_yaml;
    d.version = kAnyVersion;
    EXPECT_TRUE(store_->Put<DeploymentRecord>(d).ok());
  }

  void Tick(int64_t ms = 200) {
    now_ += ms;
    ASSERT_TRUE(controller_->Tick().ok());
  }
  int Count(bool ready_only) {
    auto rs = store_->List<ReplicaRecord>();
    int n = 0;
    for (const ReplicaRecord& r : *rs) {
      n += ready_only ? r.phase == ReplicaPhase::kReady : IsLive(r.phase);
    }
    return n;
  }
  template <typename F>
  int TickUntil(F done, int max_ticks) {
    for (int i = 1; i <= max_ticks; ++i) {
      Tick();
      if (done()) return i;
    }
    return -1;
  }

  std::unique_ptr<MemoryControlStore> store_ = std::make_unique<MemoryControlStore>();
  std::unique_ptr<FakeProvider> provider_;
  std::unique_ptr<Controller> controller_;
  std::atomic<int64_t> now_{1'000'000};
  std::atomic<int> running_{0};
  std::atomic<double> ttft_ms_{0};
  std::atomic<int64_t> held_{0};
  int next_id_ = 0;
};

TEST(ControllerAutoscaleTest, HeldRequestsScaleFromZeroAtOnceAndBackAfterTheDelay) {
  // A long evaluation period: the cold start must not wait for it.
  Loop loop(
      "name: chat\nmodel: /m.gguf\nreplicas: {min: 0, max: 3}\n"
      "autoscaling: {target_concurrency: 4, scale_to_zero: true, scale_down_delay_s: 5, "
      "evaluation_period_s: 30}\n");
  for (int i = 0; i < 20; ++i) loop.Tick();
  EXPECT_EQ(loop.Count(false), 0) << "scale to zero: nothing runs without demand";

  loop.Tick(31'000);  // the periodic evaluation has just run
  loop.held_ = 1;
  loop.Tick();  // 200 ms later: evaluated at once because a request is held
  EXPECT_EQ(loop.Count(false), 1);
  ASSERT_GT(loop.TickUntil([&] { return loop.Count(true) == 1; }, 10), 0);
  loop.held_ = 0;  // the gateway sent its request to the new replica

  // Idle for scale_down_delay_s (5 s) plus up to one evaluation period (30 s): back to zero.
  int ticks = loop.TickUntil([&] { return loop.Count(false) == 0; }, 400);
  ASSERT_GT(ticks, 0);
  EXPECT_GE(ticks * 200, 5'000);
  EXPECT_LE(ticks * 200, 5'000 + 30'000 + 400);
}

TEST(ControllerAutoscaleTest, TtftOverTheSloScalesUp) {
  Loop loop(
      "name: chat\nmodel: /m.gguf\nreplicas: {min: 1, max: 4}\n"
      "autoscaling: {target_concurrency: 100, ttft_p95_ms: 500, scale_down_delay_s: 60, "
      "evaluation_period_s: 1}\n");
  ASSERT_GT(loop.TickUntil([&] { return loop.Count(true) == 1; }, 20), 0);
  for (int i = 0; i < 10; ++i) loop.Tick();
  EXPECT_EQ(loop.Count(false), 1) << "TTFT within the SLO: steady";
  loop.running_ = 3;     // far below the concurrency target
  loop.ttft_ms_ = 1400;  // but 2.8x over the TTFT SLO
  ASSERT_GT(loop.TickUntil([&] { return loop.Count(false) >= 2; }, 6), 0)
      << "one evaluation period (1 s = 5 ticks) after the breach";
  auto events = loop.store_->ListEvents({.object = "deployment/chat", .after_id = 0, .limit = 50});
  ASSERT_TRUE(events.ok());
  bool saw = false;
  for (const EventRecord& e : *events)
    saw = saw || e.message.find("TTFT p95 1400 ms") != std::string::npos;
  EXPECT_TRUE(saw);
}

}  // namespace
}  // namespace weft::control
