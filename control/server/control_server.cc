// SPDX-License-Identifier: Apache-2.0
#include "control/server/control_server.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/deployments/deployment_spec.h"
#include "control/reconciler/plan.h"
#include "control/server/control_api.h"

namespace weft::control {

namespace {

using json = nlohmann::ordered_json;

http::Response Json(int status, const json& body) {
  http::Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// {"error": {"message": ..., "code": N, "field": "replicas.min"}}; the field is the path before
// the first ": " of the message (after an optional "source:line: " prefix) when it looks like one.
http::Response Error(int status, std::string message) {
  json err = {{"message", message}, {"code", status}};
  std::string rest = message;
  // Skip "<source>:<line>: ".
  if (size_t p = rest.find(": "); p != std::string::npos) {
    std::string head = rest.substr(0, p);
    size_t colon = head.rfind(':');
    int64_t line = 0;
    if (colon != std::string::npos && absl::SimpleAtoi(head.substr(colon + 1), &line)) {
      rest = rest.substr(p + 2);
    }
  }
  if (size_t p = rest.find(": "); p != std::string::npos) {
    std::string field = rest.substr(0, p);
    if (!field.empty() && field.find(' ') == std::string::npos) err["field"] = field;
  }
  return Json(status, {{"error", err}});
}

int HttpStatusOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      if (absl::SimpleHexAtoi(std::string(s.substr(i + 1, 2)), &v)) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += s[i];
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> out;
  std::vector<std::string_view> parts;
  for (size_t start = 0; start <= query.size();) {
    size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    if (amp > start) parts.push_back(query.substr(start, amp - start));
    start = amp + 1;
  }
  for (std::string_view part : parts) {
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      out[PercentDecode(part)] = "";
    } else {
      out[PercentDecode(part.substr(0, eq))] = PercentDecode(part.substr(eq + 1));
    }
  }
  return out;
}

absl::StatusOr<DeploymentSpec> ParseSpecText(std::string_view text, std::string_view source) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') return SpecFromJsonText(text);
  return ParseDeploymentSpecYaml(text, source);
}

std::string Canonical(const DeploymentSpec& spec) { return SpecToJson(spec).dump(); }

json ReplicaJson(const ReplicaRecord& r) {
  return {{"id", r.id},
          {"deployment", r.deployment},
          {"provider", r.provider},
          {"phase", std::string(ReplicaPhaseName(r.phase))},
          {"endpoint", r.endpoint},
          {"generation", r.spec_generation},
          {"failure_reason", r.failure_reason},
          {"created_ms", r.created_ms},
          {"updated_ms", r.updated_ms}};
}

json EventJson(const EventRecord& e) {
  return {{"id", e.id}, {"time_ms", e.time_ms}, {"object", e.object}, {"message", e.message}};
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

absl::StatusOr<nlohmann::ordered_json> BuildRouteTableJson(ControlStore& store) {
  std::vector<DeploymentRecord> deployments;
  std::vector<ReplicaRecord> replicas;
  absl::Status s = store.Transaction([&](ControlTxn& txn) -> absl::Status {
    auto d = txn.List<DeploymentRecord>();
    if (!d.ok()) return d.status();
    auto r = txn.List<ReplicaRecord>();
    if (!r.ok()) return r.status();
    deployments = std::move(*d);
    replicas = std::move(*r);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  json out_deployments = json::array();
  for (const DeploymentRecord& d : deployments) {
    if (d.deleted) continue;
    absl::StatusOr<DeploymentSpec> spec = ParseSpecText(d.spec, d.name);
    json adapters = json::array();
    json preferred_providers = json::array();
    json preferred_regions = json::array();
    if (spec.ok()) {
      for (const auto& [name, src] : spec->adapters) adapters.push_back(name);
      for (const std::string& p : spec->placement.providers) preferred_providers.push_back(p);
      for (const std::string& r : spec->placement.regions) preferred_regions.push_back(r);
    }
    // During a canary rollout the new generation's replicas get weights for about its share.
    const std::map<ReplicaId, double> weights = RouteWeights(
        d.name, d.generation, spec.ok() ? spec->rollout.canary_percent : 0, d.status, replicas);
    json reps = json::array();
    for (const ReplicaRecord& r : replicas) {
      if (r.deployment != d.name || r.phase != ReplicaPhase::kReady || r.endpoint.empty()) continue;
      const auto w = weights.find(r.id);
      reps.push_back({{"id", r.id},
                      {"url", r.endpoint},
                      {"provider", r.provider},
                      {"region", ""},
                      {"state", "ready"},
                      {"weight", w == weights.end() ? 1.0 : w->second}});
    }
    out_deployments.push_back({{"name", d.name},
                               {"replicas", std::move(reps)},
                               {"adapters", std::move(adapters)},
                               {"aliases", json::object()},
                               {"preferred_providers", std::move(preferred_providers)},
                               {"preferred_regions", std::move(preferred_regions)}});
  }
  const std::string content = out_deployments.dump();
  return json{{"version", absl::StrFormat("%016x", Fnv1a(content))},
              {"deployments", std::move(out_deployments)}};
}

ControlServer::ControlServer(ControlStore* store, ControlServerOptions options)
    : store_(store), options_(std::move(options)), server_(options_.http) {
  Route("POST", "/v1/deployments", [this](const http::Request& r) { return CreateOrUpdate(r); });
  Route("GET", "/v1/deployments", [this](const http::Request&) { return ListDeployments(); });
  Route("GET", "/v1/deployments/{name}",
        [this](const http::Request& r) { return GetDeployment(r.params.at("name")); });
  Route("DELETE", "/v1/deployments/{name}",
        [this](const http::Request& r) { return DeleteDeployment(r.params.at("name")); });
  Route("POST", "/v1/deployments/{name}/scale",
        [this](const http::Request& r) { return Scale(r.params.at("name"), r.body); });
  Route("GET", "/v1/replicas", [this](const http::Request& r) { return ListReplicas(r); });
  Route("GET", "/v1/providers", [this](const http::Request&) { return ListProviders(); });
  Route("GET", "/v1/events", [this](const http::Request& r) { return ListEvents(r); });
  Route("GET", "/metrics", [this](const http::Request&) { return Metrics(); });
  Route("POST", "/weft/v1/demand", [this](const http::Request& r) { return Demand(r.body); });
  server_.Handle("GET", "/health", [this](const http::Request&, auto w) {
    const bool leader = !options_.is_leader || options_.is_leader();
    w->Respond(Json(200, {{"status", "ok"}, {"leader", leader}}));
  });
  for (const char* path : {"/weft/v1/routes", "/v1/routes"}) {
    server_.Handle("GET", path, [this](const http::Request& r, auto w) {
      if (!Authorized(r)) {
        w->Respond(Error(401, "missing or wrong bearer token"));
        return;
      }
      Watch(r, std::move(w));
    });
  }
}

ControlServer::~ControlServer() { Stop(); }

absl::Status ControlServer::Start() { return server_.Start(); }

void ControlServer::Stop() {
  std::list<Watcher> watchers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && watchers_.empty()) {
      // Already stopped (or stopping).
    }
    stopping_ = true;
    watchers.splice(watchers.end(), watchers_);
  }
  for (Watcher& w : watchers) {
    if (w.thread.joinable()) w.thread.join();
  }
  server_.Stop(1.0);
}

bool ControlServer::Authorized(const http::Request& req) const {
  if (options_.admin_token.empty()) return true;
  return req.Header("Authorization") == "Bearer " + options_.admin_token;
}

void ControlServer::Route(const std::string& method, const std::string& pattern,
                          std::function<http::Response(const http::Request&)> fn) {
  server_.Handle(method, pattern, [this, fn = std::move(fn)](const http::Request& r, auto w) {
    if (!Authorized(r)) {
      w->Respond(Error(401, "missing or wrong bearer token"));
      return;
    }
    w->Respond(fn(r));
  });
}

void ControlServer::Watch(const http::Request& req, std::shared_ptr<http::ResponseWriter> w) {
  std::map<std::string, std::string> q = ParseQuery(req.query);
  absl::StatusOr<json> table = BuildRouteTableJson(*store_);
  if (!table.ok()) {
    w->Respond(Error(HttpStatusOf(table.status()), std::string(table.status().message())));
    return;
  }
  const std::string version = (*table)["version"].get<std::string>();
  const bool watch = q.count("watch") && q["watch"] != "0" && q["watch"] != "false";
  if (!watch || q["version"] != version) {
    w->Respond(Json(200, *table));
    return;
  }
  double timeout_s = 30;
  if (q.count("timeout_s")) {
    if (!absl::SimpleAtod(q["timeout_s"], &timeout_s) || timeout_s < 0) {
      w->Respond(Error(400, "timeout_s: must be a number >= 0"));
      return;
    }
  }
  timeout_s = std::min(timeout_s, options_.max_watch_timeout_s);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) {
    w->Respond(http::Response{
        .status = 304, .content_type = "application/json", .headers = {}, .body = ""});
    return;
  }
  watchers_.remove_if([](Watcher& x) {
    if (!x.done.load()) return false;
    x.thread.join();
    return true;
  });
  Watcher& watcher = watchers_.emplace_back();
  watches_++;
  watcher.thread = std::thread([this, w, version, timeout_s, done = &watcher.done] {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    absl::StatusOr<int64_t> rev = store_->Revision();
    int64_t seen = rev.ok() ? *rev : 0;
    while (true) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stopping_) break;
      }
      if (w->cancelled()) break;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) break;
      absl::StatusOr<int64_t> next = store_->WaitForRevision(seen, std::min<int64_t>(left, 200));
      if (!next.ok() || *next <= seen) continue;
      seen = *next;
      absl::StatusOr<json> t = BuildRouteTableJson(*store_);
      if (t.ok() && (*t)["version"].get<std::string>() != version) {
        w->Respond(Json(200, *t));
        done->store(true);
        return;
      }
    }
    w->Respond(http::Response{
        .status = 304, .content_type = "application/json", .headers = {}, .body = ""});
    done->store(true);
  });
}

http::Response ControlServer::CreateOrUpdate(const http::Request& req) {
  absl::StatusOr<DeploymentSpec> spec = ParseSpecText(req.body, "body");
  if (!spec.ok()) return Error(400, std::string(spec.status().message()));
  const std::string text = Canonical(*spec);
  bool created = false, rolling = false, unchanged = false, retry = false;
  std::vector<std::string> changed;
  int64_t generation = 0;
  absl::Status s = store_->Transaction([&](ControlTxn& txn) -> absl::Status {
    auto existing = txn.Get<DeploymentRecord>(spec->name);
    if (!existing.ok()) return existing.status();
    DeploymentRecord rec;
    if (existing->has_value()) {
      rec = **existing;
      if (rec.deleted) {
        return absl::FailedPreconditionError(absl::StrCat(
            "name: deployment ", spec->name, " is being deleted; retry once it is gone"));
      }
      absl::StatusOr<DeploymentSpec> before = ParseSpecText(rec.spec, rec.name);
      if (before.ok()) {
        rolling = NeedsRollingUpdate(*before, *spec);
        changed = ChangedFields(*before, *spec);
      }
      if (rec.spec == text) {
        unchanged = true;
        generation = rec.generation;
        if (!rec.status.starts_with("Failed")) return absl::OkStatus();
        // The same spec again after the controller gave up on it (its model could not be
        // fetched): replacing the "Failed: ..." status asks the controller to try again.
        retry = true;
        rec.status = "Retrying: requested by a deploy of the unchanged spec";
        auto put = txn.Put<DeploymentRecord>(std::move(rec));
        if (!put.ok()) return put.status();
        EventRecord e;
        e.object = "deployment/" + spec->name;
        e.message = "retry requested";
        return txn.AppendEvent(std::move(e)).status();
      }
    } else {
      created = true;
      rec.name = spec->name;
      rec.version = kCreate;
    }
    rec.spec = text;
    auto put = txn.Put<DeploymentRecord>(std::move(rec));
    if (!put.ok()) return put.status();
    generation = put->generation;
    EventRecord e;
    e.object = "deployment/" + spec->name;
    e.message = created ? "created" : absl::StrCat("updated (generation ", generation, ")");
    return txn.AppendEvent(std::move(e)).status();
  });
  if (!s.ok()) return Error(HttpStatusOf(s), std::string(s.message()));
  return Json(created ? 201 : 200, {{"name", spec->name},
                                    {"generation", generation},
                                    {"created", created},
                                    {"unchanged", unchanged},
                                    {"retry", retry},
                                    {"rolling_update", rolling},
                                    {"changed", changed}});
}

http::Response ControlServer::ListDeployments() {
  auto ds = store_->List<DeploymentRecord>();
  if (!ds.ok()) return Error(HttpStatusOf(ds.status()), std::string(ds.status().message()));
  auto rs = store_->List<ReplicaRecord>();
  if (!rs.ok()) return Error(HttpStatusOf(rs.status()), std::string(rs.status().message()));
  json out = json::array();
  for (const DeploymentRecord& d : *ds) {
    int ready = 0, total = 0;
    for (const ReplicaRecord& r : *rs) {
      if (r.deployment != d.name || r.phase == ReplicaPhase::kGone) continue;
      total++;
      ready += r.phase == ReplicaPhase::kReady ? 1 : 0;
    }
    json spec = json::object();
    absl::StatusOr<DeploymentSpec> parsed = ParseSpecText(d.spec, d.name);
    if (parsed.ok()) spec = SpecToJson(*parsed);
    out.push_back({{"name", d.name},
                   {"generation", d.generation},
                   {"deleted", d.deleted},
                   {"status", d.status},
                   {"ready", ready},
                   {"replicas", total},
                   {"spec", std::move(spec)}});
  }
  return Json(200, {{"deployments", std::move(out)}});
}

http::Response ControlServer::GetDeployment(const std::string& name) {
  auto d = store_->Get<DeploymentRecord>(name);
  if (!d.ok()) return Error(HttpStatusOf(d.status()), std::string(d.status().message()));
  if (!d->has_value()) return Error(404, absl::StrCat("no deployment named ", name));
  auto rs = store_->List<ReplicaRecord>({.deployment = name});
  if (!rs.ok()) return Error(HttpStatusOf(rs.status()), std::string(rs.status().message()));
  json replicas = json::array();
  for (const ReplicaRecord& r : *rs) replicas.push_back(ReplicaJson(r));
  json events = json::array();
  auto ev = store_->ListEvents({.object = "deployment/" + name, .after_id = 0, .limit = 50});
  if (ev.ok()) {
    for (const EventRecord& e : *ev) events.push_back(EventJson(e));
  }
  json replica_events = json::array();
  for (const ReplicaRecord& r : *rs) {
    auto re = store_->ListEvents({.object = "replica/" + r.id, .after_id = 0, .limit = 10});
    if (!re.ok()) continue;
    for (const EventRecord& e : *re) replica_events.push_back(EventJson(e));
  }
  json spec = json::object();
  absl::StatusOr<DeploymentSpec> parsed = ParseSpecText((*d)->spec, name);
  if (parsed.ok()) spec = SpecToJson(*parsed);
  return Json(200, {{"name", name},
                    {"generation", (*d)->generation},
                    {"deleted", (*d)->deleted},
                    {"status", (*d)->status},
                    {"created_ms", (*d)->created_ms},
                    {"updated_ms", (*d)->updated_ms},
                    {"spec", std::move(spec)},
                    {"replicas", std::move(replicas)},
                    {"events", std::move(events)},
                    {"replica_events", std::move(replica_events)},
                    {"held", options_.demand ? options_.demand->Held(name) : 0}});
}

http::Response ControlServer::Demand(const std::string& body) {
  if (options_.demand == nullptr) return Error(404, "demand: not served here");
  absl::StatusOr<DemandReport> report = ParseDemandReport(body);
  if (!report.ok()) return Error(400, std::string(report.status().message()));
  options_.demand->Report(report->gateway, std::move(report->held));
  return Json(200, {{"gateway", report->gateway}});
}

http::Response ControlServer::DeleteDeployment(const std::string& name) {
  bool found = false;
  absl::Status s = store_->Transaction([&](ControlTxn& txn) -> absl::Status {
    auto d = txn.Get<DeploymentRecord>(name);
    if (!d.ok()) return d.status();
    if (!d->has_value()) return absl::OkStatus();
    found = true;
    if ((*d)->deleted) return absl::OkStatus();
    DeploymentRecord rec = **d;
    rec.deleted = true;
    auto put = txn.Put<DeploymentRecord>(std::move(rec));
    if (!put.ok()) return put.status();
    EventRecord e;
    e.object = "deployment/" + name;
    e.message = "delete requested";
    return txn.AppendEvent(std::move(e)).status();
  });
  if (!s.ok()) return Error(HttpStatusOf(s), std::string(s.message()));
  if (!found) return Error(404, absl::StrCat("no deployment named ", name));
  return Json(202, {{"name", name}, {"deleted", true}});
}

http::Response ControlServer::Scale(const std::string& name, const std::string& body) {
  absl::StatusOr<ScaleRequest> scale = ParseScaleRequest(body);
  if (!scale.ok()) return Error(400, std::string(scale.status().message()));
  int64_t generation = 0;
  absl::Status s = store_->Transaction([&](ControlTxn& txn) -> absl::Status {
    auto d = txn.Get<DeploymentRecord>(name);
    if (!d.ok()) return d.status();
    if (!d->has_value()) return absl::NotFoundError(absl::StrCat("no deployment named ", name));
    absl::StatusOr<DeploymentSpec> spec = ParseSpecText((*d)->spec, name);
    if (!spec.ok()) return spec.status();
    if (scale->min) spec->replicas.min = *scale->min;
    if (scale->max) spec->replicas.max = *scale->max;
    absl::Status v = ValidateSpec(*spec);
    if (!v.ok()) return v;
    DeploymentRecord rec = **d;
    rec.spec = Canonical(*spec);
    auto put = txn.Put<DeploymentRecord>(std::move(rec));
    if (!put.ok()) return put.status();
    generation = put->generation;
    EventRecord e;
    e.object = "deployment/" + name;
    e.message = absl::StrCat("scaled to min ", spec->replicas.min, ", max ", spec->replicas.max);
    return txn.AppendEvent(std::move(e)).status();
  });
  if (!s.ok()) return Error(HttpStatusOf(s), std::string(s.message()));
  return Json(200, {{"name", name}, {"generation", generation}});
}

http::Response ControlServer::ListReplicas(const http::Request& req) {
  std::map<std::string, std::string> q = ParseQuery(req.query);
  auto rs = store_->List<ReplicaRecord>({.deployment = q["deployment"]});
  if (!rs.ok()) return Error(HttpStatusOf(rs.status()), std::string(rs.status().message()));
  json out = json::array();
  for (const ReplicaRecord& r : *rs) out.push_back(ReplicaJson(r));
  return Json(200, {{"replicas", std::move(out)}});
}

http::Response ControlServer::ListProviders() {
  auto ps = store_->List<ProviderRecord>();
  if (!ps.ok()) return Error(HttpStatusOf(ps.status()), std::string(ps.status().message()));
  json out = json::array();
  for (const ProviderRecord& p : *ps) {
    out.push_back({{"name", p.name},
                   {"kind", p.kind},
                   {"degraded", p.degraded},
                   {"successes", p.successes},
                   {"failures", p.failures}});
  }
  return Json(200, {{"providers", std::move(out)}});
}

http::Response ControlServer::ListEvents(const http::Request& req) {
  std::map<std::string, std::string> q = ParseQuery(req.query);
  EventQuery query;
  query.object = q["object"];
  if (q.count("after") && !absl::SimpleAtoi(q["after"], &query.after_id)) {
    return Error(400, "after: must be an integer");
  }
  if (q.count("limit") && (!absl::SimpleAtoi(q["limit"], &query.limit) || query.limit <= 0)) {
    return Error(400, "limit: must be a positive integer");
  }
  auto ev = store_->ListEvents(query);
  if (!ev.ok()) return Error(HttpStatusOf(ev.status()), std::string(ev.status().message()));
  json out = json::array();
  for (const EventRecord& e : *ev) out.push_back(EventJson(e));
  return Json(200, {{"events", std::move(out)}});
}

http::Response ControlServer::Metrics() {
  auto ds = store_->List<DeploymentRecord>();
  auto rs = store_->List<ReplicaRecord>();
  auto ps = store_->List<ProviderRecord>();
  if (!ds.ok() || !rs.ok() || !ps.ok()) return Error(503, "store unavailable");
  std::string out;
  absl::StrAppend(&out, "# TYPE weft_control_deployments gauge\nweft_control_deployments ",
                  ds->size(), "\n");
  std::map<std::pair<std::string, std::string>, int> by_phase;
  for (const DeploymentRecord& d : *ds) {
    for (ReplicaPhase p : {ReplicaPhase::kPending, ReplicaPhase::kStarting, ReplicaPhase::kReady,
                           ReplicaPhase::kDraining, ReplicaPhase::kFailed}) {
      by_phase[{d.name, std::string(ReplicaPhaseName(p))}] = 0;
    }
  }
  for (const ReplicaRecord& r : *rs)
    by_phase[{r.deployment, std::string(ReplicaPhaseName(r.phase))}]++;
  absl::StrAppend(&out, "# TYPE weft_control_replicas gauge\n");
  for (const auto& [key, n] : by_phase) {
    absl::StrAppend(&out, "weft_control_replicas{deployment=\"", key.first, "\",phase=\"",
                    key.second, "\"} ", n, "\n");
  }
  absl::StrAppend(&out, "# TYPE weft_control_provider_degraded gauge\n");
  for (const ProviderRecord& p : *ps) {
    absl::StrAppend(&out, "weft_control_provider_degraded{provider=\"", p.name, "\"} ",
                    p.degraded ? 1 : 0, "\n");
  }
  absl::StrAppend(&out, "# TYPE weft_control_provider_failures_total counter\n");
  for (const ProviderRecord& p : *ps) {
    absl::StrAppend(&out, "weft_control_provider_failures_total{provider=\"", p.name, "\"} ",
                    p.failures, "\n");
  }
  absl::StrAppend(&out, "# TYPE weft_control_route_watches_total counter\n",
                  "weft_control_route_watches_total ", watches_.load(), "\n");
  http::Response r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = std::move(out);
  return r;
}

}  // namespace weft::control
