// SPDX-License-Identifier: Apache-2.0
#include "gateway/gateway.h"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "api/openai.h"
#include "base/histogram.h"
#include "base/status.h"
#include "base/http/http_server.h"
#include "base/http/io_context_pool.h"
#include "gateway/auth/api_key.h"
#include "gateway/demand_reporter.h"
#include "gateway/hold_queue.h"
#include "gateway/proxy_call.h"
#include "gateway/quota/quota_tracker.h"
#include "gateway/request_scan.h"
#include "gateway/routing/balancer.h"
#include "gateway/routing/circuit_breaker.h"
#include "gateway/routing/ewma.h"
#include "gateway/routing/outlier_detector.h"
#include "gateway/routing/prefix_keys.h"
#include "gateway/routing/retry_budget.h"
#include "gateway/routing/route_table.h"
#include "gateway/routing/static_route_source.h"
#include "gateway/upstream/load_poller.h"
#include "gateway/upstream/upstream_client.h"
#include "nlohmann/json.hpp"

#include "gateway/admin/admin_routes.h"

namespace weft::gateway {
namespace {

using ojson = nlohmann::ordered_json;

http::Response ErrorResponse(int status, std::string type, std::string message,
                             std::string code = "", int retry_after_s = 0,
                             std::string param = "") {
  api::ApiError e;
  e.status = status;
  e.type = std::move(type);
  e.message = std::move(message);
  e.code = std::move(code);
  e.param = std::move(param);
  e.retry_after_s = retry_after_s;
  http::Response r;
  r.status = status;
  r.body = api::ErrorJson(e);
  if (retry_after_s > 0) r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
  return r;
}

// "req-" + 12 hex digits of the Unix time in ms + 12 random hex digits (48 bits): time-ordered
// like a UUIDv7, so the ledger store's request_id index grows at its right edge instead of taking
// each insert at a random page.
std::string NewRequestId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char kHex[] = "0123456789abcdef";
  const uint64_t ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  const uint64_t random = rng();
  std::string id = "req-";
  id.reserve(28);
  for (int i = 11; i >= 0; --i) id.push_back(kHex[(ms >> (4 * i)) & 15]);
  for (int i = 11; i >= 0; --i) id.push_back(kHex[(random >> (4 * i)) & 15]);
  return id;
}

// What the gateway tracks per replica (beyond the route table's static description).
struct ReplicaRuntime {
  explicit ReplicaRuntime(const OutlierConfig& oc, int max_pending)
      : breaker(CircuitBreakerOptions{max_pending, oc.breaker_failures, oc.breaker_open_s}) {}
  std::atomic<int32_t> outstanding_requests{0};
  std::atomic<int64_t> outstanding_tokens{0};
  CircuitBreaker breaker;
  std::mutex mu;  // guards the fields below
  std::shared_ptr<const api::LoadReport> load;  // the last report; null = none yet
  bool healthy = true;  // optimistic until the first check says otherwise
  int fail_streak = 0;
  int ok_streak = 0;
  Ewma ttft{0.3};
  Ewma itl{0.3};
};

struct Metrics {
  // Requests by endpoint and status: the endpoints the gateway serves and statuses 100..599 as
  // relaxed atomics (one per request, on every I/O thread: no lock), anything else in `requests`.
  static constexpr std::array<std::string_view, 3> kEndpoints = {"chat", "completions", "models"};
  std::array<std::array<std::atomic<uint64_t>, 500>, kEndpoints.size()> by_status{};
  std::mutex mu;
  std::map<std::pair<std::string, int>, uint64_t> requests;  // (endpoint, status); guarded by mu
  std::map<std::string, uint64_t> quota_rejections;          // by limit; guarded by mu
  std::atomic<int64_t> prompt_tokens{0}, completion_tokens{0}, cached_tokens{0};
  std::atomic<int64_t> attempts{0}, retries{0}, migrations{0}, hedges{0}, upstream_failures{0};
  std::atomic<int64_t> auth_failures{0}, ledger_errors{0};
  Histogram duration{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
  Histogram ttft{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
};

// One proxied request's own state, kept in its ProxyEnv (CallEnv) so the request costs one
// allocation for all of it.
struct CallState {
  std::shared_ptr<const RouteTable> table;  // the snapshot `dep` points into
  const DeploymentConfig* dep = nullptr;
  std::string adapter;
  std::vector<uint64_t> prefix_keys;
  int64_t est_tokens = 0;  // reserved against the quota, counted as outstanding per attempt
  std::string request_id;
  auth::Principal principal;
  quota::Reservation reservation;
  std::string ep;  // the endpoint's metrics label
  bool stream = false;
  // The deployment's outlier detector, looked up once (every attempt reports to it).
  std::shared_ptr<OutlierDetector> outliers;
  // Per replica an attempt went to: its runtime (looked up once: the lookup takes the gateway's
  // replicas lock, and the runtime's use count is shared by every I/O thread) and whether the
  // attempt acquired its circuit breaker.
  struct Tried {
    std::shared_ptr<ReplicaRuntime> rt;
    bool breaker_acquired = false;
  };
  std::mutex tried_mu;
  std::map<std::string, Tried, std::less<>> tried;  // guarded by tried_mu
  ReplicaRuntime* TriedRuntime(std::string_view id) {
    std::lock_guard lock(tried_mu);
    auto it = tried.find(id);
    return it == tried.end() ? nullptr : it->second.rt.get();
  }
};
struct CallEnv : ProxyEnv, std::enable_shared_from_this<CallEnv> {
  CallState st;
};

}  // namespace

struct Gateway::Impl {
  GatewayOptions opt;
  const std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  // The I/O threads, shared by the listener and the upstream client (declared before both: goes
  // last): a request and its upstream exchange run on one thread.
  std::unique_ptr<http::IoContextPool> io;
  std::unique_ptr<http::HttpServer> server;
  std::unique_ptr<upstream::UpstreamClient> client;
  std::unique_ptr<upstream::LoadPoller> poller;
  std::unique_ptr<Balancer> balancer;
  RouteTableHolder routes;
  quota::QuotaTracker quotas;
  std::unique_ptr<RetryBudget> retry_budget;
  std::unique_ptr<DemandReporter> demand;  // tells control what `holds` holds (route watch only)
  std::unique_ptr<HoldQueue> holds;        // scale from zero: requests waiting for a ready replica
  Metrics metrics;
  std::atomic<bool> stopped{false};

  std::mutex replicas_mu;
  // Replica id -> runtime state; deployment -> outlier detector. Swapped on route updates.
  std::map<std::string, std::shared_ptr<ReplicaRuntime>> replicas;            // guarded
  std::map<std::string, std::shared_ptr<OutlierDetector>> outliers;           // guarded

  double NowS() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  std::shared_ptr<ReplicaRuntime> Runtime(const std::string& id) {
    std::lock_guard lock(replicas_mu);
    auto it = replicas.find(id);
    return it == replicas.end() ? nullptr : it->second;
  }
  std::shared_ptr<OutlierDetector> Outliers(const std::string& deployment) {
    std::lock_guard lock(replicas_mu);
    auto it = outliers.find(deployment);
    return it == outliers.end() ? nullptr : it->second;
  }

  void OnRoutes(std::shared_ptr<const RouteTable> table) {
    std::vector<upstream::PolledReplica> polled;
    std::set<std::string> ready;  // deployments with a ready replica: their held requests go
    {
      std::lock_guard lock(replicas_mu);
      std::map<std::string, std::shared_ptr<ReplicaRuntime>> next;
      std::map<std::string, std::shared_ptr<OutlierDetector>> next_outliers;
      for (const DeploymentConfig& d : table->deployments()) {
        std::vector<std::string> ids;
        for (const ReplicaConfig& r : d.replicas) {
          auto it = replicas.find(r.id);
          next[r.id] = it != replicas.end()
                           ? it->second
                           : std::make_shared<ReplicaRuntime>(
                                 opt.config.outlier, opt.config.limits.max_outstanding_per_replica);
          ids.push_back(r.id);
          if (r.state == ReplicaState::kReady) ready.insert(d.name);
          if (r.state != ReplicaState::kDown) {
            polled.push_back({r.id, upstream::Target{r.host, r.port}});
          }
        }
        auto it = outliers.find(d.name);
        auto od = it != outliers.end() ? it->second
                                       : std::make_shared<OutlierDetector>(opt.config.outlier);
        od->SetReplicas(ids);
        next_outliers[d.name] = od;
      }
      replicas = std::move(next);
      outliers = std::move(next_outliers);
    }
    routes.Set(std::move(table));
    if (holds) holds->SetReady(std::move(ready));
    if (poller) poller->SetReplicas(std::move(polled));
  }

  void OnLoadReport(const std::string& id, absl::StatusOr<api::LoadReport> report) {
    auto rt = Runtime(id);
    if (!rt) return;
    std::lock_guard lock(rt->mu);
    const HealthConfig& h = opt.config.health;
    if (report.ok() && report->ready) {
      rt->load = std::make_shared<const api::LoadReport>(std::move(*report));
      rt->fail_streak = 0;
      if (++rt->ok_streak >= h.healthy_threshold) rt->healthy = true;
    } else {
      rt->ok_streak = 0;
      if (++rt->fail_streak >= h.unhealthy_threshold) rt->healthy = false;
    }
  }

  // The balancer's pick for one attempt.
  // `od`: the deployment's outlier detector (CallState::outliers), null for none.
  std::optional<RouteChoice> Pick(const DeploymentConfig& dep, const std::string& adapter,
                                  const std::vector<uint64_t>& prefix_keys, int64_t est_tokens,
                                  const std::vector<std::string>& exclude, OutlierDetector* od) {
    const double now = NowS();
    std::vector<std::shared_ptr<ReplicaRuntime>> rts;
    // Reports are immutable once published: holding them keeps the views' spans valid.
    std::vector<std::shared_ptr<const api::LoadReport>> loads(dep.replicas.size());
    std::vector<ReplicaView> views(dep.replicas.size());
    rts.reserve(dep.replicas.size());
    for (size_t i = 0; i < dep.replicas.size(); ++i) {
      const ReplicaConfig& r = dep.replicas[i];
      auto rt = Runtime(r.id);
      rts.push_back(rt);
      ReplicaView& v = views[i];
      v.id = r.id;
      v.provider = r.provider;
      v.region = r.region;
      v.state = r.state;
      v.weight = r.weight;
      v.max_outstanding = opt.config.limits.max_outstanding_per_replica;
      if (!rt) {
        v.healthy = false;
        continue;
      }
      v.outstanding_requests = rt->outstanding_requests.load(std::memory_order_relaxed);
      v.outstanding_tokens = rt->outstanding_tokens.load(std::memory_order_relaxed);
      v.ejected = (od && od->IsEjected(r.id, now)) || !rt->breaker.Allows(now);
      std::lock_guard lock(rt->mu);
      v.healthy = rt->healthy;
      if (rt->load) {
        loads[i] = rt->load;
        FillLoadReport(*loads[i], &v);
      }
      v.ewma_ttft_ms = rt->ttft.value();
      v.ewma_itl_ms = rt->itl.value();
      v.latency_updated_s = rt->ttft.updated_s();
    }
    static thread_local std::mt19937_64 rng(std::random_device{}());
    RequestView req;
    req.deployment = dep.name;
    req.adapter = adapter;
    req.prefix_keys = prefix_keys;
    req.estimated_tokens = est_tokens;
    req.preferred_providers = dep.preferred_providers;
    req.preferred_regions = dep.preferred_regions;
    req.exclude = exclude;
    req.random = rng();
    req.now_s = now;
    std::optional<size_t> i = balancer->PickIndex(req, views);
    if (!i) return std::nullopt;
    const ReplicaConfig& r = dep.replicas[*i];
    RouteChoice c;
    c.replica_id = r.id;
    c.provider = r.provider;
    c.region = r.region;
    c.target = upstream::Target{r.host, r.port};
    if (loads[*i]) c.engine_model = loads[*i]->model;
    return c;
  }

  void HandleCompletion(api::Endpoint endpoint, const http::Request& hreq,
                        std::shared_ptr<http::ResponseWriter> w);
  void HandleModels(const http::Request& hreq, std::shared_ptr<http::ResponseWriter> w);
  std::string RenderMetrics();
  void CountRequest(std::string_view endpoint, int status) {
    for (size_t e = 0; e < Metrics::kEndpoints.size(); ++e) {
      if (Metrics::kEndpoints[e] == endpoint && status >= 100 && status < 600) {
        metrics.by_status[e][status - 100].fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
    std::lock_guard lock(metrics.mu);
    metrics.requests[{std::string(endpoint), status}]++;
  }
  absl::StatusOr<auth::Principal> Authenticate(const http::Request& hreq) {
    std::string_view token = auth::BearerToken(hreq.Header("Authorization"));
    if (token.empty()) return absl::UnauthenticatedError("missing bearer token");
    return opt.keys->Authenticate(token);
  }
};

void Gateway::Impl::HandleModels(const http::Request& hreq,
                                 std::shared_ptr<http::ResponseWriter> w) {
  absl::StatusOr<auth::Principal> p = Authenticate(hreq);
  if (!p.ok()) {
    metrics.auth_failures++;
    CountRequest("models", 401);
    return w->Respond(ErrorResponse(401, "invalid_request_error", "Incorrect API key provided.",
                                    "invalid_api_key"));
  }
  auto table = routes.Get();
  ojson data = ojson::array();
  for (const std::string& name : table->ModelNames()) {
    auto t = table->Resolve(name);
    if (!t || !MayUse(*p, t->deployment->name)) continue;
    data.push_back({{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "weft"}});
  }
  CountRequest("models", 200);
  http::Response r;
  r.body = ojson{{"object", "list"}, {"data", std::move(data)}}.dump();
  w->Respond(std::move(r));
}

void Gateway::Impl::HandleCompletion(api::Endpoint endpoint, const http::Request& hreq,
                                     std::shared_ptr<http::ResponseWriter> w) {
  const std::string ep = endpoint == api::Endpoint::kChatCompletions ? "chat" : "completions";
  auto reject = [&](http::Response r) {
    CountRequest(ep, r.status);
    w->Respond(std::move(r));
  };
  if (stopped.load()) {
    return reject(ErrorResponse(503, "service_unavailable", "the gateway is shutting down", "", 1));
  }
  // 1. Who is calling.
  absl::StatusOr<auth::Principal> principal = Authenticate(hreq);
  if (!principal.ok()) {
    metrics.auth_failures++;
    return reject(ErrorResponse(401, "invalid_request_error", "Incorrect API key provided.",
                                "invalid_api_key"));
  }
  // 2. What they ask (validated here so that a malformed request never reaches a replica). The
  // common completion body is read by the request scanner without a document (ProxyCall parses
  // one only if an attempt must rewrite the body); anything else is parsed once, validated into
  // `req` and kept as JSON to forward. Both give the same request (request_scan.h).
  ojson body;
  absl::StatusOr<api::CompletionRequest> req;
  std::optional<api::CompletionRequest> scanned;
  if (endpoint == api::Endpoint::kCompletions) scanned = ScanCompletionRequest(hreq.body);
  if (scanned.has_value()) {
    req = std::move(*scanned);
  } else {
    try {
      body = ojson::parse(hreq.body);
    } catch (const ojson::exception& e) {
      return reject(ErrorResponse(400, "invalid_request_error",
                                  absl::StrCat("request body is not valid JSON: ", e.what())));
    }
    req = api::ParseCompletionRequestJson(body, endpoint);
  }
  if (!req.ok()) {
    return reject(ErrorResponse(400, "invalid_request_error", std::string(req.status().message()),
                                "", 0, api::ErrorParam(req.status())));
  }
  // 3. Where it goes: unknown deployments and forbidden ones look the same (404).
  auto table = routes.Get();
  std::optional<RouteTarget> target = table->Resolve(req->model);
  if (!target || !MayUse(*principal, target->deployment->name)) {
    return reject(ErrorResponse(404, "invalid_request_error",
                                absl::StrCat("The model '", req->model, "' does not exist"),
                                "model_not_found", 0, "model"));
  }
  // 4. Quota: reserve the prompt estimate plus max_tokens now, settle with the real count later.
  const std::string prefix_text = PrefixText(*req);
  const int64_t max_tokens = req->max_tokens ? *req->max_tokens : opt.default_max_tokens;
  const int64_t prompt_estimate =
      req->prompt_is_tokens ? static_cast<int64_t>(req->prompt_tokens.size())
                            : static_cast<int64_t>(prefix_text.size() / 4 + 1);
  const int64_t reserve = (max_tokens * std::max<int32_t>(1, req->n)) + prompt_estimate;
  quota::QuotaDecision qd = quotas.Admit(*principal, reserve, absl::Now());
  if (!qd.ok) {
    {
      std::lock_guard lock(metrics.mu);
      metrics.quota_rejections[std::string(quota::QuotaLimitLabel(qd.limit))]++;
    }
    return reject(ErrorResponse(
        429, "rate_limit_exceeded",
        absl::StrCat("Rate limit reached: ", std::string(quota::QuotaLimitName(qd.limit)), ". Retry after ",
                     qd.retry_after_s, "s."),
        "rate_limit_exceeded", static_cast<int>(std::max<int64_t>(1, qd.retry_after_s))));
  }
  retry_budget->RecordRequest(NowS());

  // 5. Proxy. The call's state lives in its environment (one allocation), and the callbacks
  // capture only `this` and a pointer to it (small enough for std::function to hold without an
  // allocation of its own); the environment outlives every call of them (ProxyCall holds it).
  const BalancerConfig& bc = opt.config.balancer;
  const LimitsConfig& lim = opt.config.limits;
  auto env = std::make_shared<CallEnv>();
  CallEnv* e = env.get();
  CallState* st = &env->st;
  st->table = std::move(table);  // holds the snapshot `dep` points into while the request lives
  st->dep = target->deployment;
  st->outliers = Outliers(st->dep->name);
  st->adapter = target->adapter;
  st->prefix_keys = PrefixKeys(prefix_text, bc.prefix_block_chars, bc.prefix_max_blocks);
  st->est_tokens = reserve;
  st->request_id = NewRequestId();
  st->principal = std::move(*principal);
  st->reservation = std::move(qd.reservation);
  st->ep = ep;
  st->stream = req->stream;
  env->client = client.get();
  // Retries, migrations after them, and the hedge.
  env->max_attempts = 1 + std::max(lim.retries, 0) + 3 + (lim.hedge_after_ms > 0 ? 1 : 0);
  env->stream_timeouts = {lim.upstream_connect_timeout_s, lim.upstream_first_byte_timeout_s,
                          lim.upstream_stall_timeout_s};
  env->unary_timeouts = {lim.upstream_connect_timeout_s, 0, lim.upstream_stall_timeout_s * 40};
  env->pick = [this, st](const std::vector<std::string>& ex) -> std::optional<RouteChoice> {
    if (!st->dep->replicas.empty()) {
      return Pick(*st->dep, st->adapter, st->prefix_keys, st->est_tokens, ex, st->outliers.get());
    }
    // No replica in the request's snapshot (scale from zero): the current table may have one.
    auto now = routes.Get();
    const DeploymentConfig* d = now->FindDeployment(st->dep->name);
    if (d == nullptr) return std::nullopt;
    return Pick(*d, st->adapter, st->prefix_keys, st->est_tokens, ex, st->outliers.get());
  };
  env->on_attempt_start = [this, st](const RouteChoice& c) {
    metrics.attempts++;
    std::shared_ptr<ReplicaRuntime> rt;
    {
      std::lock_guard lock(st->tried_mu);
      auto it = st->tried.find(c.replica_id);
      if (it != st->tried.end()) rt = it->second.rt;
    }
    if (!rt) rt = Runtime(c.replica_id);
    if (rt) {
      rt->outstanding_requests++;
      rt->outstanding_tokens += st->est_tokens;
      const bool acquired = rt->breaker.TryAcquire(NowS());
      std::lock_guard lock(st->tried_mu);
      st->tried[c.replica_id] = {rt, acquired};
    }
  };
  env->on_attempt_end = [this, st](const RouteChoice& c, AttemptResult r) {
    const double now = NowS();
    std::shared_ptr<ReplicaRuntime> rt;
    bool acquired = false;
    {
      std::lock_guard lock(st->tried_mu);
      auto it = st->tried.find(c.replica_id);
      if (it != st->tried.end()) {
        rt = it->second.rt;
        acquired = it->second.breaker_acquired;
      }
    }
    if (rt) {
      rt->outstanding_requests--;
      rt->outstanding_tokens -= st->est_tokens;
      if (acquired) {
        if (r == AttemptResult::kCancelled) {
          rt->breaker.Cancel();
        } else {
          rt->breaker.Release(r == AttemptResult::kOk || r == AttemptResult::kOverloaded, now);
        }
      }
    }
    const std::shared_ptr<OutlierDetector>& od = st->outliers;
    if (r == AttemptResult::kFailed || r == AttemptResult::kTimedOut) {
      metrics.upstream_failures++;
      if (od) od->RecordFailure(c.replica_id, now);
    } else if (r == AttemptResult::kOk && od) {
      od->RecordSuccess(c.replica_id, now);
    }
  };
  env->may_retry = [this] { return retry_budget->TryRetry(NowS()); };
  env->hedge_after_s = lim.hedge_after_ms / 1000.0;
  env->holds = holds.get();
  env->deployment = st->dep->name;
  env->finish = [this, e](const ProxyOutcome& o, std::function<void()> done) {
    CallState* st = &e->st;
    UsageRecord rec;
    rec.request_id = st->request_id;
    rec.tenant = st->principal.tenant;
    rec.key_id = st->principal.key_id;
    rec.deployment = st->dep->name;
    rec.adapter = st->adapter;
    rec.replica = o.replica;
    rec.provider = o.provider;
    rec.prompt_tokens = o.prompt_tokens;
    rec.cached_tokens = o.cached_tokens;
    rec.completion_tokens = o.completion_tokens;
    rec.status = o.status;
    rec.ttft_ms = o.ttft_ms;
    rec.duration_ms = o.duration_ms;
    rec.time_unix_ms = absl::ToUnixMillis(absl::Now());
    metrics.prompt_tokens += o.prompt_tokens;
    metrics.completion_tokens += o.completion_tokens;
    metrics.cached_tokens += o.cached_tokens;
    metrics.retries += std::max(0, o.attempts - 1 - o.migrations - o.hedges);
    metrics.migrations += o.migrations;
    metrics.hedges += o.hedges;
    metrics.duration.Observe(o.duration_ms / 1000);
    if (o.ttft_ms > 0) metrics.ttft.Observe(o.ttft_ms / 1000);
    CountRequest(st->ep, o.status);
    if (!o.replica.empty() && o.ttft_ms > 0) {
      if (ReplicaRuntime* rt = st->TriedRuntime(o.replica)) {
        std::lock_guard lock(rt->mu);
        rt->ttft.Add(o.ttft_ms, NowS());
        if (st->stream && o.completion_tokens > 1) {
          rt->itl.Add((o.duration_ms - o.ttft_ms) / static_cast<double>(o.completion_tokens - 1),
                      NowS());
        }
      }
    }
    const bool billable = o.prompt_tokens > 0 || o.completion_tokens > 0;
    // The usage record is made durable (a group commit on the WAL's writer thread) before the
    // final bytes go out; nothing here blocks the calling I/O thread. The call may be gone by
    // then: `complete` keeps its state.
    auto complete = [this, keep = e->shared_from_this(), rec, billable,
                     done = std::move(done)](absl::Status s) {
      CallState* st = &keep->st;
      if (!s.ok()) {
        metrics.ledger_errors++;
        std::fprintf(stderr, "weft gateway: ledger append failed for %s: %s\n",
                     rec.request_id.c_str(), std::string(s.message()).c_str());
      }
      if (billable) {
        quotas.Settle(st->reservation, rec.prompt_tokens + rec.completion_tokens, absl::Now());
      } else {
        quotas.Release(st->reservation);
      }
      done();
      if (!opt.access_log) return;
      // Structured access log: one JSON line per request.
      ojson line = {{"ts_ms", rec.time_unix_ms}, {"request_id", rec.request_id},
                    {"tenant", rec.tenant},      {"key_id", rec.key_id},
                    {"deployment", rec.deployment}, {"adapter", rec.adapter},
                    {"replica", rec.replica},    {"status", rec.status},
                    {"prompt_tokens", rec.prompt_tokens},
                    {"completion_tokens", rec.completion_tokens},
                    {"ttft_ms", rec.ttft_ms},    {"duration_ms", rec.duration_ms}};
      std::fprintf(stderr, "%s\n", line.dump().c_str());
    };
    if (billable || rec.status == 200) {
      opt.ledger->AppendAsync(rec, std::move(complete));
    } else {
      complete(absl::OkStatus());
    }
  };

  ProxyRequest pr;
  pr.endpoint = endpoint;
  pr.path = endpoint == api::Endpoint::kChatCompletions ? "/v1/chat/completions" : "/v1/completions";
  pr.body = std::move(body);
  pr.raw_body = hreq.body;
  pr.stream = st->stream;
  pr.client_wants_usage = req->include_usage;
  pr.client_wants_token_ids = req->return_token_ids;
  pr.client_model = std::move(req->model);
  pr.adapter = st->adapter;
  pr.resumable = req->n == 1;
  for (const char* h : {"traceparent", "tracestate", "x-request-id"}) {
    std::string_view v = hreq.Header(h);
    if (!v.empty()) pr.pass_headers.emplace_back(h, std::string(v));
  }
  pr.pass_headers.emplace_back("x-weft-request-id", st->request_id);
  pr.response_headers.emplace_back("x-weft-request-id", st->request_id);
  ProxyCall::Start(std::move(env), std::move(pr), std::move(w));
}

std::string Gateway::Impl::RenderMetrics() {
  std::string out;
  auto scalar = [&](const char* name, const char* type, const char* help, double v) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ",
                    PrometheusNumber(v), "\n");
  };
  {
    std::lock_guard lock(metrics.mu);
    absl::StrAppend(&out,
                    "# HELP weft_gateway_requests_total Requests answered, by endpoint and status.\n"
                    "# TYPE weft_gateway_requests_total counter\n");
    std::map<std::pair<std::string, int>, uint64_t> requests = metrics.requests;
    for (size_t e = 0; e < Metrics::kEndpoints.size(); ++e) {
      for (int i = 0; i < 500; ++i) {
        const uint64_t n = metrics.by_status[e][i].load(std::memory_order_relaxed);
        if (n > 0) requests[{std::string(Metrics::kEndpoints[e]), 100 + i}] += n;
      }
    }
    for (const auto& [k, n] : requests) {
      absl::StrAppend(&out, "weft_gateway_requests_total{endpoint=\"", k.first, "\",status=\"",
                      k.second, "\"} ", n, "\n");
    }
    absl::StrAppend(&out,
                    "# HELP weft_gateway_quota_rejections_total Requests refused by a quota.\n"
                    "# TYPE weft_gateway_quota_rejections_total counter\n");
    for (const auto& [k, n] : metrics.quota_rejections) {
      absl::StrAppend(&out, "weft_gateway_quota_rejections_total{limit=\"", k, "\"} ", n, "\n");
    }
  }
  scalar("weft_gateway_prompt_tokens_total", "counter", "Prompt tokens billed.",
         static_cast<double>(metrics.prompt_tokens.load()));
  scalar("weft_gateway_completion_tokens_total", "counter", "Completion tokens billed.",
         static_cast<double>(metrics.completion_tokens.load()));
  scalar("weft_gateway_cached_tokens_total", "counter", "Prompt tokens served from prefix caches.",
         static_cast<double>(metrics.cached_tokens.load()));
  scalar("weft_gateway_upstream_attempts_total", "counter", "Requests sent to replicas.",
         static_cast<double>(metrics.attempts.load()));
  scalar("weft_gateway_retries_total", "counter", "Attempts retried before the first byte.",
         static_cast<double>(metrics.retries.load()));
  scalar("weft_gateway_migrations_total", "counter", "Streams moved to another replica.",
         static_cast<double>(metrics.migrations.load()));
  scalar("weft_gateway_hedges_total", "counter",
         "Second attempts raced against a slow first byte (hedging).",
         static_cast<double>(metrics.hedges.load()));
  scalar("weft_gateway_upstream_failures_total", "counter",
         "Attempts that failed (connect, reset, stall, 5xx).",
         static_cast<double>(metrics.upstream_failures.load()));
  scalar("weft_gateway_auth_failures_total", "counter", "Requests with a missing or bad key.",
         static_cast<double>(metrics.auth_failures.load()));
  int64_t held = 0;
  if (holds) {
    for (const auto& [name, n] : holds->Held()) held += n;
  }
  scalar("weft_gateway_held_requests", "gauge",
         "Requests waiting for a deployment with no ready replica (scale from zero).",
         static_cast<double>(held));
  scalar("weft_gateway_ledger_errors_total", "counter", "Usage records that failed to append.",
         static_cast<double>(metrics.ledger_errors.load()));
  int64_t ejections = 0;
  {
    std::lock_guard lock(replicas_mu);
    for (const auto& [name, od] : outliers) ejections += od->ejections_total();
    absl::StrAppend(&out,
                    "# HELP weft_gateway_replica_outstanding_requests Requests in flight per "
                    "replica.\n# TYPE weft_gateway_replica_outstanding_requests gauge\n");
    for (const auto& [id, rt] : replicas) {
      absl::StrAppend(&out, "weft_gateway_replica_outstanding_requests{replica=\"", id, "\"} ",
                      rt->outstanding_requests.load(), "\n");
    }
    absl::StrAppend(&out,
                    "# HELP weft_gateway_replica_healthy 1 when active checks pass.\n"
                    "# TYPE weft_gateway_replica_healthy gauge\n");
    for (const auto& [id, rt] : replicas) {
      std::lock_guard l2(rt->mu);
      absl::StrAppend(&out, "weft_gateway_replica_healthy{replica=\"", id, "\"} ",
                      rt->healthy ? 1 : 0, "\n");
    }
  }
  scalar("weft_gateway_ejections_total", "counter", "Replicas ejected by outlier detection.",
         static_cast<double>(ejections));
  metrics.duration.Render("weft_gateway_request_duration_seconds",
                          "Gateway receive to last byte.", &out);
  metrics.ttft.Render("weft_gateway_ttft_seconds", "Gateway receive to first token sent.", &out);
  return out;
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gateway::~Gateway() { Stop(0); }

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options) {
  if (!options.keys) return absl::InvalidArgumentError("gateway: no key store");
  if (!options.ledger) return absl::InvalidArgumentError("gateway: no ledger");
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  const GatewayConfig& c = impl->opt.config;
  WEFT_ASSIGN_OR_RETURN(impl->balancer, MakeBalancer(c.balancer));
  impl->retry_budget = std::make_unique<RetryBudget>(
      RetryBudgetOptions{c.limits.retry_budget_ratio, c.limits.retry_budget_min_per_s, 10});
  // Quota counters survive restarts: replay this month's (and the last minute's) usage.
  const absl::Time now = absl::Now();
  const absl::CivilSecond cs = absl::ToCivilSecond(now, absl::UTCTimeZone());
  const absl::Time month_start =
      absl::FromCivil(absl::CivilMonth(cs.year(), cs.month()), absl::UTCTimeZone());
  const absl::Time since = std::min(month_start, now - absl::Minutes(2));
  Impl* raw = impl.get();
  WEFT_RETURN_IF_ERROR(raw->opt.ledger->ScanAll(
      absl::ToUnixMillis(since), [raw](const UsageRecord& r) {
        raw->quotas.Replay(r.tenant, r.key_id, r.prompt_tokens + r.completion_tokens,
                           absl::FromUnixMillis(r.time_unix_ms));
      }));
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

absl::Status Gateway::Start() {
  Impl& g = *impl_;
  const GatewayConfig& c = g.opt.config;
  g.io = std::make_unique<http::IoContextPool>(std::max(1, c.io_threads), c.io_cpu_affinity);
  g.io->Start();
  upstream::ClientOptions co;
  co.io_contexts = g.io->contexts();
  g.client = std::make_unique<upstream::UpstreamClient>(co);
  // Scale from zero: requests for a deployment with no ready replica wait for one (before the
  // routes start: their first table already releases them), and control hears of them.
  if (!c.routes.control_url.empty()) {
    DemandReporterOptions dro;
    dro.control_url = c.routes.control_url;
    dro.bearer_token = g.opt.control_token;
    WEFT_ASSIGN_OR_RETURN(g.demand, DemandReporter::Create(g.client.get(), std::move(dro)));
  }
  HoldQueueOptions ho;
  ho.max_held_per_deployment = c.limits.max_held_per_deployment;
  ho.hold_timeout_s = c.limits.hold_timeout_s;
  ho.on_demand = [&g](const std::map<std::string, int64_t>& held) {
    if (g.demand) g.demand->Report(held);
  };
  g.holds = std::make_unique<HoldQueue>(std::move(ho));
  upstream::LoadPollerOptions po;
  po.interval_s = c.health.load_poll_interval_s;
  po.timeouts = upstream::Timeouts{c.health.timeout_s, c.health.timeout_s, c.health.timeout_s};
  g.poller = std::make_unique<upstream::LoadPoller>(
      g.client.get(), po,
      [&g](const std::string& id, absl::StatusOr<api::LoadReport> r, std::chrono::microseconds) {
        g.OnLoadReport(id, std::move(r));
      });
  if (!g.opt.routes) {
    g.opt.routes = std::make_unique<StaticRouteSource>(c.deployments, StaticRouteSourceOptions{});
  }
  WEFT_RETURN_IF_ERROR(
      g.opt.routes->Start([&g](std::shared_ptr<const RouteTable> t) { g.OnRoutes(std::move(t)); }));
  g.poller->Start();

  http::ServerOptions so;
  so.host = c.listen_host;
  so.port = c.listen_port;
  so.io_contexts = g.io->contexts();
  so.max_body_bytes = c.limits.max_body_bytes;
  so.header_timeout_s = c.limits.header_timeout_s;
  so.idle_timeout_s = c.limits.idle_timeout_s;
  if (c.tls) so.tls = http::TlsOptions{.cert_file = c.tls->cert, .key_file = c.tls->key};
  so.error_response = [](int status, std::string message) {
    return ErrorResponse(status, "invalid_request_error", std::move(message));
  };
  g.server = std::make_unique<http::HttpServer>(so);
  g.server->Handle("POST", "/v1/completions",
                   [&g](const http::Request& r, std::shared_ptr<http::ResponseWriter> w) {
                     g.HandleCompletion(api::Endpoint::kCompletions, r, std::move(w));
                   });
  g.server->Handle("POST", "/v1/chat/completions",
                   [&g](const http::Request& r, std::shared_ptr<http::ResponseWriter> w) {
                     g.HandleCompletion(api::Endpoint::kChatCompletions, r, std::move(w));
                   });
  g.server->Handle("GET", "/v1/models",
                   [&g](const http::Request& r, std::shared_ptr<http::ResponseWriter> w) {
                     g.HandleModels(r, std::move(w));
                   });
  g.server->Handle("GET", "/health",
                   [&g](const http::Request&, std::shared_ptr<http::ResponseWriter> w) {
                     http::Response r;
                     r.status = g.stopped.load() ? 503 : 200;
                     r.body = g.stopped.load() ? R"({"status":"draining"})" : R"({"status":"ok"})";
                     w->Respond(std::move(r));
                   });
  g.server->Handle("GET", "/metrics",
                   [&g](const http::Request&, std::shared_ptr<http::ResponseWriter> w) {
                     http::Response r;
                     r.content_type = "text/plain; version=0.0.4";
                     r.body = g.RenderMetrics();
                     w->Respond(std::move(r));
                   });
  if (!g.opt.admin_key.empty()) admin::RegisterAdminRoutes(*g.server, *g.opt.keys, g.opt.admin_key);
  return g.server->Start();
}

uint16_t Gateway::port() const { return impl_->server ? impl_->server->port() : 0; }

void Gateway::Stop(double deadline_s) {
  Impl& g = *impl_;
  if (g.stopped.exchange(true)) return;
  // Held requests get their 503 now, not at the end of the drain.
  if (g.holds) g.holds->Shutdown();
  if (g.server) g.server->Stop(deadline_s);  // in-flight calls finish (or are cut and billed)
  if (g.poller) g.poller->Stop();
  if (g.opt.routes) g.opt.routes->Stop();
  if (g.client) g.client->Shutdown();  // remaining upstream exchanges end: their calls finish
  if (g.opt.ledger) (void)g.opt.ledger->Close();  // drains queued appends (their calls finish)
  if (g.io) g.io->Stop();
}

}  // namespace weft::gateway
