// SPDX-License-Identifier: Apache-2.0
#include "control/providers/kubernetes/kubernetes_provider.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace weft::control {
namespace {

using json = nlohmann::json;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

// A fresh value for the weft.dev/instance label: tells one Provision of an id from a later one.
std::string NewInstance(uint64_t serial) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard lock(mu);
  return absl::StrFormat("%010x%02x", rng() & 0xffffffffffULL, serial & 0xff);
}

// The message of a Status object in `body`, or the body itself (shortened).
std::string StatusMessage(const std::string& body) {
  json s = json::parse(body, nullptr, false);
  if (s.is_object() && s.contains("message") && s["message"].is_string()) {
    return s["message"].get<std::string>();
  }
  return body.substr(0, 200);
}

const json& Field(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string Str(const json& j, const char* key) {
  const json& f = Field(j, key);
  return f.is_string() ? f.get<std::string>() : "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubernetesProvider>> KubernetesProvider::Create(
    KubernetesProviderOptions options) {
  if (options.accelerators.empty()) {
    return absl::InvalidArgumentError("kubernetes provider: accelerators: none configured");
  }
  for (size_t i = 0; i < options.accelerators.size(); ++i) {
    const KubeAccelerator& a = options.accelerators[i];
    if (a.kind.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("kubernetes provider: accelerators[", i, "].kind: empty"));
    }
    if (a.slots < 0 || a.usd_per_hour < 0) {
      return absl::InvalidArgumentError(absl::StrCat("kubernetes provider: accelerators[", i, "] (",
                                                     a.kind, "): slots and price must be >= 0"));
    }
  }
  if (options.propagation_policy != "Foreground" && options.propagation_policy != "Background") {
    return absl::InvalidArgumentError(
        "kubernetes provider: propagation_policy: must be Foreground or Background");
  }
  if (options.engine.image.empty()) {
    return absl::InvalidArgumentError("kubernetes provider: image: empty");
  }
  if (options.engine.namespace_name.empty()) {
    options.engine.namespace_name =
        options.cluster.namespace_name.empty() ? "default" : options.cluster.namespace_name;
  }
  absl::StatusOr<std::unique_ptr<KubeApiClient>> client =
      KubeApiClient::Create(options.cluster, options.request_timeout_ms);
  if (!client.ok()) return client.status();
  std::unique_ptr<KubernetesProvider> p(
      new KubernetesProvider(std::move(options), *std::move(client)));
  // One synchronous look at the cluster, so a fresh provider already knows its replicas and its
  // health; the watch thread carries on from the list's resourceVersion.
  std::string rv;
  absl::Status adopted = p->AdoptDeployments();
  absl::Status listed = adopted.ok() ? p->ListPods(&rv) : adopted;
  p->watcher_ = std::thread([raw = p.get(), rv, ok = listed.ok()] { raw->WatchLoop(rv, ok); });
  p->worker_ = std::thread([raw = p.get()] { raw->WorkLoop(); });
  return p;
}

KubernetesProvider::KubernetesProvider(KubernetesProviderOptions options,
                                       std::unique_ptr<KubeApiClient> client)
    : options_(std::move(options)), client_(std::move(client)) {}

KubernetesProvider::~KubernetesProvider() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  client_->CancelStreams();
  if (watcher_.joinable()) watcher_.join();
  if (worker_.joinable()) worker_.join();
}

std::string KubernetesProvider::PodsPath() const {
  return absl::StrCat("/api/v1/namespaces/", options_.engine.namespace_name,
                      "/pods?labelSelector=", kLabelManagedBy, "%3Dweft");
}

std::string KubernetesProvider::Endpoint(const std::string& service, int node_port) const {
  return absl::StrReplaceAll(options_.endpoint_template,
                             {{"{service}", service},
                              {"{namespace}", options_.engine.namespace_name},
                              {"{port}", std::to_string(options_.engine.port)},
                              {"{node_port}", std::to_string(node_port)}});
}

const KubeAccelerator* KubernetesProvider::FindAccelerator(const std::string& kind) const {
  for (const KubeAccelerator& a : options_.accelerators) {
    if (a.kind == kind) return &a;
  }
  return nullptr;
}

int KubernetesProvider::UsedSlotsLocked(const std::string& kind) const {
  int used = 0;
  for (const auto& [id, r] : replicas_) {
    if (r.spec.accelerator == kind) used += r.spec.accelerator_count;
  }
  return used;
}

absl::Status KubernetesProvider::ApiStatus(const absl::StatusOr<KubeResponse>& r,
                                           const std::string& what) {
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat("kubernetes: ", what, ": ", r.status().message()));
  }
  if (r->status >= 200 && r->status < 300) return absl::OkStatus();
  const std::string msg =
      absl::StrCat("kubernetes: ", what, ": HTTP ", r->status, ": ", StatusMessage(r->body));
  switch (r->status) {
    case 400:
    case 422:
      return absl::InvalidArgumentError(msg);
    case 401:
      return absl::UnauthenticatedError(msg);
    case 403:
      return absl::PermissionDeniedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 409:
      return absl::AlreadyExistsError(msg);
    case 410:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::UnavailableError(msg);  // 429, 5xx
  }
}

void KubernetesProvider::NoteApiLocked(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      api_error_.clear();
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      api_error_ = std::string(s.message());
      break;
    default:
      break;  // an answer about one object says nothing about the cluster
  }
}

// --- the pod cache ----------------------------------------------------------------------------

void KubernetesProvider::UpdatePodLocked(const json& pod) {
  const json& meta = Field(pod, "metadata");
  const std::string name = Str(meta, "name");
  if (name.empty()) return;
  Pod p;
  p.instance = Str(Field(meta, "labels"), kLabelInstance);
  p.deleting = Field(meta, "deletionTimestamp").is_string();
  const json& status = Field(pod, "status");
  p.phase = Str(status, "phase");
  for (const json& c :
       Field(status, "conditions").is_array() ? Field(status, "conditions") : json::array()) {
    if (Str(c, "type") == "Ready") p.ready = Str(c, "status") == "True";
    if (Str(c, "type") == "PodScheduled" && Str(c, "status") == "False") {
      p.waiting = absl::StrCat(Str(c, "reason"), ": ", Str(c, "message"));
    }
  }
  if (p.phase == "Failed") {
    p.failure =
        absl::StrCat("pod ", name, " failed: ", Str(status, "reason"), " ", Str(status, "message"));
  }
  const json& containers = Field(status, "containerStatuses");
  if (containers.is_array()) {
    for (const json& cs : containers) {
      const std::string cname = Str(cs, "name");
      const json& waiting = Field(Field(cs, "state"), "waiting");
      const std::string reason = Str(waiting, "reason");
      const json& last = Field(Field(cs, "lastState"), "terminated");
      const int restarts =
          Field(cs, "restartCount").is_number_integer() ? Field(cs, "restartCount").get<int>() : 0;
      std::string exit;
      if (Field(last, "exitCode").is_number_integer()) {
        exit = absl::StrCat(" (last exit code ", Field(last, "exitCode").get<int>(), ")");
      }
      if (!reason.empty()) p.waiting = reason;
      // Conditions the kubelet does not leave by itself: the engine cannot run as specified.
      if (reason == "CrashLoopBackOff" || reason == "ImagePullBackOff" ||
          reason == "InvalidImageName" || reason == "CreateContainerConfigError" ||
          reason == "CreateContainerError" || reason == "RunContainerError") {
        p.failure =
            absl::StrCat("pod ", name, ": container ", cname, ": ", reason, exit,
                         restarts > 0 ? absl::StrCat(", restarted ", restarts, " times") : "",
                         Str(waiting, "message").empty() ? "" : ": ", Str(waiting, "message"));
      } else if (options_.max_restarts > 0 && restarts >= options_.max_restarts) {
        p.failure = absl::StrCat("pod ", name, ": container ", cname, " restarted ", restarts,
                                 " times", exit);
      }
    }
  }
  pods_[name] = std::move(p);
}

void KubernetesProvider::RefreshLocked(Replica& r) {
  if (r.creating) return;
  if (r.terminating) {
    r.status.phase = ReplicaPhase::kDraining;
    return;
  }
  if (r.status.phase == ReplicaPhase::kFailed) return;  // sticks until terminated
  bool ready = false;
  std::string failure, waiting;
  for (const auto& [name, p] : pods_) {
    if (p.instance != r.instance || p.deleting) continue;
    if (!p.failure.empty()) failure = p.failure;
    if (p.ready) ready = true;
    if (!p.waiting.empty()) waiting = absl::StrCat("pod ", name, ": ", p.waiting);
  }
  if (!failure.empty()) {
    r.status.phase = ReplicaPhase::kFailed;
    r.status.failure_reason = failure;
  } else if (ready) {
    r.status.phase = ReplicaPhase::kReady;
  } else if (Clock::now() >= r.ready_deadline) {
    r.status.phase = ReplicaPhase::kFailed;
    r.status.failure_reason =
        absl::StrCat("not ready within ", options_.ready_timeout_s, " s",
                     waiting.empty() ? " (no pod seen)" : absl::StrCat(" (", waiting, ")"));
  } else {
    r.status.phase = ReplicaPhase::kStarting;
  }
}

absl::Status KubernetesProvider::ListPods(std::string* resource_version) {
  absl::StatusOr<KubeResponse> r = client_->Call("GET", PodsPath());
  absl::Status s = ApiStatus(r, "list pods");
  json list;
  if (s.ok()) {
    list = json::parse(r->body, nullptr, false);
    if (!list.is_object() || !Field(list, "items").is_array()) {
      s = absl::UnavailableError("kubernetes: list pods: malformed PodList");
    }
  }
  std::lock_guard lock(mu_);
  NoteApiLocked(s);
  if (!s.ok()) return s;
  ++relists_;
  pods_.clear();
  for (const json& pod : list["items"]) UpdatePodLocked(pod);
  *resource_version = Str(Field(list, "metadata"), "resourceVersion");
  return absl::OkStatus();
}

absl::Status KubernetesProvider::AdoptDeployments() {
  absl::StatusOr<KubeResponse> r =
      client_->Call("GET", absl::StrCat("/apis/apps/v1/namespaces/", options_.engine.namespace_name,
                                        "/deployments?labelSelector=", kLabelManagedBy, "%3Dweft"));
  absl::Status s = ApiStatus(r, "list deployments");
  json list;
  if (s.ok()) {
    list = json::parse(r->body, nullptr, false);
    if (!list.is_object() || !Field(list, "items").is_array()) {
      s = absl::UnavailableError("kubernetes: list deployments: malformed DeploymentList");
    }
  }
  std::lock_guard lock(mu_);
  NoteApiLocked(s);
  if (!s.ok()) return s;
  for (const json& d : list["items"]) {
    const json& meta = Field(d, "metadata");
    const json& ann = Field(meta, "annotations");
    Replica r;
    r.spec.id = Str(ann, kAnnotationReplicaId);
    if (r.spec.id.empty() || replicas_.count(r.spec.id) > 0) continue;
    r.spec.deployment = Str(ann, kAnnotationDeployment);
    r.spec.accelerator = Str(ann, kAnnotationAccelerator);
    if (!absl::SimpleAtoi(Str(ann, kAnnotationAcceleratorCount), &r.spec.accelerator_count)) {
      r.spec.accelerator_count = 1;
    }
    r.instance = Str(Field(meta, "labels"), kLabelInstance);
    r.object = Str(meta, "name");
    r.status.id = r.spec.id;
    r.status.deployment = r.spec.deployment;
    r.status.phase = ReplicaPhase::kStarting;
    r.status.endpoint = Endpoint(r.object, 0);
    // An absent or damaged annotation: start time unknown (0).
    if (!absl::SimpleAtoi(Str(ann, kAnnotationStartedMs), &r.status.started_ms)) {
      r.status.started_ms = 0;
    }
    r.terminating = r.deleted = Field(meta, "deletionTimestamp").is_string();
    r.ready_deadline = Clock::now() + Seconds(options_.ready_timeout_s);
    replicas_.emplace(r.spec.id, std::move(r));
  }
  adopted_ = true;
  return absl::OkStatus();
}

bool KubernetesProvider::ApplyEvent(std::string_view line, std::string* resource_version,
                                    bool* gone) {
  json e = json::parse(line, nullptr, false);
  if (!e.is_object()) return true;  // not an event: skip it
  const std::string type = Str(e, "type");
  const json& obj = Field(e, "object");
  std::lock_guard lock(mu_);
  if (type == "ERROR") {
    if (Field(obj, "code").is_number_integer() && Field(obj, "code").get<int>() == 410) {
      *gone = true;
    } else {
      NoteApiLocked(
          absl::UnavailableError(absl::StrCat("kubernetes: watch pods: ", Str(obj, "message"))));
    }
    return false;
  }
  const std::string rv = Str(Field(obj, "metadata"), "resourceVersion");
  if (!rv.empty()) *resource_version = rv;
  if (type == "ADDED" || type == "MODIFIED") {
    UpdatePodLocked(obj);
  } else if (type == "DELETED") {
    pods_.erase(Str(Field(obj, "metadata"), "name"));
  }
  return true;  // BOOKMARK: only the resourceVersion moves
}

void KubernetesProvider::WatchLoop(std::string rv, bool listed) {
  auto pause = [this] {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, Seconds(options_.retry_delay_s), [this] { return stop_; });
  };
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    if (!listed) {
      absl::Status s = adopted_ ? absl::OkStatus() : AdoptDeployments();
      if (s.ok()) s = ListPods(&rv);
      if (!s.ok()) {
        pause();
        continue;
      }
      listed = true;
    }
    bool gone = false;
    const std::string path =
        absl::StrCat(PodsPath(), "&watch=1&allowWatchBookmarks=true&resourceVersion=", rv,
                     "&timeoutSeconds=", std::max(1, static_cast<int>(options_.watch_timeout_s)));
    absl::StatusOr<KubeResponse> r = client_->Stream(
        path, [&](std::string_view line) { return ApplyEvent(line, &rv, &gone); },
        options_.watch_timeout_s + 30);
    if (gone || (r.ok() && r->status == 410)) {
      listed = false;  // 410 Gone: the resourceVersion is too old; list again at once
      continue;
    }
    if (r.ok() && r->status == 200) continue;  // the server ended the watch: renew it
    if (!r.ok() && r.status().code() == absl::StatusCode::kCancelled) continue;  // stop_ or ERROR
    {
      std::lock_guard lock(mu_);
      NoteApiLocked(ApiStatus(r, "watch pods"));
    }
    listed = false;
    pause();
  }
}

void KubernetesProvider::WorkLoop() {
  struct Job {
    ReplicaId id;
    std::string instance;
    std::string object;
    bool deleted = false;
  };
  std::unique_lock lock(mu_);
  while (!stop_) {
    std::vector<Job> jobs;
    for (const auto& [id, r] : replicas_) {
      if (r.terminating && !r.creating) {
        jobs.push_back(
            Job{.id = id, .instance = r.instance, .object = r.object, .deleted = r.deleted});
      }
    }
    lock.unlock();
    const std::string ns = options_.engine.namespace_name;
    const std::string deployment_path =
        absl::StrCat("/apis/apps/v1/namespaces/", ns, "/deployments/");
    const std::string service_path = absl::StrCat("/api/v1/namespaces/", ns, "/services/");
    std::vector<std::pair<Job, bool>> results;  // (job, deleted now / gone now)
    for (const Job& j : jobs) {
      if (!j.deleted) {
        const std::string opts = json{{"kind", "DeleteOptions"},
                                      {"apiVersion", "v1"},
                                      {"propagationPolicy", options_.propagation_policy}}
                                     .dump();
        absl::Status s = ApiStatus(client_->Call("DELETE", deployment_path + j.object, opts),
                                   "delete deployment " + j.object);
        if (s.ok() || absl::IsNotFound(s)) {
          s = ApiStatus(client_->Call("DELETE", service_path + j.object),
                        "delete service " + j.object);
        }
        const bool ok = s.ok() || absl::IsNotFound(s);
        std::lock_guard l(mu_);
        NoteApiLocked(ok ? absl::OkStatus() : s);
        results.emplace_back(j, ok);
      } else {
        absl::StatusOr<KubeResponse> r = client_->Call("GET", deployment_path + j.object);
        absl::Status s = ApiStatus(r, "get deployment " + j.object);
        std::lock_guard l(mu_);
        if (!absl::IsNotFound(s)) NoteApiLocked(s);
        results.emplace_back(j, absl::IsNotFound(s));
      }
    }
    lock.lock();
    for (const auto& [j, done] : results) {
      auto it = replicas_.find(j.id);
      if (it == replicas_.end() || it->second.instance != j.instance || !done) continue;
      if (!j.deleted) {
        it->second.deleted = true;
        continue;
      }
      // The Deployment is gone; the replica is gone once the watch saw its pods go too.
      bool pods_left = false;
      for (const auto& [name, p] : pods_) pods_left = pods_left || p.instance == j.instance;
      if (!pods_left) replicas_.erase(it);
    }
    const bool more = std::any_of(replicas_.begin(), replicas_.end(),
                                  [](const auto& kv) { return kv.second.terminating; });
    // Deletions pending: look again soon; otherwise sleep until Terminate wakes us.
    if (more) {
      cv_.wait_for(lock, Seconds(options_.sweep_interval_s), [&] { return stop_; });
    } else {
      cv_.wait(lock, [&] {
        return stop_ || std::any_of(replicas_.begin(), replicas_.end(), [](const auto& kv) {
                 return kv.second.terminating && !kv.second.creating;
               });
      });
    }
  }
}

// --- Provider ----------------------------------------------------------------------------------

absl::StatusOr<ProviderCapacity> KubernetesProvider::Capacity() {
  std::lock_guard lock(mu_);
  if (!api_error_.empty()) {
    return absl::UnavailableError(
        absl::StrCat("kubernetes API ", options_.cluster.server, " unreachable: ", api_error_));
  }
  ProviderCapacity c;
  for (const KubeAccelerator& a : options_.accelerators) {
    c.accelerators.push_back(AcceleratorSlots{.kind = a.kind,
                                              .total = a.slots,
                                              .free = a.slots - UsedSlotsLocked(a.kind),
                                              .usd_per_hour = a.usd_per_hour});
  }
  c.regions = {options_.region};
  return c;
}

absl::StatusOr<ReplicaStatus> KubernetesProvider::Provision(const ReplicaSpec& spec) {
  if (spec.id.empty()) return absl::InvalidArgumentError("kubernetes provider: replica id: empty");
  if (spec.accelerator_count < 1) {
    return absl::InvalidArgumentError("kubernetes provider: accelerator_count: must be >= 1");
  }
  if (spec.model_path.empty()) {
    return absl::InvalidArgumentError("kubernetes provider: model_path: empty");
  }
  std::unique_lock lock(mu_);
  // A concurrent Provision of the same id: wait for its API calls, then answer as it did.
  cv_.wait(lock, [&] {
    auto it = replicas_.find(spec.id);
    return it == replicas_.end() || !it->second.creating;
  });
  if (auto it = replicas_.find(spec.id); it != replicas_.end()) {
    RefreshLocked(it->second);
    return it->second.status;
  }
  const KubeAccelerator* accel = FindAccelerator(spec.accelerator);
  if (accel == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "kubernetes provider: no slots of accelerator kind \"", spec.accelerator, "\""));
  }
  const int free = accel->slots - UsedSlotsLocked(spec.accelerator);
  if (free < spec.accelerator_count) {
    return absl::ResourceExhaustedError(absl::StrCat("kubernetes provider: ", free, " free ",
                                                     spec.accelerator, " slots, replica needs ",
                                                     spec.accelerator_count));
  }
  // Reserve the slots and the id before the (slow) API calls.
  Replica r;
  r.spec = spec;
  r.instance = NewInstance(next_instance_++);
  r.object = KubeNamesFor(spec).object;
  r.creating = true;
  r.status.id = spec.id;
  r.status.deployment = spec.deployment;
  r.status.phase = ReplicaPhase::kStarting;
  r.status.started_ms = WallMs();
  r.ready_deadline = Clock::now() + Seconds(options_.ready_timeout_s);
  std::string instance = r.instance;
  int64_t started_ms = r.status.started_ms;
  replicas_.emplace(spec.id, std::move(r));
  lock.unlock();

  const std::string ns = options_.engine.namespace_name;
  const std::string deployments = absl::StrCat("/apis/apps/v1/namespaces/", ns, "/deployments");
  const std::string services = absl::StrCat("/api/v1/namespaces/", ns, "/services");
  const std::string object = KubeNamesFor(spec).object;
  bool created_deployment = false;
  int node_port = 0;
  absl::Status s = ApiStatus(
      client_->Call(
          "POST", deployments,
          BuildEngineDeployment(options_.engine, *accel, spec, instance, started_ms).dump()),
      "create deployment " + object);
  created_deployment = s.ok();
  if (absl::IsAlreadyExists(s)) {
    // An earlier Provision of this id (before a restart, or whose answer was lost): take it over
    // when it is ours; its pods carry its instance label.
    absl::StatusOr<KubeResponse> got = client_->Call("GET", deployments + "/" + object);
    s = ApiStatus(got, "get deployment " + object);
    if (s.ok()) {
      json d = json::parse(got->body, nullptr, false);
      const json& meta = Field(d, "metadata");
      if (Str(Field(meta, "annotations"), kAnnotationReplicaId) != spec.id) {
        s = absl::AlreadyExistsError(absl::StrCat("kubernetes: deployment ", ns, "/", object,
                                                  " exists and is not replica ", spec.id));
      } else if (Field(meta, "deletionTimestamp").is_string()) {
        s = absl::UnavailableError(absl::StrCat("kubernetes: deployment ", ns, "/", object,
                                                " is still being deleted; retry"));
      } else {
        instance = Str(Field(meta, "labels"), kLabelInstance);
        if (!absl::SimpleAtoi(Str(Field(meta, "annotations"), kAnnotationStartedMs),
                              &started_ms)) {
          started_ms = 0;
        }
      }
    }
  }
  if (s.ok()) {
    absl::StatusOr<KubeResponse> made =
        client_->Call("POST", services, BuildEngineService(options_.engine, spec, instance).dump());
    s = ApiStatus(made, "create service " + object);
    if (absl::IsAlreadyExists(s)) {
      made = client_->Call("GET", services + "/" + object);
      s = ApiStatus(made, "get service " + object);
    }
    if (s.ok()) {
      json svc = json::parse(made->body, nullptr, false);
      const json& ports = Field(Field(svc, "spec"), "ports");
      if (ports.is_array() && !ports.empty() && Field(ports[0], "nodePort").is_number_integer()) {
        node_port = Field(ports[0], "nodePort").get<int>();
      }
    }
  }
  if (!s.ok() && created_deployment) {
    // Best effort: leave nothing half-made behind (the caller will retry the whole replica).
    (void)client_->Call("DELETE", deployments + "/" + object,
                        json{{"propagationPolicy", "Background"}}.dump());
  }
  lock.lock();
  NoteApiLocked(s);
  auto it = replicas_.find(spec.id);
  if (!s.ok()) {
    replicas_.erase(it);
    cv_.notify_all();
    return s;
  }
  Replica& rep = it->second;
  rep.creating = false;
  rep.instance = instance;
  rep.status.started_ms = started_ms;
  rep.status.endpoint = Endpoint(object, node_port);
  cv_.notify_all();
  RefreshLocked(rep);
  return rep.status;
}

absl::Status KubernetesProvider::Terminate(const ReplicaId& id) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] {
    auto it = replicas_.find(id);
    return it == replicas_.end() || !it->second.creating;
  });
  auto it = replicas_.find(id);
  if (it == replicas_.end() || it->second.terminating) return absl::OkStatus();
  it->second.terminating = true;
  it->second.status.phase = ReplicaPhase::kDraining;
  cv_.notify_all();  // the worker deletes its objects
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReplicaStatus>> KubernetesProvider::List() {
  std::lock_guard lock(mu_);
  std::vector<ReplicaStatus> out;
  for (auto& [id, r] : replicas_) {
    if (r.creating) continue;  // not provisioned yet (its Provision has not returned)
    RefreshLocked(r);
    out.push_back(r.status);
  }
  return out;
}

ProviderHealth KubernetesProvider::Health() {
  std::lock_guard lock(mu_);
  if (api_error_.empty()) return ProviderHealth{};
  return ProviderHealth{
      .ok = false,
      .reason = absl::StrCat("kubernetes API ", options_.cluster.server, ": ", api_error_)};
}

std::vector<std::string> KubernetesProvider::PodsOf(const ReplicaId& id) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  auto it = replicas_.find(id);
  if (it == replicas_.end()) return out;
  for (const auto& [name, p] : pods_) {
    if (p.instance == it->second.instance && !p.deleting) out.push_back(name);
  }
  return out;
}

int KubernetesProvider::relists() const {
  std::lock_guard lock(mu_);
  return relists_;
}

}  // namespace weft::control
