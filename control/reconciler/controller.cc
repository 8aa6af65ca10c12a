// SPDX-License-Identifier: Apache-2.0
#include "control/reconciler/controller.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/reconciler/http_fetch.h"

namespace weft::control {

namespace {

std::optional<api::LoadReport> FetchLoadOverHttp(const std::string& endpoint) {
  FetchRequest req;
  req.url = endpoint + "/weft/v1/load";
  req.timeout_ms = 500;
  absl::StatusOr<FetchResponse> r = HttpFetch(req);
  if (!r.ok() || r->status != 200) return std::nullopt;
  absl::StatusOr<api::LoadReport> load = api::ParseLoadReport(r->body);
  if (!load.ok()) return std::nullopt;
  return *load;
}

ReplicaId RandomId(const std::string& deployment) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("%s-%08x", deployment, static_cast<uint32_t>(rng()));
}

}  // namespace

Controller::Controller(ControlStore* store, std::vector<ProviderEntry> providers,
                       ControllerOptions options)
    : store_(store), options_(std::move(options)) {
  for (ProviderEntry& e : providers) {
    ProviderRuntime p;
    p.entry = std::move(e);
    providers_.push_back(std::move(p));
  }
  if (!options_.fetch_load) options_.fetch_load = FetchLoadOverHttp;
  if (!options_.new_id) options_.new_id = RandomId;
}

Controller::~Controller() { Stop(); }

int64_t Controller::Now() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Controller::ProviderRuntime* Controller::FindProvider(const std::string& name) {
  for (ProviderRuntime& p : providers_) {
    if (p.entry.name == name) return &p;
  }
  return nullptr;
}

absl::Status Controller::Init() {
  return store_->Transaction([&](ControlTxn& txn) -> absl::Status {
    for (const ProviderRuntime& p : providers_) {
      auto existing = txn.Get<ProviderRecord>(p.entry.name);
      if (!existing.ok()) return existing.status();
      ProviderRecord rec;
      if (existing->has_value()) rec = **existing;
      rec.name = p.entry.name;
      rec.kind = p.entry.kind;
      rec.version = kAnyVersion;
      auto put = txn.Put<ProviderRecord>(std::move(rec));
      if (!put.ok()) return put.status();
    }
    return absl::OkStatus();
  });
}

absl::Status Controller::Event(const std::string& object, const std::string& message) {
  EventRecord e;
  e.object = object;
  e.message = message;
  return store_->AppendEvent(std::move(e)).status();
}

absl::Status Controller::AdjustCounters(const std::string& provider, int64_t successes,
                                        int64_t failures) {
  if (successes == 0 && failures == 0) return absl::OkStatus();
  return store_->Transaction([&](ControlTxn& txn) -> absl::Status {
    auto rec = txn.Get<ProviderRecord>(provider);
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) return absl::OkStatus();
    ProviderRecord r = **rec;
    r.successes += successes;
    r.failures += failures;
    return txn.Put<ProviderRecord>(std::move(r)).status();
  });
}

void Controller::RecordFailure(ProviderRuntime* p, int64_t now, const std::string& why) {
  if (p == nullptr) return;
  p->failures_ms.push_back(now);
  (void)AdjustCounters(p->entry.name, 0, 1);
  (void)why;
}

absl::StatusOr<Plan> Controller::Tick() {
  const int64_t now = Now();
  ticks_++;

  // 1. Observe the providers.
  for (ProviderRuntime& p : providers_) {
    p.health = p.entry.provider->Health();
    absl::StatusOr<std::vector<ReplicaStatus>> list = p.entry.provider->List();
    p.listed = list.ok();
    p.list = list.ok() ? std::move(*list) : std::vector<ReplicaStatus>{};
    if (!list.ok() && p.health.ok) p.health = {false, std::string(list.status().message())};
    absl::StatusOr<ProviderCapacity> cap = p.entry.provider->Capacity();
    p.capacity = cap.ok() ? std::optional<ProviderCapacity>(std::move(*cap)) : std::nullopt;
    std::erase_if(p.failures_ms, [&](int64_t t) { return now - t > options_.failure_window_ms; });
  }

  // 2. Read the store.
  std::vector<DeploymentRecord> deployments;
  std::vector<ReplicaRecord> replicas;
  std::vector<ProviderRecord> provider_records;
  absl::Status read = store_->Transaction([&](ControlTxn& txn) -> absl::Status {
    auto d = txn.List<DeploymentRecord>();
    if (!d.ok()) return d.status();
    auto r = txn.List<ReplicaRecord>();
    if (!r.ok()) return r.status();
    auto p = txn.List<ProviderRecord>();
    if (!p.ok()) return p.status();
    deployments = std::move(*d);
    replicas = std::move(*r);
    provider_records = std::move(*p);
    return absl::OkStatus();
  });
  if (!read.ok()) return read;

  // 3. Refresh replica phases from the providers.
  std::set<std::string> known_ids;
  for (ReplicaRecord& r : replicas) {
    known_ids.insert(r.id);
    if (r.phase == ReplicaPhase::kGone) continue;
    ProviderRuntime* p = FindProvider(r.provider);
    ReplicaRecord before = r;
    bool success = false, failure = false;
    if (p == nullptr) {
      if (IsLive(r.phase)) {
        r.phase = ReplicaPhase::kFailed;
        r.failure_reason = "unknown provider " + r.provider;
      } else if (r.phase == ReplicaPhase::kDraining) {
        r.phase = ReplicaPhase::kGone;
      }
    } else if (!p->listed) {
      if (IsLive(r.phase)) {
        r.phase = ReplicaPhase::kFailed;
        r.failure_reason = absl::StrCat("provider unreachable: ", p->health.reason);
        failure = true;
      }
    } else {
      const ReplicaStatus* st = nullptr;
      for (const ReplicaStatus& s : p->list) {
        if (s.id == r.id) st = &s;
      }
      if (st == nullptr) {
        if (IsLive(r.phase)) {
          r.phase = ReplicaPhase::kFailed;
          r.failure_reason = "vanished from its provider";
          failure = true;
        } else {
          r.phase = ReplicaPhase::kGone;  // draining or failed, and no longer held
        }
      } else {
        if (!st->endpoint.empty()) r.endpoint = st->endpoint;
        switch (st->phase) {
          case ReplicaPhase::kPending:
          case ReplicaPhase::kStarting:
            if (r.phase == ReplicaPhase::kPending) r.phase = ReplicaPhase::kStarting;
            break;
          case ReplicaPhase::kReady:
            if (r.phase == ReplicaPhase::kPending || r.phase == ReplicaPhase::kStarting) {
              r.phase = ReplicaPhase::kReady;
              success = true;
            }
            break;
          case ReplicaPhase::kFailed:
            if (IsLive(r.phase)) {
              r.phase = ReplicaPhase::kFailed;
              r.failure_reason = st->failure_reason.empty() ? "failed" : st->failure_reason;
              failure = true;
            }
            break;
          case ReplicaPhase::kDraining:
            r.phase = ReplicaPhase::kDraining;
            break;
          case ReplicaPhase::kGone:
            r.phase = ReplicaPhase::kGone;
            break;
        }
      }
    }
    if (r.phase == before.phase && r.endpoint == before.endpoint &&
        r.failure_reason == before.failure_reason) {
      continue;
    }
    absl::StatusOr<ReplicaRecord> put = store_->Put<ReplicaRecord>(r);
    if (!put.ok()) {
      r = before;  // someone else wrote it; next tick
      continue;
    }
    r = *put;
    if (success) {
      (void)AdjustCounters(r.provider, 1, 0);
      (void)Event("replica/" + r.id, absl::StrCat("ready at ", r.endpoint));
    }
    if (failure) {
      RecordFailure(p, now, r.failure_reason);
      (void)Event("replica/" + r.id, "failed: " + r.failure_reason);
    }
    if (r.phase == ReplicaPhase::kGone && before.phase != ReplicaPhase::kGone) {
      (void)Event("replica/" + r.id, "gone");
    }
  }
  // Replicas a provider holds that the store does not know (left over from a crash): terminate.
  for (ProviderRuntime& p : providers_) {
    for (const ReplicaStatus& s : p.list) {
      if (known_ids.count(s.id) || s.phase == ReplicaPhase::kDraining) continue;
      if (p.entry.provider->Terminate(s.id).ok()) {
        (void)Event("replica/" + s.id, "terminated: unknown to the store");
      }
    }
  }

  // 4. Deployments: specs, generations, autoscaling.
  std::vector<DesiredDeployment> desired;
  std::set<std::string> skipped;  // specs that do not parse: their replicas are left alone
  std::set<std::string> seen;
  for (const DeploymentRecord& d : deployments) {
    seen.insert(d.name);
    const size_t first = d.spec.find_first_not_of(" \t\r\n");
    absl::StatusOr<DeploymentSpec> spec = first != std::string::npos && d.spec[first] == '{'
                                              ? SpecFromJsonText(d.spec)
                                              : ParseDeploymentSpecYaml(d.spec, d.name);
    if (!spec.ok()) {
      skipped.insert(d.name);
      continue;
    }
    DeploymentState& st = deployments_[d.name];
    if (st.autoscaler == nullptr) {
      st.generation = d.generation;
      st.spec = *spec;
      st.autoscaler = std::make_unique<Autoscaler>(spec->autoscaling, spec->replicas);
      st.desired = spec->replicas.min;
      // A paused canary survives a restart through the stored status.
      const std::string failed = absl::StrCat(kCanaryStatusPrefix, " failed: ");
      if (const size_t at = d.status.find(failed); at != std::string::npos) {
        std::string reason = d.status.substr(at + failed.size());
        reason = reason.substr(0, reason.rfind("; rollout paused"));
        st.canary = {.generation = d.generation, .failed = std::move(reason)};
      }
    } else if (st.generation != d.generation) {
      if (!st.canary.failed.empty() || NeedsRollingUpdate(st.spec, *spec)) {
        st.canary = {};  // a new rollout, or a retry of a paused one
      } else if (st.canary.generation == st.generation) {
        st.canary.generation = d.generation;  // relabelled below: the canary goes on
      }
      if (!NeedsRollingUpdate(st.spec, *spec)) {
        // Relabel the replicas of the previous generation: nothing about them changes.
        for (ReplicaRecord& r : replicas) {
          if (r.deployment != d.name || r.spec_generation != st.generation) continue;
          ReplicaRecord updated = r;
          updated.spec_generation = d.generation;
          absl::StatusOr<ReplicaRecord> put = store_->Put<ReplicaRecord>(updated);
          if (put.ok()) r = *put;
        }
      }
      st.generation = d.generation;
      st.spec = *spec;
      st.autoscaler->UpdateSpec(spec->autoscaling, spec->replicas);
      st.model = {};  // a new generation fetches its model afresh
      if (options_.models != nullptr) options_.models->Retry(spec->model);
    }
    const int32_t floor = spec->autoscaling.scale_to_zero ? 0 : spec->replicas.min;
    st.desired = std::clamp(st.desired, floor, std::max(spec->replicas.max, floor));

    const int64_t period_ms = std::max<int64_t>(1, spec->autoscaling.evaluation_period_s) * 1000;
    const int64_t held = options_.held_requests ? options_.held_requests(d.name) : 0;
    const bool cold = held > 0 && st.desired == 0;  // scale from zero: no need to wait a period
    if (!d.deleted && (st.last_eval_ms < 0 || now - st.last_eval_ms >= period_ms || cold)) {
      st.last_eval_ms = now;
      AutoscalerInput in;
      in.now_ms = now;
      in.pending_requests = held;
      std::vector<api::LoadReport> loads;
      for (const ReplicaRecord& r : replicas) {
        if (r.deployment != d.name) continue;
        if (r.phase == ReplicaPhase::kReady) {
          in.ready_replicas++;
          if (std::optional<api::LoadReport> l = options_.fetch_load(r.endpoint)) {
            loads.push_back(*l);
          }
        } else if (r.phase == ReplicaPhase::kPending || r.phase == ReplicaPhase::kStarting) {
          in.starting_replicas++;
        }
      }
      in.loads = loads;
      in.ttft_p95_ms = DeploymentTtftP95(loads);
      ScaleDecision decision = st.autoscaler->Evaluate(in);
      const int32_t next = std::clamp(decision.desired, floor, std::max(spec->replicas.max, floor));
      if (next != st.desired) {
        (void)Event("deployment/" + d.name,
                    absl::StrCat("scale ", st.desired, " -> ", next, ": ", decision.reason));
        st.desired = next;
      }
    }
    desired.push_back({.name = d.name,
                       .generation = d.generation,
                       .spec = *spec,
                       .deleted = d.deleted,
                       .desired_replicas = st.desired,
                       .canary = st.canary});
  }
  std::erase_if(deployments_, [&](const auto& kv) { return !seen.count(kv.first); });

  // 5. Providers as the planner sees them.
  std::vector<ProviderState> states;
  for (ProviderRuntime& p : providers_) {
    ProviderState s;
    s.view.name = p.entry.name;
    s.view.kind = p.entry.kind;
    int64_t successes = 0, failures = 0;
    for (const ProviderRecord& rec : provider_records) {
      if (rec.name != p.entry.name) continue;
      s.view.degraded = rec.degraded;
      successes = rec.successes;
      failures = rec.failures;
    }
    s.view.reliability =
        static_cast<double>(successes + 1) / static_cast<double>(successes + failures + 2);
    if (p.capacity) {
      s.view.regions = p.capacity->regions;
      double price = 0;
      bool first = true;
      for (const AcceleratorSlots& a : p.capacity->accelerators) {
        s.view.accelerators.push_back(a.kind);
        s.view.free_slots += a.free;
        if (first || a.usd_per_hour < price) price = a.usd_per_hour;
        first = false;
      }
      s.view.usd_per_hour = price;
    }
    s.healthy = p.health.ok && p.listed && p.capacity.has_value();
    s.reason = p.health.reason;
    s.recent_failures = static_cast<int32_t>(p.failures_ms.size());
    states.push_back(std::move(s));
  }

  std::vector<ReplicaRecord> planned;
  for (const ReplicaRecord& r : replicas) {
    if (!skipped.count(r.deployment)) planned.push_back(r);
  }
  Plan plan = PlanReconcile(desired, planned, states, options_.new_id, options_.plan, now);

  // 5b. Models: new replicas only for deployments whose model resolves to a local path.
  std::map<std::string, std::string> model_paths;
  std::set<std::string> blocked;
  for (const ProvisionAction& a : plan.provision) {
    if (model_paths.count(a.deployment) || blocked.count(a.deployment)) continue;
    for (const DesiredDeployment& x : desired) {
      if (x.name != a.deployment) continue;
      std::string stored_status;
      for (const DeploymentRecord& rec : deployments) {
        if (rec.name == x.name) stored_status = rec.status;
      }
      std::string why;
      if (std::optional<std::string> path = GateModel(x, stored_status, now, &why)) {
        model_paths[x.name] = *path;
        break;
      }
      blocked.insert(x.name);
      for (auto& [name, line] : plan.status) {
        if (name == x.name) line = line.empty() ? why : absl::StrCat(why, "; ", line);
      }
    }
  }
  std::erase_if(plan.provision,
                [&](const ProvisionAction& a) { return blocked.count(a.deployment) > 0; });

  // 6. Apply.
  for (const MarkDegradedAction& a : plan.degrade) {
    (void)store_->Transaction([&](ControlTxn& txn) -> absl::Status {
      auto rec = txn.Get<ProviderRecord>(a.provider);
      if (!rec.ok()) return rec.status();
      if (!rec->has_value()) return absl::OkStatus();
      ProviderRecord r = **rec;
      r.degraded = a.degraded;
      return txn.Put<ProviderRecord>(std::move(r)).status();
    });
    (void)Event("provider/" + a.provider,
                absl::StrCat(a.degraded ? "degraded: " : "no longer degraded: ", a.reason));
  }
  for (const ReplicaId& id : plan.forget) {
    (void)store_->Delete<ReplicaRecord>(id);
  }
  for (const TerminateAction& a : plan.terminate) {
    ProviderRuntime* p = FindProvider(a.provider);
    if (p != nullptr && !p->entry.provider->Terminate(a.replica).ok()) continue;  // retried
    for (ReplicaRecord& r : replicas) {
      if (r.id != a.replica) continue;
      ReplicaRecord updated = r;
      updated.phase = p == nullptr ? ReplicaPhase::kGone : ReplicaPhase::kDraining;
      if (store_->Put<ReplicaRecord>(updated).ok()) {
        (void)Event("replica/" + a.replica, "terminating: " + a.reason);
      }
    }
  }
  for (const ProvisionAction& a : plan.provision) {
    const DesiredDeployment* d = nullptr;
    for (const DesiredDeployment& x : desired) {
      if (x.name == a.deployment) d = &x;
    }
    ProviderRuntime* p = FindProvider(a.provider);
    if (d == nullptr || p == nullptr) continue;
    ReplicaRecord rec;
    rec.id = a.replica;
    rec.deployment = a.deployment;
    rec.provider = a.provider;
    rec.phase = ReplicaPhase::kPending;
    rec.spec_generation = a.generation;
    rec.version = kCreate;
    absl::StatusOr<ReplicaRecord> created = store_->Put<ReplicaRecord>(rec);
    if (!created.ok()) continue;
    rec = *created;

    ReplicaSpec spec;
    spec.id = a.replica;
    spec.deployment = a.deployment;
    absl::StatusOr<std::string> model =
        model_paths.count(a.deployment) ? model_paths[a.deployment] : d->spec.model.uri;
    for (const auto& [name, src] : d->spec.adapters) spec.adapters[name] = src.uri;
    spec.engine.threads = d->spec.engine.threads;
    spec.engine.ctx = d->spec.engine.ctx;
    spec.accelerator = d->spec.accelerator.kind;
    spec.accelerator_count = d->spec.accelerator.count;
    absl::StatusOr<ReplicaStatus> st =
        model.ok() ? (spec.model_path = *model, p->entry.provider->Provision(spec))
                   : absl::StatusOr<ReplicaStatus>(model.status());
    if (st.ok()) {
      rec.phase = st->phase == ReplicaPhase::kReady ? ReplicaPhase::kStarting : st->phase;
      if (rec.phase == ReplicaPhase::kPending) rec.phase = ReplicaPhase::kStarting;
      rec.endpoint = st->endpoint;
      (void)Event("replica/" + a.replica,
                  absl::StrCat("provisioned on ", a.provider, " (generation ", a.generation, ")"));
    } else {
      rec.phase = ReplicaPhase::kFailed;
      rec.failure_reason = absl::StrCat("provision: ", st.status().message());
      RecordFailure(p, now, rec.failure_reason);
      (void)Event("replica/" + a.replica, rec.failure_reason);
    }
    (void)store_->Put<ReplicaRecord>(rec);
  }
  for (const std::string& name : plan.remove_deployments) {
    if (store_->Delete<DeploymentRecord>(name).ok()) {
      (void)Event("deployment/" + name, "removed");
      deployments_.erase(name);
    }
  }
  for (const auto& [name, next] : plan.canary) {
    auto it = deployments_.find(name);
    if (it == deployments_.end()) continue;
    CanaryState& prev = it->second.canary;
    const std::string object = "deployment/" + name;
    const bool same = prev.generation == next.generation;
    if (!next.failed.empty() && (!same || prev.failed != next.failed)) {
      (void)Event(object, absl::StrCat(kCanaryStatusPrefix, " failed: ", next.failed,
                                       "; rollout paused until the spec changes"));
    } else if (next.failed.empty() && !next.done && next.ready_since_ms >= 0 &&
               (!same || prev.ready_since_ms < 0)) {
      (void)Event(object, absl::StrCat(kCanaryStatusPrefix, " ready; holding ",
                                       it->second.spec.rollout.canary_hold_s, " s"));
    } else if (next.done && same && !prev.done) {
      (void)Event(object, absl::StrCat(kCanaryStatusPrefix, " passed; rolling on"));
    }
    prev = next;
  }
  for (const auto& [name, status] : plan.status) {
    for (const DeploymentRecord& d : deployments) {
      if (d.name != name || d.status == status) continue;
      DeploymentRecord updated = d;
      updated.status = status;
      (void)store_->Put<DeploymentRecord>(std::move(updated));
    }
  }
  return plan;
}

std::optional<std::string> Controller::GateModel(const DesiredDeployment& d,
                                                 const std::string& stored_status, int64_t now,
                                                 std::string* status) {
  if (options_.models == nullptr) return d.spec.model.uri;
  auto it = deployments_.find(d.name);
  if (it == deployments_.end()) return d.spec.model.uri;
  ModelGate& g = it->second.model;
  const std::string object = "deployment/" + d.name;
  if (g.failed) {
    const bool stored_failed = stored_status.starts_with("Failed");
    g.failed_stored = g.failed_stored || stored_failed;
    if (!g.failed_stored || stored_failed) {
      *status = g.status;
      return std::nullopt;
    }
    // Someone replaced our "Failed: ..." status (an unchanged `weft deploy`): try again.
    (void)Event(object, absl::StrCat("retrying model ", d.spec.model.uri, " (requested)"));
    g = {};
    options_.models->Retry(d.spec.model);
  }
  if (g.waiting) {
    if (now < g.retry_at_ms) {
      *status = g.status;
      return std::nullopt;
    }
    g.waiting = false;
    options_.models->Retry(d.spec.model);
  }
  const ModelResolution r = options_.models->Resolve(d.spec.model);
  const int32_t attempts = std::max(1, options_.model_retry.attempts);
  switch (r.state) {
    case ModelState::kReady:
      g.failures = 0;
      return r.path;
    case ModelState::kPending:
      *status = absl::StrCat("Pending: fetching model ", d.spec.model.uri);
      if (r.bytes_done > 0 || r.bytes_total > 0) {
        absl::StrAppendFormat(status, " (%.1f", static_cast<double>(r.bytes_done) / (1 << 20));
        if (r.bytes_total > 0) {
          absl::StrAppendFormat(status, " of %.1f", static_cast<double>(r.bytes_total) / (1 << 20));
        }
        absl::StrAppend(status, " MiB)");
      }
      return std::nullopt;
    case ModelState::kFailed:
      break;
  }
  g.failures++;
  (void)Event(object, absl::StrCat("model fetch failed (attempt ", g.failures, " of ", attempts,
                                   "): ", r.reason));
  if (g.failures >= attempts) {
    g.failed = true;
    g.status = absl::StrCat("Failed: ", r.reason, " (gave up after ", g.failures,
                            g.failures == 1 ? " attempt" : " attempts",
                            "; fix the source and `weft deploy` again to retry)");
    (void)Event(object, g.status);
  } else {
    int64_t backoff = options_.model_retry.backoff_ms;
    for (int32_t i = 1; i < g.failures && backoff < options_.model_retry.max_backoff_ms; ++i) {
      backoff *= 2;
    }
    backoff = std::min(backoff, options_.model_retry.max_backoff_ms);
    g.waiting = true;
    g.retry_at_ms = now + backoff;
    g.status = absl::StrFormat("Retrying: %s (attempt %d of %d failed; next in %.0f s)", r.reason,
                               g.failures, attempts, static_cast<double>(backoff) / 1000.0);
  }
  *status = g.status;
  return std::nullopt;
}

void Controller::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Controller::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Controller::Loop() {
  const auto interval = std::chrono::duration<double>(options_.tick_interval_s);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    (void)Tick();
    lock.lock();
    cv_.wait_for(lock, interval, [&] { return stop_; });
  }
}

}  // namespace weft::control
