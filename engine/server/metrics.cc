// SPDX-License-Identifier: Apache-2.0
#include "engine/server/metrics.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace weft::engine {
namespace {

void Scalar(std::string* out, const char* name, const char* type, const char* help, double v) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ",
                  PrometheusNumber(v), "\n");
}

}  // namespace

ServerMetrics::ServerMetrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}) {}

namespace {
double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void ServerMetrics::ObserveTtft(double seconds) {
  ttft_.Observe(seconds);
  std::lock_guard lock(mu_);
  recent_ttft_.Add(SteadySeconds(), seconds * 1000);
}

RecentLatency::Summary ServerMetrics::RecentTtft() const {
  std::lock_guard lock(mu_);
  return recent_ttft_.Get(SteadySeconds());
}

void ServerMetrics::CountRequest(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  requests_[{endpoint, status}]++;
}

void ServerMetrics::AddTokens(int64_t prompt, int64_t completion, int64_t cached) {
  prompt_tokens_ += prompt;
  completion_tokens_ += completion;
  cached_tokens_ += cached;
}

std::string ServerMetrics::Render(const LoadReport& load) const {
  std::string out;
  out +=
      "# HELP weft_requests_total HTTP requests answered, by endpoint and status code.\n"
      "# TYPE weft_requests_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, n] : requests_) {
      absl::StrAppend(&out, "weft_requests_total{endpoint=\"", key.first, "\",code=\"", key.second,
                      "\"} ", n, "\n");
    }
  }
  Scalar(&out, "weft_prompt_tokens_total", "counter", "Prompt tokens of finished requests.",
         static_cast<double>(prompt_tokens_.load()));
  Scalar(&out, "weft_completion_tokens_total", "counter", "Generated tokens of finished requests.",
         static_cast<double>(completion_tokens_.load()));
  Scalar(&out, "weft_cached_prompt_tokens_total", "counter",
         "Prompt tokens of finished requests served from the prefix cache.",
         static_cast<double>(cached_tokens_.load()));
  Scalar(&out, "weft_client_disconnects_total", "counter",
         "Requests cancelled because their client went away.",
         static_cast<double>(client_cancels_.load()));
  ttft_.Render("weft_time_to_first_token_seconds", "Request arrival to its first generated token.",
               &out);
  itl_.Render("weft_inter_token_latency_seconds", "Time between consecutive tokens of a request.",
              &out);
  Scalar(&out, "weft_requests_running", "gauge", "Requests in the running batch.", load.running);
  Scalar(&out, "weft_requests_waiting", "gauge", "Requests queued for admission (queue depth).",
         load.waiting);
  Scalar(&out, "weft_batch_size", "gauge", "Sequences in the last step's batch.", load.running);
  Scalar(&out, "weft_tokens_in_flight", "gauge", "Prompt and generated tokens of running requests.",
         static_cast<double>(load.tokens_in_flight));
  Scalar(&out, "weft_kv_blocks_used", "gauge", "KV cache blocks in use.",
         load.kv_blocks_total - load.kv_blocks_free);
  Scalar(&out, "weft_kv_blocks_free", "gauge", "KV cache blocks free or evictable.",
         load.kv_blocks_free);
  Scalar(&out, "weft_kv_blocks_total", "gauge", "KV cache blocks.", load.kv_blocks_total);
  Scalar(&out, "weft_prefix_cache_hit_tokens_total", "counter",
         "Prompt tokens served from the prefix cache.",
         static_cast<double>(load.prefix_hit_tokens));
  Scalar(&out, "weft_prefill_tokens_per_second", "gauge", "Recent prefill throughput.",
         load.prefill_tokens_per_s);
  Scalar(&out, "weft_decode_tokens_per_second", "gauge", "Recent decode throughput.",
         load.decode_tokens_per_s);
  Scalar(&out, "weft_engine_steps_total", "counter", "Engine steps run.",
         static_cast<double>(load.step_count));
  Scalar(&out, "weft_adapters_loaded", "gauge", "LoRA adapters loaded.",
         static_cast<double>(load.adapters.size()));
  return out;
}

}  // namespace weft::engine
