// SPDX-License-Identifier: Apache-2.0
// Small non-streaming requests over UpstreamClient's pool against a loopback HttpServer:
// requests/s and p50/p99 latency (Send to on_done) at 1, 8 and 64 requests in flight, and the
// same without keep-alive (a new connection per request) for comparison.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "base/check.h"
#include "base/http/http_server.h"
#include "benchmark/benchmark.h"
#include "gateway/upstream/upstream_client.h"

namespace weft::gateway::upstream {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kBody[] =
    R"({"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"Once upon a time",)"
    R"("finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":4,"total_tokens":8}})";

// A closed loop: `concurrency` requests in flight, each completion sends the next, until `total`.
class Loop : public std::enable_shared_from_this<Loop> {
 public:
  Loop(UpstreamClient* client, Target target, int total)
      : client_(client), target_(std::move(target)), total_(total), to_send_(total) {
    latencies_us_.reserve(total);
  }

  void Run(int concurrency) {
    for (int i = 0; i < concurrency; ++i) Issue();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_ == total_; });
  }
  std::vector<double>& latencies_us() { return latencies_us_; }
  int errors() const { return errors_.load(); }

 private:
  void Issue() {
    if (to_send_.fetch_sub(1) <= 0) return;
    UpstreamRequest request;
    request.method = "GET";
    request.target = "/v1/fixed";
    Callbacks cb;
    cb.on_data = [](std::string_view) {};
    cb.on_done = [self = shared_from_this(), start = Clock::now()](absl::Status s) {
      double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
      if (!s.ok()) ++self->errors_;
      {
        std::lock_guard lock(self->mu_);
        self->latencies_us_.push_back(us);
        ++self->done_;
      }
      self->cv_.notify_all();
      self->Issue();
    };
    client_->Send(target_, std::move(request), std::move(cb));
  }

  UpstreamClient* client_;
  Target target_;
  const int total_;
  std::atomic<int> to_send_;
  std::atomic<int> errors_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<double> latencies_us_;
  int done_ = 0;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

void BM_SmallRequests(benchmark::State& state) {
  const int concurrency = static_cast<int>(state.range(0));
  const bool keep_alive = state.range(1) != 0;
  http::ServerOptions so;
  so.threads = 1;
  http::HttpServer server(so);
  server.Handle("GET", "/v1/fixed", [](const http::Request&, auto w) {
    http::Response r;
    r.body = kBody;
    w->Respond(std::move(r));
  });
  WEFT_CHECK(server.Start().ok());
  ClientOptions co;
  co.threads = 1;
  if (!keep_alive) co.max_idle_per_host = 0;
  UpstreamClient client(co);
  Target target{"127.0.0.1", server.port()};

  constexpr int kPerIteration = 2000;
  std::vector<double> all;
  int errors = 0;
  for (auto _ : state) {
    auto loop = std::make_shared<Loop>(&client, target, kPerIteration);
    loop->Run(concurrency);
    errors += loop->errors();
    all.insert(all.end(), loop->latencies_us().begin(), loop->latencies_us().end());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kPerIteration);
  state.counters["p50_us"] = Percentile(all, 0.50);
  state.counters["p99_us"] = Percentile(all, 0.99);
  state.counters["errors"] = errors;
  state.counters["connects"] = static_cast<double>(client.Stats(target).connects);
  client.Shutdown();
  server.Stop(1);
}

BENCHMARK(BM_SmallRequests)
    ->ArgNames({"in_flight", "keep_alive"})
    ->Args({1, 1})
    ->Args({8, 1})
    ->Args({64, 1})
    ->Args({1, 0})
    ->Args({8, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace weft::gateway::upstream

BENCHMARK_MAIN();
