// SPDX-License-Identifier: Apache-2.0
#include "control/autoscaler/autoscaler.h"

#include <vector>

#include "gtest/gtest.h"

namespace weft::control {
namespace {

AutoscalingSpec Spec(double target = 4, int64_t delay_s = 60, bool to_zero = false) {
  AutoscalingSpec a;
  a.target_per_replica = target;
  a.scale_down_delay_s = delay_s;
  a.scale_to_zero = to_zero;
  a.evaluation_period_s = 10;
  return a;
}

std::vector<api::LoadReport> Loads(std::vector<int> running, int waiting = 0, int64_t tokens = 0) {
  std::vector<api::LoadReport> out;
  for (int r : running) {
    api::LoadReport l;
    l.ready = true;
    l.running = r;
    l.waiting = waiting;
    l.tokens_in_flight = tokens;
    out.push_back(l);
  }
  return out;
}

AutoscalerInput Input(int64_t now_s, int32_t ready, const std::vector<api::LoadReport>& loads,
                      int32_t starting = 0) {
  AutoscalerInput in;
  in.now_ms = now_s * 1000;
  in.ready_replicas = ready;
  in.starting_replicas = starting;
  in.loads = loads;
  return in;
}

api::LoadReport Ttft(double p95_ms, int32_t samples) {
  api::LoadReport l;
  l.ready = true;
  l.ttft_p95_ms = p95_ms;
  l.ttft_samples = samples;
  return l;
}

TEST(DeploymentTtftP95Test, MaxOverReplicasWithEnoughSamples) {
  EXPECT_EQ(DeploymentTtftP95({}), std::nullopt);
  std::vector<api::LoadReport> none = {Ttft(0, 0), Ttft(0, 0)};
  EXPECT_EQ(DeploymentTtftP95(none), std::nullopt);
  // One slow cold request on a fresh replica does not outvote a busy replica's p95.
  std::vector<api::LoadReport> mixed = {Ttft(120, 40), Ttft(900, 1), Ttft(80, 12)};
  EXPECT_EQ(DeploymentTtftP95(mixed), 120);
  std::vector<api::LoadReport> slow = {Ttft(120, 40), Ttft(700, 6)};
  EXPECT_EQ(DeploymentTtftP95(slow), 700);
  // Only few samples anywhere: the max of those.
  std::vector<api::LoadReport> few = {Ttft(300, 2), Ttft(100, 1), Ttft(0, 0)};
  EXPECT_EQ(DeploymentTtftP95(few), 300);
}

TEST(AutoscalerTest, SloBreachFromReportsScalesUp) {
  AutoscalingSpec spec = Spec(100);  // load alone never breaches
  spec.ttft_p95_ms = 500;
  Autoscaler a(spec, {.min = 1, .max = 10});
  std::vector<api::LoadReport> loads = {Ttft(1500, 30), Ttft(200, 30)};
  AutoscalerInput in = Input(0, 2, loads);
  in.ttft_p95_ms = DeploymentTtftP95(loads);
  ScaleDecision d = a.Evaluate(in);
  EXPECT_EQ(d.direction, ScaleDirection::kUp);
  EXPECT_EQ(d.desired, 4);  // TTFT 3x the SLO, capped at 2x the ready replicas
}

TEST(AutoscalerTest, ScalesUpInOneEvaluation) {
  Autoscaler a(Spec(4), {.min = 1, .max = 10});
  auto loads = Loads({10, 10}, 3);  // 26 requests on 2 replicas, target 4 -> 7
  ScaleDecision d = a.Evaluate(Input(0, 2, loads));
  EXPECT_EQ(d.desired, 7);
  EXPECT_EQ(d.direction, ScaleDirection::kUp);
  EXPECT_EQ(d.reason,
            "concurrency 26.0 over 2 ready replicas (13.0 per replica, target 4.0): 2 -> 7");
  // Capped at max.
  auto heavy = Loads({100, 100});
  EXPECT_EQ(a.Evaluate(Input(10, 2, heavy)).desired, 10);
}

TEST(AutoscalerTest, StartingReplicasCountAsCapacity) {
  Autoscaler a(Spec(4), {.min = 1, .max = 10});
  auto loads = Loads({10, 10}, 0);  // 20 -> 5 replicas; 2 ready + 3 starting already
  ScaleDecision d = a.Evaluate(Input(0, 2, loads, 3));
  EXPECT_EQ(d.desired, 5);
  EXPECT_EQ(d.direction, ScaleDirection::kNone);
}

TEST(AutoscalerTest, MissingReportsAreExtrapolatedOrHold) {
  Autoscaler a(Spec(4), {.min = 1, .max = 10});
  auto one = Loads({8});  // one of 3 ready reports 8 -> 24 in all -> 6
  EXPECT_EQ(a.Evaluate(Input(0, 3, one)).desired, 6);
  Autoscaler b(Spec(4, 0), {.min = 1, .max = 10});
  ScaleDecision d = b.Evaluate(Input(0, 3, {}));
  EXPECT_EQ(d.desired, 3);
  EXPECT_EQ(d.reason, "no load reports from 3 ready replicas: hold: steady at 3");
}

TEST(AutoscalerTest, TokensInFlightMetric) {
  AutoscalingSpec s = Spec(1000);
  s.metric = ScalingMetric::kTokensInFlight;
  Autoscaler a(s, {.min = 1, .max = 10});
  auto loads = Loads({4, 4}, 0, 1500);  // 3000 tokens -> 3 replicas
  EXPECT_EQ(a.Evaluate(Input(0, 2, loads)).desired, 3);
}

TEST(AutoscalerTest, DownOnlyAfterTheDelay) {
  Autoscaler a(Spec(4, 60), {.min = 1, .max = 10});
  auto high = Loads({8, 8, 8, 8});  // 32 -> 8
  EXPECT_EQ(a.Evaluate(Input(0, 4, high)).desired, 8);
  auto low = Loads({0, 0, 0, 0, 0, 0, 0, 0});
  for (int t = 10; t < 70; t += 10) {
    ScaleDecision d = a.Evaluate(Input(t, 8, low));
    EXPECT_EQ(d.desired, 8) << "t=" << t << " " << d.reason;
  }
  ScaleDecision d = a.Evaluate(Input(70, 8, low));  // low since t=10 for 60 s
  EXPECT_EQ(d.desired, 1) << d.reason;
  EXPECT_EQ(d.direction, ScaleDirection::kDown);
}

TEST(AutoscalerTest, NoScaleDownBeforeObservingTheWholeDelay) {
  Autoscaler a(Spec(4, 60), {.min = 1, .max = 10});
  auto low = Loads({0, 0, 0, 0, 0});
  EXPECT_EQ(a.Evaluate(Input(1000, 5, low)).desired, 5);  // a fresh control plane
  EXPECT_EQ(a.Evaluate(Input(1050, 5, low)).desired, 5);
  EXPECT_EQ(a.Evaluate(Input(1060, 5, low)).desired, 1);
}

TEST(AutoscalerTest, SloBreachAddsReplicasOnce) {
  AutoscalingSpec s = Spec(100, 60);
  s.ttft_p95_ms = 500;
  Autoscaler a(s, {.min = 2, .max = 10});
  auto loads = Loads({5, 5});
  AutoscalerInput in = Input(0, 2, loads);
  in.ttft_p95_ms = 900;  // 1.8x the SLO -> ceil(2 x 1.8) = 4
  ScaleDecision d = a.Evaluate(in);
  EXPECT_EQ(d.desired, 4) << d.reason;
  // While the new replicas start, the SLO breach does not add more.
  in = Input(10, 2, loads, 2);
  in.ttft_p95_ms = 950;
  EXPECT_EQ(a.Evaluate(in).desired, 4);
  // Near the SLO (above 80%): no scale down even after the delay.
  auto four = Loads({2, 2, 2, 2});
  for (int t = 20; t <= 200; t += 10) {
    in = Input(t, 4, four);
    in.ttft_p95_ms = 450;
    EXPECT_EQ(a.Evaluate(in).desired, 4) << t;
  }
  // Well under the SLO: down once that lasted the delay (from t=210).
  for (int t = 210; t < 270; t += 10) {
    in = Input(t, 4, four);
    in.ttft_p95_ms = 100;
    EXPECT_EQ(a.Evaluate(in).desired, 4) << t;
  }
  in = Input(270, 4, four);
  in.ttft_p95_ms = 100;
  EXPECT_EQ(a.Evaluate(in).desired, 2);
}

TEST(AutoscalerTest, ScaleToZeroAndBack) {
  Autoscaler a(Spec(4, 30, /*to_zero=*/true), {.min = 0, .max = 4});
  EXPECT_EQ(a.ActiveFloor(), 1);
  auto idle = Loads({0});
  EXPECT_EQ(a.Evaluate(Input(0, 1, idle)).desired, 1);
  EXPECT_EQ(a.Evaluate(Input(20, 1, idle)).desired, 1);
  ScaleDecision d = a.Evaluate(Input(30, 1, idle));
  EXPECT_EQ(d.desired, 0) << d.reason;
  EXPECT_EQ(a.Evaluate(Input(40, 0, {})).desired, 0);
  AutoscalerInput in = Input(50, 0, {});
  in.pending_requests = 1;
  d = a.Evaluate(in);
  EXPECT_EQ(d.desired, 1) << d.reason;
  EXPECT_EQ(d.direction, ScaleDirection::kUp);
  in = Input(60, 0, {}, 1);  // starting; still held
  in.pending_requests = 3;
  EXPECT_EQ(a.Evaluate(in).desired, 1);
  in.pending_requests = 9;  // a burst while cold: 9 / 4 -> 3
  EXPECT_EQ(a.Evaluate(in).desired, 3);
}

TEST(AutoscalerTest, ScaleToZeroWithMinTwoComesBackAtTwo) {
  Autoscaler a(Spec(4, 0, true), {.min = 2, .max = 4});
  AutoscalerInput in = Input(0, 0, {});
  in.pending_requests = 1;
  EXPECT_EQ(a.Evaluate(in).desired, 2);
  auto low = Loads({1, 0});
  EXPECT_EQ(a.Evaluate(Input(10, 2, low)).desired, 2);  // busy: floor 2
  auto idle = Loads({0, 0});
  EXPECT_EQ(a.Evaluate(Input(20, 2, idle)).desired, 0);  // delay 0
}

TEST(AutoscalerTest, BoundsAndSpecChanges) {
  Autoscaler a(Spec(4, 60), {.min = 2, .max = 5});
  auto low = Loads({0});
  ScaleDecision d = a.Evaluate(Input(0, 1, low));  // a replica died
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.direction, ScaleDirection::kUp);
  a.UpdateSpec(Spec(4, 60), {.min = 1, .max = 3});
  auto six = Loads({0, 0, 0, 0, 0, 0});
  d = a.Evaluate(Input(10, 6, six));  // `weft scale --max 3`
  EXPECT_EQ(d.desired, 3);
  EXPECT_EQ(d.direction, ScaleDirection::kDown);
  EXPECT_EQ(ScaleDirectionName(d.direction), "down");
}

}  // namespace
}  // namespace weft::control
