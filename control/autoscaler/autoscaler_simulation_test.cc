// SPDX-License-Identifier: Apache-2.0
// Seeded simulation of the autoscaler against a small fleet model: replicas take time to start,
// offered load is spread over the ready ones (the gateway holds requests while none is ready),
// TTFT grows with load over the target. Checks the properties of issue 5 over many random
// scenarios: a load ramp raises replicas within one evaluation of the breach, replicas return to
// min after the delay and not before, flapping load does not oscillate, scale from zero.
#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "control/autoscaler/autoscaler.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

struct Fleet {
  int64_t startup_s = 30;
  std::vector<int64_t> ready_at_s;  // one per replica

  int32_t Ready(int64_t now_s) const {
    return static_cast<int32_t>(
        std::count_if(ready_at_s.begin(), ready_at_s.end(), [&](int64_t t) { return t <= now_s; }));
  }
  int32_t Current() const { return static_cast<int32_t>(ready_at_s.size()); }
  void Apply(int32_t desired, int64_t now_s) {
    while (Current() < desired) ready_at_s.push_back(now_s + startup_s);
    // Remove starting replicas first (latest ready_at), then ready ones.
    std::sort(ready_at_s.begin(), ready_at_s.end());
    while (Current() > desired) ready_at_s.pop_back();
  }
};

struct Step {
  int64_t now_s;
  double offered;  // concurrent requests offered at this time
  int32_t current_before;
  ScaleDecision decision;
};

struct SimOptions {
  AutoscalingSpec spec;
  ReplicasSpec replicas;
  int64_t startup_s = 30;
  int64_t duration_s = 3600;
  int32_t slots_per_replica = 16;  // running per replica; the rest waits
  int32_t initial_replicas = -1;   // -1: replicas.min
};

// Runs evaluations every evaluation_period_s from t=0; `offered(t)` is the load.
std::vector<Step> Simulate(const SimOptions& o, const std::function<double(int64_t)>& offered) {
  Autoscaler scaler(o.spec, o.replicas);
  Fleet fleet;
  fleet.startup_s = o.startup_s;
  fleet.Apply(o.initial_replicas >= 0 ? o.initial_replicas : o.replicas.min, -o.startup_s);
  std::vector<Step> steps;
  for (int64_t t = 0; t <= o.duration_s; t += o.spec.evaluation_period_s) {
    const double load = offered(t);
    const int32_t ready = fleet.Ready(t);
    std::vector<api::LoadReport> loads;
    AutoscalerInput in;
    in.now_ms = t * 1000;
    in.ready_replicas = ready;
    in.starting_replicas = fleet.Current() - ready;
    if (ready == 0) {
      in.pending_requests = static_cast<int64_t>(std::ceil(load));
    } else {
      int64_t total = static_cast<int64_t>(std::ceil(load));
      for (int32_t i = 0; i < ready; ++i) {
        int64_t share = total / ready + (i < total % ready ? 1 : 0);
        api::LoadReport r;
        r.ready = true;
        r.running = static_cast<int32_t>(std::min<int64_t>(share, o.slots_per_replica));
        r.waiting = static_cast<int32_t>(share - r.running);
        r.tokens_in_flight = r.running * 300;
        loads.push_back(r);
      }
      double per = load / ready;
      in.ttft_p95_ms = 100 * (1 + 2 * std::max(0.0, per - o.spec.target_per_replica) /
                                      o.spec.target_per_replica);
    }
    in.loads = loads;
    Step s{t, load, fleet.Current(), scaler.Evaluate(in)};
    fleet.Apply(s.decision.desired, t);
    steps.push_back(s);
  }
  return steps;
}

int32_t Needed(double load, const SimOptions& o) {
  int32_t n = static_cast<int32_t>(std::ceil(load / o.spec.target_per_replica - 1e-9));
  int32_t floor = o.spec.scale_to_zero ? std::max(o.replicas.min, 1) : o.replicas.min;
  return std::clamp(std::max(n, floor), 0, o.replicas.max);
}

SimOptions RandomOptions(std::mt19937_64& rng) {
  auto pick = [&](int n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); };
  SimOptions o;
  o.spec.target_per_replica = 2 + pick(8);
  o.spec.evaluation_period_s = 5 + pick(26);
  o.spec.scale_down_delay_s = o.spec.evaluation_period_s * (2 + pick(10));
  o.replicas.min = 1 + static_cast<int32_t>(pick(3));
  o.replicas.max = o.replicas.min + 2 + static_cast<int32_t>(pick(12));
  o.startup_s = 5 + pick(90);
  o.duration_s = 3600;
  return o;
}

TEST(AutoscalerSimulationTest, RampUpWithinOneEvaluationThenBackToMinAfterTheDelay) {
  std::mt19937_64 rng(42);
  for (int iter = 0; iter < 300; ++iter) {
    SimOptions o = RandomOptions(rng);
    const int64_t P = o.spec.evaluation_period_s;
    const int64_t D = o.spec.scale_down_delay_s;
    const int64_t ramp_start = 300 + static_cast<int64_t>(rng() % 300);
    const int64_t ramp_len = static_cast<int64_t>(rng() % 600);
    const double peak =
        o.spec.target_per_replica * (o.replicas.min + 1 + rng() % (o.replicas.max + 4));
    const int64_t drop = ramp_start + ramp_len + 600 + static_cast<int64_t>(rng() % 600);
    const double base = 0.3 * o.spec.target_per_replica;  // under target on min replicas
    auto offered = [&](int64_t t) {
      if (t < ramp_start || t >= drop) return base;
      if (t >= ramp_start + ramp_len) return peak;
      return base +
             (peak - base) * static_cast<double>(t - ramp_start) / std::max<int64_t>(ramp_len, 1);
    };
    o.duration_s = drop + D + 10 * P;
    std::vector<Step> steps = Simulate(o, offered);
    SCOPED_TRACE("iteration " + std::to_string(iter));

    int64_t first_low = -1;
    for (const Step& s : steps) {
      const int32_t need = Needed(s.offered, o);
      // Up within the evaluation that sees more load than the replicas (ready + starting) carry.
      if (need > s.current_before) {
        EXPECT_GE(s.decision.desired, need) << "t=" << s.now_s << " " << s.decision.reason;
      }
      EXPECT_LE(s.decision.desired, o.replicas.max);
      EXPECT_GE(s.decision.desired, o.replicas.min);
      if (s.now_s >= drop && first_low < 0) first_low = s.now_s;
      // Nothing goes down before the load has been low for the delay.
      if (s.decision.direction == ScaleDirection::kDown) {
        ASSERT_GE(first_low, 0) << "scaled down during the ramp at t=" << s.now_s;
        EXPECT_GE(s.now_s - first_low, D) << s.decision.reason;
      }
      // At the delay, back to min (the base load fits on min replicas).
      if (first_low >= 0 && s.now_s >= first_low + D) {
        EXPECT_EQ(s.decision.desired, o.replicas.min)
            << "t=" << s.now_s << " " << s.decision.reason;
      }
    }
    // The ramp did scale up.
    EXPECT_GT(std::max_element(steps.begin(), steps.end(),
                               [](const Step& a, const Step& b) {
                                 return a.decision.desired < b.decision.desired;
                               })
                  ->decision.desired,
              o.replicas.min);
  }
}

TEST(AutoscalerSimulationTest, FlappingLoadDoesNotOscillate) {
  std::mt19937_64 rng(9);
  for (int iter = 0; iter < 300; ++iter) {
    SimOptions o = RandomOptions(rng);
    const int64_t P = o.spec.evaluation_period_s;
    const int64_t D = o.spec.scale_down_delay_s;
    // High for one evaluation, low for up to (D / P - 1) evaluations: never low for the delay.
    const int64_t low_evals = 1 + static_cast<int64_t>(rng() % std::max<int64_t>(D / P - 1, 1));
    const int64_t cycle = (1 + low_evals) * P;
    const double high = o.spec.target_per_replica * (o.replicas.min + 2);
    const double low = 0.2 * o.spec.target_per_replica;
    auto offered = [&](int64_t t) { return t % cycle < P ? high : low; };
    o.duration_s = 200 * P;
    std::vector<Step> steps = Simulate(o, offered);
    SCOPED_TRACE("iteration " + std::to_string(iter));
    int ups = 0, downs = 0;
    for (const Step& s : steps) {
      ups += s.decision.direction == ScaleDirection::kUp;
      downs += s.decision.direction == ScaleDirection::kDown;
    }
    EXPECT_EQ(downs, 0);
    EXPECT_EQ(ups, 1);
  }
}

TEST(AutoscalerSimulationTest, NoisyLoadInvariants) {
  std::mt19937_64 rng(2024);
  for (int iter = 0; iter < 200; ++iter) {
    SimOptions o = RandomOptions(rng);
    o.spec.scale_to_zero = rng() % 2 == 0;
    if (o.spec.scale_to_zero && rng() % 2 == 0) o.replicas.min = 0;
    o.spec.ttft_p95_ms = rng() % 2 == 0 ? 0 : 150 + static_cast<int64_t>(rng() % 200);
    o.spec.metric = rng() % 3 == 0 ? ScalingMetric::kTokensInFlight : ScalingMetric::kConcurrency;
    if (o.spec.metric == ScalingMetric::kTokensInFlight) o.spec.target_per_replica *= 300;
    std::vector<double> trace;
    double level = 0;
    for (int i = 0; i < 400; ++i) {
      if (rng() % 20 == 0) level = static_cast<double>(rng() % 60) * (rng() % 3 == 0 ? 0 : 1);
      trace.push_back(std::max(0.0, level + static_cast<double>(rng() % 7) - 3));
    }
    const int64_t P = o.spec.evaluation_period_s;
    o.duration_s = 399 * P;
    std::vector<Step> steps = Simulate(o, [&](int64_t t) { return trace[t / P]; });
    SCOPED_TRACE("iteration " + std::to_string(iter));
    const int32_t floor = o.spec.scale_to_zero ? 0 : o.replicas.min;
    for (size_t i = 0; i < steps.size(); ++i) {
      const Step& s = steps[i];
      EXPECT_GE(s.decision.desired, floor);
      EXPECT_LE(s.decision.desired, o.replicas.max);
      if (s.decision.recommendation > s.current_before) {
        EXPECT_EQ(s.decision.desired, s.decision.recommendation) << s.decision.reason;
      }
      if (s.decision.direction == ScaleDirection::kDown) {
        EXPECT_GE(s.now_s, o.spec.scale_down_delay_s);
        // Every recommendation within the delay is at most the new count.
        for (size_t j = 0; j <= i; ++j) {
          if (steps[j].now_s >= s.now_s - o.spec.scale_down_delay_s) {
            EXPECT_LE(steps[j].decision.recommendation, s.decision.desired) << s.decision.reason;
          }
        }
      }
      // Held requests always get a replica coming.
      if (s.current_before == 0 && s.offered > 0) {
        EXPECT_GE(s.decision.desired, 1);
      }
    }
  }
}

TEST(AutoscalerSimulationTest, ScaleFromZero) {
  std::mt19937_64 rng(5);
  for (int iter = 0; iter < 200; ++iter) {
    SimOptions o = RandomOptions(rng);
    o.spec.scale_to_zero = true;
    o.replicas.min = static_cast<int32_t>(rng() % 2);
    const int64_t P = o.spec.evaluation_period_s;
    const int64_t D = o.spec.scale_down_delay_s;
    const int64_t busy_until = 100 + static_cast<int64_t>(rng() % 200);
    const int64_t arrival = busy_until + D + 5 * P + static_cast<int64_t>(rng() % 500);
    auto offered = [&](int64_t t) {
      if (t < busy_until) return 3.0;
      return t >= arrival && t < arrival + 120 ? 1.0 : 0.0;
    };
    o.duration_s = arrival + 120 + D + 10 * P;
    std::vector<Step> steps = Simulate(o, offered);
    SCOPED_TRACE("iteration " + std::to_string(iter));
    int64_t first_idle = -1, zero_at = -1, up_at = -1, first_seen = -1;
    for (const Step& s : steps) {
      if (s.now_s >= busy_until && first_idle < 0) first_idle = s.now_s;
      if (zero_at < 0 && s.decision.desired == 0) zero_at = s.now_s;
      if (s.now_s >= arrival && first_seen < 0) first_seen = s.now_s;
      if (s.now_s >= arrival && up_at < 0 && s.decision.desired >= 1) up_at = s.now_s;
    }
    // To zero exactly after the idle delay (idle = no load seen since first_idle).
    EXPECT_EQ(zero_at, std::max<int64_t>(first_idle + D, D));
    // From zero in the first evaluation that sees the held request.
    EXPECT_EQ(up_at, first_seen);
    // And back to zero after the traffic.
    EXPECT_EQ(steps.back().decision.desired, 0);
  }
}

}  // namespace
}  // namespace weft::control
