// SPDX-License-Identifier: Apache-2.0
#include "control/autoscaler/autoscaler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace weft::control {

std::string_view ScaleDirectionName(ScaleDirection d) {
  switch (d) {
    case ScaleDirection::kNone:
      return "none";
    case ScaleDirection::kUp:
      return "up";
    case ScaleDirection::kDown:
      return "down";
  }
  return "unknown";
}

std::optional<double> DeploymentTtftP95(std::span<const api::LoadReport> loads,
                                        int32_t min_samples) {
  std::optional<double> any, enough;
  for (const api::LoadReport& l : loads) {
    if (l.ttft_samples <= 0) continue;
    any = std::max(any.value_or(0.0), l.ttft_p95_ms);
    if (l.ttft_samples >= min_samples) enough = std::max(enough.value_or(0.0), l.ttft_p95_ms);
  }
  return enough ? enough : any;
}

Autoscaler::Autoscaler(const AutoscalingSpec& autoscaling, const ReplicasSpec& replicas,
                       AutoscalerOptions options)
    : autoscaling_(autoscaling), replicas_(replicas), options_(options) {}

void Autoscaler::UpdateSpec(const AutoscalingSpec& autoscaling, const ReplicasSpec& replicas) {
  autoscaling_ = autoscaling;
  replicas_ = replicas;
}

int32_t Autoscaler::ActiveFloor() const {
  return autoscaling_.scale_to_zero ? std::max(replicas_.min, 1) : replicas_.min;
}

ScaleDecision Autoscaler::Evaluate(const AutoscalerInput& in) {
  const int32_t ready = std::max(in.ready_replicas, 0);
  const int32_t current = ready + std::max(in.starting_replicas, 0);
  const int32_t max = std::max(replicas_.max, 1);
  const int32_t floor_active = std::min(ActiveFloor(), max);
  const int32_t floor = autoscaling_.scale_to_zero ? 0 : floor_active;
  const double target = autoscaling_.target_per_replica > 0 ? autoscaling_.target_per_replica : 1;
  const bool by_tokens = autoscaling_.metric == ScalingMetric::kTokensInFlight;
  const char* unit = by_tokens ? "tokens in flight" : "concurrency";
  const int64_t pending = std::max<int64_t>(in.pending_requests, 0);
  if (!first_eval_ms_) first_eval_ms_ = in.now_ms;

  // Demand: the reporting replicas' load, extrapolated to the ready ones that did not report,
  // plus the requests the gateway holds.
  double metric_sum = 0;
  double requests_sum = 0;  // running + waiting
  double tokens_sum = 0;
  for (const api::LoadReport& r : in.loads) {
    double requests = std::max(r.running, 0) + std::max(r.waiting, 0);
    double tokens = static_cast<double>(std::max<int64_t>(r.tokens_in_flight, 0));
    requests_sum += requests;
    tokens_sum += tokens;
    metric_sum += by_tokens ? tokens : requests;
  }
  const size_t reporting = in.loads.size();
  const bool known = ready == 0 || reporting > 0;
  double demand = 0;
  if (reporting > 0) {
    demand = metric_sum / static_cast<double>(reporting) *
             static_cast<double>(std::max<size_t>(ready, reporting));
  }
  if (by_tokens) {
    // A held request will carry about as many tokens as a running one.
    double per_request = requests_sum > 0 ? tokens_sum / requests_sum : 0;
    demand += static_cast<double>(pending) * per_request;
  } else {
    demand += static_cast<double>(pending);
  }
  const bool idle = known && requests_sum == 0 && tokens_sum == 0 && pending == 0;
  const double per_replica = demand / std::max(ready, 1);

  // This evaluation's recommendation.
  const int64_t slo = autoscaling_.ttft_p95_ms;
  const bool slo_breach = slo > 0 && in.ttft_p95_ms && *in.ttft_p95_ms > static_cast<double>(slo);
  const bool slo_near =
      slo > 0 && in.ttft_p95_ms &&
      *in.ttft_p95_ms > options_.slo_scale_down_fraction * static_cast<double>(slo);
  int32_t rec = current;
  std::string why;
  if (!known) {
    why = absl::StrCat("no load reports from ", ready, " ready replicas: hold");
  } else {
    // 1e-9: a demand of exactly k x target needs k replicas, not k + 1.
    double need = std::ceil(demand / target - 1e-9);
    int32_t by_load = static_cast<int32_t>(std::min<double>(need, 1e6));
    rec = std::max(by_load, floor_active);
    why = absl::StrFormat("%s %.1f over %d ready replicas (%.1f per replica, target %.1f)", unit,
                          demand, ready, per_replica, target);
    if (pending > 0) absl::StrAppend(&why, ", ", pending, " held requests");
    if (idle && autoscaling_.scale_to_zero) {
      rec = 0;
      why = "idle (no load, no held requests)";
    }
    if (slo_breach) {
      double ratio = *in.ttft_p95_ms / static_cast<double>(slo);
      int32_t by_slo = current;
      if (in.starting_replicas <= 0 && ready > 0) {
        // Replicas in proportion to how far over the SLO, at least one more.
        double factor = std::min(ratio, options_.max_slo_scale_up_factor);
        by_slo = std::max(ready + 1, static_cast<int32_t>(std::ceil(ready * factor - 1e-9)));
      }
      rec = std::max(rec, by_slo);
      absl::StrAppend(&why,
                      absl::StrFormat("; TTFT p95 %.0f ms > SLO %d ms", *in.ttft_p95_ms, slo));
      if (in.starting_replicas > 0) absl::StrAppend(&why, " (waiting for starting replicas)");
    } else if (slo_near && rec < current) {
      rec = current;
      absl::StrAppend(
          &why, absl::StrFormat("; TTFT p95 %.0f ms near SLO %d ms: hold", *in.ttft_p95_ms, slo));
    }
  }
  if (pending > 0) rec = std::max(rec, floor_active);  // from zero: a held request needs a replica
  rec = std::clamp(rec, floor, max);

  // Stabilization window: recommendations of the last scale_down_delay_s.
  const int64_t delay_ms = autoscaling_.scale_down_delay_s * 1000;
  history_.push_back({in.now_ms, rec});
  while (!history_.empty() && history_.front().at_ms < in.now_ms - delay_ms) history_.pop_front();
  int32_t window_max = 0;
  for (const Recommendation& r : history_) window_max = std::max(window_max, r.replicas);
  window_max = std::clamp(window_max, floor, max);

  ScaleDecision d;
  d.recommendation = rec;
  if (current > max) {
    d.desired = max;
    d.reason = absl::StrCat("above replicas.max ", max, ": ", current, " -> ", max);
  } else if (current < floor) {
    d.desired = std::max(rec, floor);
    d.reason = absl::StrCat("below the floor ", floor, ": ", current, " -> ", d.desired);
  } else if (rec > current) {
    d.desired = rec;
    d.reason = absl::StrCat(why, ": ", current, " -> ", rec);
  } else if (rec == current) {
    d.desired = current;
    d.reason = absl::StrCat(why, ": steady at ", current);
  } else if (in.now_ms - *first_eval_ms_ < delay_ms) {
    d.desired = current;
    d.reason = absl::StrCat(why, ": would scale to ", rec, ", observed for less than ",
                            autoscaling_.scale_down_delay_s, " s");
  } else if (window_max >= current) {
    d.desired = current;
    d.reason = absl::StrCat(why, ": would scale to ", rec, ", but wanted ", window_max,
                            " within the last ", autoscaling_.scale_down_delay_s, " s");
  } else {
    d.desired = window_max;
    d.reason = absl::StrCat(why, ": low for ", autoscaling_.scale_down_delay_s, " s: ", current,
                            " -> ", window_max);
  }
  d.direction = d.desired > current   ? ScaleDirection::kUp
                : d.desired < current ? ScaleDirection::kDown
                                      : ScaleDirection::kNone;
  return d;
}

}  // namespace weft::control
