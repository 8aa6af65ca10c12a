// SPDX-License-Identifier: Apache-2.0
#include "testing/fake_kube_apiserver.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace weft::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds Ms(int64_t ms) { return std::chrono::milliseconds(ms); }

std::string Rfc3339Now() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
}

// What the API says about each resource it serves.
struct ResourceInfo {
  std::string resource;     // "deployments"
  std::string group;        // "apps", or "" for the core group
  std::string api_version;  // "apps/v1"
  std::string kind;         // "Deployment"
  std::string Qualified() const { return group.empty() ? resource : resource + "." + group; }
};

const ResourceInfo& Info(const std::string& resource) {
  static const ResourceInfo kDeployments{"deployments", "apps", "apps/v1", "Deployment"};
  static const ResourceInfo kServices{"services", "", "v1", "Service"};
  static const ResourceInfo kPods{"pods", "", "v1", "Pod"};
  if (resource == "deployments") return kDeployments;
  if (resource == "services") return kServices;
  return kPods;
}

// A metav1.Status failure object, as the API server sends with every error.
json StatusObject(int code, const std::string& reason, const std::string& message,
                  json details = nullptr) {
  json s = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
            {"status", "Failure"}, {"message", message}, {"reason", reason},
            {"code", code}};
  if (!details.is_null()) s["details"] = std::move(details);
  return s;
}

http::Response JsonResponse(int code, const json& body) {
  http::Response r;
  r.status = code;
  r.content_type = "application/json";
  r.body = body.dump();
  return r;
}

std::string PercentDecode(absl::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%' && i + 2 < in.size()) {
      int v = 0;
      if (absl::SimpleHexAtoi(in.substr(i + 1, 2), &v)) {
        out.push_back(static_cast<char>(v));
        i += 2;
      } else {
        out.push_back(in[i]);
      }
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(const std::string& query) {
  std::map<std::string, std::string> out;
  for (absl::string_view kv : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    out[PercentDecode(p.first)] = PercentDecode(p.second);
  }
  return out;
}

bool IsAlnumLower(char c) { return absl::ascii_islower(c) || absl::ascii_isdigit(c); }

// DNS-1123 subdomain (Deployment and Pod names): lowercase alphanumerics, '-' and '.', at most 253,
// starting and ending alphanumeric.
bool IsDns1123Subdomain(const std::string& s) {
  if (s.empty() || s.size() > 253 || !IsAlnumLower(s.front()) || !IsAlnumLower(s.back())) {
    return false;
  }
  for (char c : s) {
    if (!IsAlnumLower(c) && c != '-' && c != '.') return false;
  }
  return true;
}

// DNS-1035 label (Service names): lowercase alphanumerics and '-', at most 63, starting with a
// letter, ending alphanumeric.
bool IsDns1035Label(const std::string& s) {
  if (s.empty() || s.size() > 63 || !absl::ascii_islower(s.front()) || !IsAlnumLower(s.back())) {
    return false;
  }
  for (char c : s) {
    if (!IsAlnumLower(c) && c != '-') return false;
  }
  return true;
}

// A label value: empty, or at most 63 of [A-Za-z0-9_.-] starting and ending alphanumeric.
bool IsLabelValue(const std::string& s) {
  if (s.empty()) return true;
  if (s.size() > 63 || !absl::ascii_isalnum(s.front()) || !absl::ascii_isalnum(s.back())) {
    return false;
  }
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// A label key: an optional DNS-1123 subdomain prefix and '/', then a name like a label value.
bool IsLabelKey(const std::string& s) {
  std::string_view name = s;
  if (size_t slash = s.find('/'); slash != std::string::npos) {
    if (!IsDns1123Subdomain(s.substr(0, slash))) return false;
    name = std::string_view(s).substr(slash + 1);
  }
  return !name.empty() && IsLabelValue(std::string(name));
}

// k8s' rand.String alphabet (no vowels, no look-alikes) for generated name suffixes.
std::string RandomSuffix(std::mt19937_64& rng, size_t n) {
  static constexpr std::string_view kAlphabet = "bcdfghjklmnpqrstvwxz2456789";
  std::string out;
  for (size_t i = 0; i < n; ++i) out.push_back(kAlphabet[rng() % kAlphabet.size()]);
  return out;
}

std::string HashSuffix(const std::string& text) {
  static constexpr std::string_view kAlphabet = "bcdfghjklmnpqrstvwxz2456789";
  uint64_t h = std::hash<std::string>{}(text);
  std::string out;
  for (int i = 0; i < 10; ++i) {
    out.push_back(kAlphabet[h % kAlphabet.size()]);
    h /= kAlphabet.size();
  }
  return out;
}

}  // namespace

absl::StatusOr<bool> MatchesLabelSelector(const json& labels, const std::string& selector) {
  auto value_of = [&](const std::string& key) -> std::optional<std::string> {
    if (!labels.is_object()) return std::nullopt;
    auto it = labels.find(key);
    if (it == labels.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  bool match = true;
  for (absl::string_view raw : absl::StrSplit(selector, ',', absl::SkipEmpty())) {
    std::string term(absl::StripAsciiWhitespace(raw));
    if (term.empty()) continue;
    if (absl::StrContains(term, "(") || absl::StrContains(term, " in ") ||
        absl::StrContains(term, " notin ")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unable to parse requirement: set-based selectors are not supported: ", term));
    }
    std::string key, value;
    enum { kEq, kNe, kExists, kNotExists } op;
    if (size_t p = term.find("!="); p != std::string::npos) {
      op = kNe;
      key = term.substr(0, p);
      value = term.substr(p + 2);
    } else if (size_t q = term.find("=="); q != std::string::npos) {
      op = kEq;
      key = term.substr(0, q);
      value = term.substr(q + 2);
    } else if (size_t e = term.find('='); e != std::string::npos) {
      op = kEq;
      key = term.substr(0, e);
      value = term.substr(e + 1);
    } else if (term[0] == '!') {
      op = kNotExists;
      key = term.substr(1);
    } else {
      op = kExists;
      key = term;
    }
    key = std::string(absl::StripAsciiWhitespace(key));
    value = std::string(absl::StripAsciiWhitespace(value));
    if (!IsLabelKey(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unable to parse requirement: invalid label key \"", key, "\""));
    }
    if (!IsLabelValue(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unable to parse requirement: invalid label value \"", value, "\""));
    }
    std::optional<std::string> have = value_of(key);
    switch (op) {
      case kEq:
        match = match && have == value;
        break;
      case kNe:
        match = match && have != value;
        break;
      case kExists:
        match = match && have.has_value();
        break;
      case kNotExists:
        match = match && !have.has_value();
        break;
    }
  }
  return match;
}

namespace {

struct Watcher {
  std::string resource;
  std::string ns;
  std::string selector;
  std::shared_ptr<http::ResponseWriter> writer;
  Clock::time_point deadline = Clock::time_point::max();
};

struct Event {
  int64_t rv = 0;
  std::string type;  // ADDED, MODIFIED, DELETED
  std::string resource;
  std::string ns;
  json object;
};

// The kubelet's view of one pod.
struct PodSim {
  std::string ns;
  std::string name;
  std::string deployment;  // the owning Deployment; "" once orphaned
  std::string image;
  Clock::time_point created;
  bool deleting = false;
  Clock::time_point deleting_since;
  bool crashed = false;
  int exit_code = 1;
  Clock::time_point crashed_at;
  std::string started_at;  // RFC 3339, once running
};

}  // namespace

struct FakeKubeApiServer::State {
  explicit State(FakeKubeApiServerOptions o) : options(std::move(o)) {}

  const FakeKubeApiServerOptions options;
  mutable std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  int64_t rv = 1000;         // the last resourceVersion handed out
  int64_t compacted_rv = 0;  // a watch from a resourceVersion below this is Gone
  std::deque<Event> history;
  // resource -> namespace -> name -> object
  std::map<std::string, std::map<std::string, std::map<std::string, json>>> objects;
  std::map<std::string, PodSim> pods;  // "ns/name"
  std::set<std::string> failing_images;
  std::map<int, Watcher> watchers;
  int next_watcher = 1;
  bool forbidden = false;
  std::set<std::string> verbs;
  int watches_started = 0;
  int gone_answers = 0;
  uint64_t next_uid = 1;
  int next_ip = 10;
  int next_node_port = 30000;
  std::mt19937_64 rng{42};
  std::thread sim;

  std::string NewUid() {
    uint64_t n = next_uid++;
    return absl::StrFormat("%08x-0000-4000-8000-%012x", static_cast<uint32_t>(rng()), n);
  }

  // Stamps a new resourceVersion on `obj`, records the event and sends it to matching watchers.
  void EmitLocked(const std::string& type, const std::string& resource, const std::string& ns,
                  json& obj) {
    obj["metadata"]["resourceVersion"] = std::to_string(++rv);
    history.push_back(Event{.rv = rv, .type = type, .resource = resource, .ns = ns, .object = obj});
    while (history.size() > options.event_history) {
      compacted_rv = history.front().rv;
      history.pop_front();
    }
    const std::string line = json{{"type", type}, {"object", obj}}.dump() + "\n";
    for (auto& [id, w] : watchers) {
      if (w.resource != resource || w.ns != ns) continue;
      absl::StatusOr<bool> m =
          MatchesLabelSelector(obj["metadata"].value("labels", json()), w.selector);
      if (m.ok() && *m) w.writer->Write(line);
    }
  }

  json* FindLocked(const std::string& resource, const std::string& ns, const std::string& name) {
    auto r = objects.find(resource);
    if (r == objects.end()) return nullptr;
    auto n = r->second.find(ns);
    if (n == r->second.end()) return nullptr;
    auto o = n->second.find(name);
    return o == n->second.end() ? nullptr : &o->second;
  }

  void EraseLocked(const std::string& resource, const std::string& ns, const std::string& name) {
    json* o = FindLocked(resource, ns, name);
    if (o == nullptr) return;
    json last = *o;
    objects[resource][ns].erase(name);
    if (resource == "pods") pods.erase(ns + "/" + name);
    EmitLocked("DELETED", resource, ns, last);
  }

  // Graceful deletion of a pod: deletionTimestamp now, gone after pod_terminate_delay_ms.
  void BeginPodDeletionLocked(PodSim& p) {
    if (p.deleting) return;
    p.deleting = true;
    p.deleting_since = Clock::now();
    json* o = FindLocked("pods", p.ns, p.name);
    if (o == nullptr) return;
    (*o)["metadata"]["deletionTimestamp"] = Rfc3339Now();
    (*o)["metadata"]["deletionGracePeriodSeconds"] = 30;
    EmitLocked("MODIFIED", "pods", p.ns, *o);
  }

  void CreatePodLocked(const std::string& ns, const json& deployment) {
    const std::string dname = deployment["metadata"]["name"];
    const json& tmpl = deployment["spec"]["template"];
    const std::string hash = HashSuffix(tmpl.dump());
    const std::string rs_name = dname + "-" + hash;
    const std::string name = rs_name + "-" + RandomSuffix(rng, 5);
    json labels = tmpl["metadata"].value("labels", json::object());
    labels["pod-template-hash"] = hash;
    json pod = {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata",
         {{"name", name},
          {"generateName", rs_name + "-"},
          {"namespace", ns},
          {"uid", NewUid()},
          {"creationTimestamp", Rfc3339Now()},
          {"labels", labels},
          {"ownerReferences", json::array({{{"apiVersion", "apps/v1"},
                                            {"kind", "ReplicaSet"},
                                            {"name", rs_name},
                                            {"uid", NewUid()},
                                            {"controller", true},
                                            {"blockOwnerDeletion", true}}})}}},
        {"spec", tmpl.value("spec", json::object())},
        {"status", {{"phase", "Pending"}, {"qosClass", "Burstable"}}},
    };
    if (tmpl["metadata"].contains("annotations")) {
      pod["metadata"]["annotations"] = tmpl["metadata"]["annotations"];
    }
    PodSim sim;
    sim.ns = ns;
    sim.name = name;
    sim.deployment = dname;
    sim.created = Clock::now();
    const json& containers = pod["spec"].value("containers", json::array());
    if (!containers.empty()) sim.image = containers[0].value("image", "");
    pods[ns + "/" + name] = sim;
    objects["pods"][ns][name] = pod;
    EmitLocked("ADDED", "pods", ns, objects["pods"][ns][name]);
  }

  // The status the kubelet would report for `p` now.
  json PodStatusLocked(PodSim& p, const json& pod, Clock::time_point now) {
    const auto scheduled = p.created + Ms(options.pod_schedule_delay_ms);
    const auto running = scheduled + Ms(options.pod_start_delay_ms);
    const auto ready = running + Ms(options.pod_ready_delay_ms);
    json status = pod["status"];
    auto condition = [&](const std::string& type, bool value, const std::string& reason = "") {
      json c = {{"type", type},
                {"status", value ? "True" : "False"},
                {"lastProbeTime", nullptr},
                {"lastTransitionTime", Rfc3339Now()}};
      if (!reason.empty()) c["reason"] = reason;
      // Keep the transition time of an unchanged condition (so an unchanged status compares equal).
      for (const json& old : pod["status"].value("conditions", json::array())) {
        if (old.value("type", "") == type && old.value("status", "") == c["status"] &&
            old.value("reason", "") == reason) {
          c["lastTransitionTime"] = old["lastTransitionTime"];
        }
      }
      return c;
    };
    const std::string cname = pod["spec"].value("containers", json::array()).empty()
                                  ? "main"
                                  : pod["spec"]["containers"][0].value("name", "main");
    if (now < scheduled) return status;
    status["conditions"] = json::array({condition("PodScheduled", true)});
    status["hostIP"] = "192.168.49.2";
    if (!status.contains("startTime")) status["startTime"] = Rfc3339Now();
    json cs = {{"name", cname},  {"image", p.image},  {"imageID", ""},
               {"ready", false}, {"restartCount", 0}, {"started", false}};
    if (failing_images.count(p.image) > 0) {
      const bool backoff = now >= scheduled + Ms(options.crash_restart_interval_ms);
      cs["state"] = {
          {"waiting",
           {{"reason", backoff ? "ImagePullBackOff" : "ErrImagePull"},
            {"message", backoff ? absl::StrCat("Back-off pulling image \"", p.image, "\"")
                                : absl::StrCat("rpc error: code = NotFound desc = failed to pull "
                                               "and unpack image \"",
                                               p.image, "\": not found")}}}};
      status["conditions"] = json::array({condition("Initialized", true),
                                          condition("Ready", false, "ContainersNotReady"),
                                          condition("ContainersReady", false, "ContainersNotReady"),
                                          condition("PodScheduled", true)});
      status["containerStatuses"] = json::array({cs});
      return status;
    }
    if (now < running) {
      cs["state"] = {{"waiting", {{"reason", "ContainerCreating"}}}};
      status["containerStatuses"] = json::array({cs});
      return status;
    }
    status["phase"] = "Running";
    status["podIP"] = absl::StrCat("10.244.0.", 2 + std::hash<std::string>{}(p.name) % 250);
    cs["imageID"] = absl::StrCat("docker-pullable://", p.image);
    if (p.started_at.empty()) p.started_at = Rfc3339Now();
    if (p.crashed) {
      const int restarts =
          1 + static_cast<int>((now - p.crashed_at) /
                               Ms(std::max<int64_t>(1, options.crash_restart_interval_ms)));
      cs["restartCount"] = restarts;
      cs["state"] = {{"waiting",
                      {{"reason", "CrashLoopBackOff"},
                       {"message", absl::StrCat("back-off 10s restarting failed container=", cname,
                                                " pod=", p.name, "_", p.ns)}}}};
      cs["lastState"] = {{"terminated",
                          {{"exitCode", p.exit_code},
                           {"reason", "Error"},
                           {"startedAt", p.started_at},
                           {"finishedAt", p.started_at}}}};
      status["conditions"] = json::array({condition("Initialized", true),
                                          condition("Ready", false, "ContainersNotReady"),
                                          condition("ContainersReady", false, "ContainersNotReady"),
                                          condition("PodScheduled", true)});
      status["containerStatuses"] = json::array({cs});
      return status;
    }
    const bool is_ready = now >= ready;
    cs["ready"] = is_ready;
    cs["started"] = true;
    cs["state"] = {{"running", {{"startedAt", p.started_at}}}};
    status["conditions"] =
        json::array({condition("Initialized", true),
                     condition("Ready", is_ready, is_ready ? "" : "ContainersNotReady"),
                     condition("ContainersReady", is_ready, is_ready ? "" : "ContainersNotReady"),
                     condition("PodScheduled", true)});
    status["containerStatuses"] = json::array({cs});
    return status;
  }

  // One step of the deployment controller, garbage collector and kubelet.
  void StepLocked() {
    const auto now = Clock::now();
    // Deployment controller (and foreground deletion of its dependents).
    for (auto& [ns, by_name] : objects["deployments"]) {
      std::vector<std::string> finished;
      for (auto& [dname, dep] : by_name) {
        std::vector<PodSim*> owned;
        for (auto& [key, p] : pods) {
          if (p.ns == ns && p.deployment == dname) owned.push_back(&p);
        }
        if (dep["metadata"].contains("deletionTimestamp")) {
          for (PodSim* p : owned) BeginPodDeletionLocked(*p);
          if (owned.empty()) finished.push_back(dname);
          continue;
        }
        int live = 0;
        for (PodSim* p : owned) live += p->deleting ? 0 : 1;
        const int want = dep["spec"].value("replicas", 1);
        for (; live < want; ++live) CreatePodLocked(ns, dep);
        for (auto it = owned.rbegin(); it != owned.rend() && live > want; ++it) {
          if (!(*it)->deleting) {
            BeginPodDeletionLocked(**it);
            --live;
          }
        }
        int ready = 0, total = 0;
        for (auto& [key, p] : pods) {
          if (p.ns != ns || p.deployment != dname) continue;
          ++total;
          json* o = FindLocked("pods", ns, p.name);
          if (o == nullptr) continue;
          for (const json& c : (*o)["status"].value("conditions", json::array())) {
            if (c.value("type", "") == "Ready" && c.value("status", "") == "True") ++ready;
          }
        }
        json status = {
            {"observedGeneration", dep["metadata"].value("generation", 1)},
            {"replicas", total},
            {"updatedReplicas", total},
            {"readyReplicas", ready},
            {"availableReplicas", ready},
            {"conditions", json::array({{{"type", "Available"},
                                         {"status", ready >= want ? "True" : "False"},
                                         {"reason", ready >= want ? "MinimumReplicasAvailable"
                                                                  : "MinimumReplicasUnavailable"}},
                                        {{"type", "Progressing"},
                                         {"status", "True"},
                                         {"reason", "NewReplicaSetAvailable"}}})}};
        if (total > ready) status["unavailableReplicas"] = total - ready;
        if (ready == 0) status.erase("readyReplicas");
        if (ready == 0) status.erase("availableReplicas");
        if (dep["status"] != status) {
          dep["status"] = status;
          EmitLocked("MODIFIED", "deployments", ns, dep);
        }
      }
      for (const std::string& dname : finished) EraseLocked("deployments", ns, dname);
    }
    // Garbage collector: pods whose Deployment is gone (background propagation).
    for (auto& [key, p] : pods) {
      if (!p.deployment.empty() && FindLocked("deployments", p.ns, p.deployment) == nullptr) {
        BeginPodDeletionLocked(p);
      }
    }
    // Kubelet.
    std::vector<std::pair<std::string, std::string>> gone;
    for (auto& [key, p] : pods) {
      json* o = FindLocked("pods", p.ns, p.name);
      if (o == nullptr) continue;
      if (p.deleting) {
        if (now >= p.deleting_since + Ms(options.pod_terminate_delay_ms)) {
          gone.emplace_back(p.ns, p.name);
        }
        continue;
      }
      json status = PodStatusLocked(p, *o, now);
      if (status != (*o)["status"]) {
        if (!(*o)["spec"].contains("nodeName")) (*o)["spec"]["nodeName"] = options.node_name;
        (*o)["status"] = std::move(status);
        EmitLocked("MODIFIED", "pods", p.ns, *o);
      }
    }
    for (const auto& [ns, name] : gone) EraseLocked("pods", ns, name);
    // Watches past their timeoutSeconds end (the client re-watches from its last version).
    for (auto it = watchers.begin(); it != watchers.end();) {
      if (now >= it->second.deadline) {
        it->second.writer->End();
        it = watchers.erase(it);
      } else {
        ++it;
      }
    }
  }

  void SimLoop() {
    std::unique_lock lock(mu);
    while (!stop) {
      StepLocked();
      cv.wait_for(lock, Ms(5));
    }
  }

  // --- request handling ---------------------------------------------------------------------

  void Serve(const std::string& resource, const http::Request& req,
             const std::shared_ptr<http::ResponseWriter>& w) {
    const ResourceInfo& info = Info(resource);
    const std::string ns = req.params.count("ns") ? req.params.at("ns") : "";
    const std::string name = req.params.count("name") ? req.params.at("name") : "";
    std::map<std::string, std::string> query = ParseQuery(req.query);
    std::string verb;
    if (req.method == "GET") {
      verb = !name.empty()                                         ? "get"
             : (query["watch"] == "1" || query["watch"] == "true") ? "watch"
                                                                   : "list";
    } else if (req.method == "POST") {
      verb = "create";
    } else if (req.method == "DELETE") {
      verb = "delete";
    }
    if (!options.token.empty() &&
        req.Header("Authorization") != absl::StrCat("Bearer ", options.token)) {
      return w->Respond(JsonResponse(401, StatusObject(401, "Unauthorized", "Unauthorized")));
    }
    std::unique_lock lock(mu);
    if (forbidden) {
      return w->Respond(JsonResponse(
          403, StatusObject(403, "Forbidden",
                            absl::StrCat(info.Qualified(),
                                         " is forbidden: User "
                                         "\"system:serviceaccount:weft:weft-control\" cannot ",
                                         verb, " resource \"", resource, "\" in API group \"",
                                         info.group, "\" in the namespace \"", ns, "\""),
                            {{"group", info.group}, {"kind", resource}})));
    }
    // RBAC needs the verb whatever the outcome (a GET answered 404 still needs "get").
    if (!verb.empty()) verbs.insert(verb + " " + resource);
    if (verb == "get") return Get(info, ns, name, w);
    if (verb == "list") return List(info, ns, query, w);
    if (verb == "watch") return Watch(info, ns, query, w);
    if (verb == "create") return Create(info, ns, req.body, w);
    if (verb == "delete") return Delete(info, ns, name, query, req.body, w);
    w->Respond(JsonResponse(
        405, StatusObject(405, "MethodNotAllowed", "the server does not allow this method")));
  }

  json NotFound(const ResourceInfo& info, const std::string& name) {
    return StatusObject(404, "NotFound",
                        absl::StrCat(info.Qualified(), " \"", name, "\" not found"),
                        {{"name", name}, {"group", info.group}, {"kind", info.resource}});
  }

  void Get(const ResourceInfo& info, const std::string& ns, const std::string& name,
           const std::shared_ptr<http::ResponseWriter>& w) {
    json* o = FindLocked(info.resource, ns, name);
    if (o == nullptr) return w->Respond(JsonResponse(404, NotFound(info, name)));
    w->Respond(JsonResponse(200, *o));
  }

  void List(const ResourceInfo& info, const std::string& ns,
            std::map<std::string, std::string>& query,
            const std::shared_ptr<http::ResponseWriter>& w) {
    json items = json::array();
    for (auto& [name, o] : objects[info.resource][ns]) {
      absl::StatusOr<bool> m =
          MatchesLabelSelector(o["metadata"].value("labels", json()), query["labelSelector"]);
      if (!m.ok()) {
        return w->Respond(
            JsonResponse(400, StatusObject(400, "BadRequest", std::string(m.status().message()))));
      }
      if (!*m) continue;
      // Items of a list carry no apiVersion / kind: the list's own say it.
      json item = o;
      item.erase("apiVersion");
      item.erase("kind");
      items.push_back(std::move(item));
    }
    w->Respond(JsonResponse(200, {{"apiVersion", info.api_version},
                                  {"kind", info.kind + "List"},
                                  {"metadata", {{"resourceVersion", std::to_string(rv)}}},
                                  {"items", std::move(items)}}));
  }

  void Watch(const ResourceInfo& info, const std::string& ns,
             std::map<std::string, std::string>& query,
             const std::shared_ptr<http::ResponseWriter>& w) {
    const std::string selector = query["labelSelector"];
    if (absl::StatusOr<bool> m = MatchesLabelSelector(json(), selector); !m.ok()) {
      return w->Respond(
          JsonResponse(400, StatusObject(400, "BadRequest", std::string(m.status().message()))));
    }
    const std::string from = query["resourceVersion"];
    int64_t from_rv = 0;
    if (!from.empty() && !absl::SimpleAtoi(from, &from_rv)) {
      return w->Respond(
          JsonResponse(400, StatusObject(400, "BadRequest",
                                         absl::StrCat("invalid resource version \"", from, "\""))));
    }
    if (from_rv != 0 && from_rv < compacted_rv) {
      ++gone_answers;
      json gone = StatusObject(
          410, "Expired",
          absl::StrCat("too old resource version: ", from_rv, " (", compacted_rv, ")"));
      if (options.gone_as_http_status) return w->Respond(JsonResponse(410, gone));
      w->StartStream(200, "application/json");
      w->Write(json{{"type", "ERROR"}, {"object", gone}}.dump() + "\n");
      w->End();
      return;
    }
    ++watches_started;
    w->StartStream(200, "application/json");
    auto matches = [&](const json& o) {
      absl::StatusOr<bool> m =
          MatchesLabelSelector(o["metadata"].value("labels", json()), selector);
      return m.ok() && *m;
    };
    if (from_rv == 0) {
      // "Get state and start at most recent": a synthetic ADDED for every object there is.
      for (auto& [name, o] : objects[info.resource][ns]) {
        if (matches(o)) w->Write(json{{"type", "ADDED"}, {"object", o}}.dump() + "\n");
      }
    } else {
      for (const Event& e : history) {
        if (e.rv > from_rv && e.resource == info.resource && e.ns == ns && matches(e.object)) {
          w->Write(json{{"type", e.type}, {"object", e.object}}.dump() + "\n");
        }
      }
    }
    Watcher watcher{.resource = info.resource,
                    .ns = ns,
                    .selector = selector,
                    .writer = w,
                    .deadline = Clock::time_point::max()};
    int64_t timeout_s = 0;
    if (absl::SimpleAtoi(query["timeoutSeconds"], &timeout_s) && timeout_s > 0) {
      watcher.deadline = Clock::now() + std::chrono::seconds(timeout_s);
    }
    const int id = next_watcher++;
    watchers.emplace(id, std::move(watcher));
    w->OnCancel([weak = weak_self, id] {
      if (auto self = weak.lock()) {
        std::lock_guard lock(self->mu);
        self->watchers.erase(id);
      }
    });
  }

  void Create(const ResourceInfo& info, const std::string& ns, const std::string& body,
              const std::shared_ptr<http::ResponseWriter>& w) {
    json obj = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (obj.is_discarded() || !obj.is_object()) {
      return w->Respond(JsonResponse(
          400, StatusObject(400, "BadRequest", "the object provided could not be decoded")));
    }
    if (obj.value("apiVersion", "") != info.api_version || obj.value("kind", "") != info.kind) {
      return w->Respond(JsonResponse(
          400, StatusObject(400, "BadRequest",
                            absl::StrCat("the API version in the data (",
                                         obj.value("apiVersion", ""), ") and kind (",
                                         obj.value("kind", ""), ") do not match the endpoint's ",
                                         info.api_version, " ", info.kind))));
    }
    if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
    json& meta = obj["metadata"];
    const std::string name = meta.value("name", "");
    auto invalid = [&](const std::string& field, const std::string& why) {
      w->Respond(JsonResponse(
          422, StatusObject(422, "Invalid",
                            absl::StrCat(info.kind, (info.group.empty() ? "" : "."), info.group,
                                         " \"", name, "\" is invalid: ", field, ": ", why),
                            {{"name", name},
                             {"group", info.group},
                             {"kind", info.kind},
                             {"causes", json::array({{{"reason", "FieldValueInvalid"},
                                                      {"message", why},
                                                      {"field", field}}})}})));
    };
    if (name.empty())
      return invalid("metadata.name", "Required value: name or generateName is required");
    if (meta.value("namespace", ns) != ns) {
      return w->Respond(JsonResponse(
          400, StatusObject(400, "BadRequest",
                            "the namespace of the provided object does not match the namespace "
                            "sent on the request")));
    }
    const bool name_ok =
        info.resource == "services" ? IsDns1035Label(name) : IsDns1123Subdomain(name);
    if (!name_ok) {
      return invalid("metadata.name",
                     absl::StrCat("Invalid value: \"", name,
                                  "\": a lowercase RFC 1123 name must consist of lower case "
                                  "alphanumeric characters, '-' or '.'"));
    }
    auto labels_ok = [&](const json& labels, const std::string& field) {
      if (labels.is_null()) return true;
      if (!labels.is_object()) {
        invalid(field, "must be a map");
        return false;
      }
      for (auto& [k, v] : labels.items()) {
        if (!IsLabelKey(k) || !v.is_string() || !IsLabelValue(v.get<std::string>())) {
          invalid(absl::StrCat(field, "[", k, "]"),
                  absl::StrCat("Invalid value: ", v.dump(),
                               ": a valid label must be 63 "
                               "characters or less, alphanumeric, '-', '_' or '.'"));
          return false;
        }
      }
      return true;
    };
    if (!labels_ok(meta.value("labels", json()), "metadata.labels")) return;
    if (info.resource == "deployments") {
      const json& spec = obj.value("spec", json::object());
      const json match = spec.value("selector", json::object()).value("matchLabels", json());
      const json tmpl_labels = spec.value("template", json::object())
                                   .value("metadata", json::object())
                                   .value("labels", json());
      if (!match.is_object() || match.empty()) {
        return invalid("spec.selector", "Required value");
      }
      if (!labels_ok(tmpl_labels, "spec.template.metadata.labels")) return;
      for (auto& [k, v] : match.items()) {
        if (!tmpl_labels.is_object() || tmpl_labels.value(k, json()) != v) {
          return invalid("spec.template.metadata.labels",
                         "Invalid value: `selector` does not match template `labels`");
        }
      }
      const json containers = spec.value("template", json::object())
                                  .value("spec", json::object())
                                  .value("containers", json());
      if (!containers.is_array() || containers.empty()) {
        return invalid("spec.template.spec.containers", "Required value");
      }
      for (size_t i = 0; i < containers.size(); ++i) {
        if (containers[i].value("name", "").empty() || containers[i].value("image", "").empty()) {
          return invalid(absl::StrCat("spec.template.spec.containers[", i, "]"),
                         "Required value: name and image");
        }
      }
    }
    if (info.resource == "services") {
      const json ports = obj.value("spec", json::object()).value("ports", json());
      if (!ports.is_array() || ports.empty()) return invalid("spec.ports", "Required value");
    }
    if (FindLocked(info.resource, ns, name) != nullptr) {
      return w->Respond(JsonResponse(
          409, StatusObject(409, "AlreadyExists",
                            absl::StrCat(info.Qualified(), " \"", name, "\" already exists"),
                            {{"name", name}, {"group", info.group}, {"kind", info.resource}})));
    }
    meta["namespace"] = ns;
    meta["uid"] = NewUid();
    meta["creationTimestamp"] = Rfc3339Now();
    if (info.resource == "deployments") {
      meta["generation"] = 1;
      if (!obj["spec"].contains("replicas")) obj["spec"]["replicas"] = 1;
      if (!obj["spec"].contains("strategy")) {
        obj["spec"]["strategy"] = {
            {"type", "RollingUpdate"},
            {"rollingUpdate", {{"maxUnavailable", "25%"}, {"maxSurge", "25%"}}}};
      }
      obj["status"] = json::object();
    } else if (info.resource == "services") {
      json& spec = obj["spec"];
      if (!spec.contains("type")) spec["type"] = "ClusterIP";
      const std::string ip = absl::StrCat("10.96.0.", next_ip++ % 250 + 2);
      spec["clusterIP"] = ip;
      spec["clusterIPs"] = json::array({ip});
      spec["ipFamilies"] = json::array({"IPv4"});
      spec["sessionAffinity"] = "None";
      for (json& p : spec["ports"]) {
        if (!p.contains("protocol")) p["protocol"] = "TCP";
        if (!p.contains("targetPort")) p["targetPort"] = p.value("port", 0);
        if (spec["type"] == "NodePort" || spec["type"] == "LoadBalancer") {
          if (!p.contains("nodePort")) p["nodePort"] = next_node_port++;
        }
      }
      obj["status"] = {{"loadBalancer", json::object()}};
    }
    json& stored = objects[info.resource][ns][name];
    stored = std::move(obj);
    EmitLocked("ADDED", info.resource, ns, stored);
    w->Respond(JsonResponse(201, stored));
  }

  void Delete(const ResourceInfo& info, const std::string& ns, const std::string& name,
              std::map<std::string, std::string>& query, const std::string& body,
              const std::shared_ptr<http::ResponseWriter>& w) {
    json* o = FindLocked(info.resource, ns, name);
    if (o == nullptr) return w->Respond(JsonResponse(404, NotFound(info, name)));
    std::string policy = query["propagationPolicy"];
    if (!body.empty()) {
      json opts = json::parse(body, nullptr, false);
      if (opts.is_discarded() || !opts.is_object()) {
        return w->Respond(JsonResponse(
            400, StatusObject(400, "BadRequest", "the DeleteOptions could not be decoded")));
      }
      if (opts.contains("propagationPolicy")) policy = opts.value("propagationPolicy", "");
    }
    if (policy.empty()) policy = "Background";
    if (policy != "Background" && policy != "Foreground" && policy != "Orphan") {
      return w->Respond(JsonResponse(
          422,
          StatusObject(422, "Invalid",
                       absl::StrCat("propagationPolicy: Unsupported value: \"", policy, "\""))));
    }
    json success = {{"kind", "Status"},
                    {"apiVersion", "v1"},
                    {"metadata", json::object()},
                    {"status", "Success"},
                    {"details",
                     {{"name", name},
                      {"group", info.group},
                      {"kind", info.resource},
                      {"uid", (*o)["metadata"].value("uid", "")}}}};
    if (info.resource == "pods") {
      auto it = pods.find(ns + "/" + name);
      if (it != pods.end()) BeginPodDeletionLocked(it->second);
      return w->Respond(JsonResponse(200, *FindLocked("pods", ns, name)));
    }
    if (info.resource == "deployments") {
      if ((*o)["metadata"].contains("deletionTimestamp")) return w->Respond(JsonResponse(202, *o));
      if (policy == "Foreground") {
        (*o)["metadata"]["deletionTimestamp"] = Rfc3339Now();
        (*o)["metadata"]["deletionGracePeriodSeconds"] = 0;
        (*o)["metadata"]["finalizers"] = json::array({"foregroundDeletion"});
        EmitLocked("MODIFIED", info.resource, ns, *o);
        return w->Respond(JsonResponse(200, *o));
      }
      if (policy == "Orphan") {
        for (auto& [key, p] : pods) {
          if (p.ns == ns && p.deployment == name) {
            p.deployment.clear();
            json* pod = FindLocked("pods", ns, p.name);
            if (pod != nullptr) {
              (*pod)["metadata"].erase("ownerReferences");
              EmitLocked("MODIFIED", "pods", ns, *pod);
            }
          }
        }
      }
    }
    EraseLocked(info.resource, ns, name);
    w->Respond(JsonResponse(200, success));
  }

  std::weak_ptr<State> weak_self;
};

FakeKubeApiServer::FakeKubeApiServer(FakeKubeApiServerOptions options)
    : options_(std::move(options)), state_(std::make_shared<State>(options_)) {
  state_->weak_self = state_;
}

namespace {
std::mutex& ServerMu() {
  static std::mutex mu;  // guards every instance's server_ (StopAnswering vs ResumeAnswering)
  return mu;
}
}  // namespace

absl::StatusOr<std::unique_ptr<FakeKubeApiServer>> FakeKubeApiServer::Start(
    FakeKubeApiServerOptions options) {
  std::unique_ptr<FakeKubeApiServer> s(new FakeKubeApiServer(std::move(options)));
  if (absl::Status st = s->Listen(0); !st.ok()) return st;
  State* state = s->state_.get();
  state->sim = std::thread([state] { state->SimLoop(); });
  return s;
}

absl::Status FakeKubeApiServer::Listen(uint16_t port) {
  http::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.threads = 2;
  o.tls = options_.tls;
  o.error_response = [](int status, std::string message) {
    std::string reason = status == 404   ? "NotFound"
                         : status == 405 ? "MethodNotAllowed"
                                         : "BadRequest";
    return JsonResponse(status, StatusObject(status, reason, message));
  };
  auto server = std::make_unique<http::HttpServer>(o);
  const std::vector<std::pair<std::string, std::string>> bases = {
      {"deployments", "/apis/apps/v1/namespaces/{ns}/deployments"},
      {"services", "/api/v1/namespaces/{ns}/services"},
      {"pods", "/api/v1/namespaces/{ns}/pods"},
  };
  for (const auto& [resource, base] : bases) {
    // Captured by a named copy: clang 14 cannot capture a structured binding.
    auto handler = [state = state_, kind = resource](const http::Request& req,
                                                     std::shared_ptr<http::ResponseWriter> w) {
      state->Serve(kind, req, w);
    };
    server->Handle("GET", base, handler);
    if (resource != "pods") server->Handle("POST", base, handler);
    server->Handle("GET", base + "/{name}", handler);
    server->Handle("DELETE", base + "/{name}", handler);
  }
  if (absl::Status st = server->Start(); !st.ok()) return st;
  std::lock_guard lock(ServerMu());
  port_ = server->port();
  server_ = std::move(server);
  return absl::OkStatus();
}

FakeKubeApiServer::~FakeKubeApiServer() {
  {
    std::lock_guard lock(state_->mu);
    state_->stop = true;
  }
  state_->cv.notify_all();
  if (state_->sim.joinable()) state_->sim.join();
  StopAnswering();
}

std::string FakeKubeApiServer::url() const {
  return absl::StrCat(options_.tls ? "https" : "http", "://127.0.0.1:", port_);
}

uint16_t FakeKubeApiServer::port() const { return port_; }

absl::Status FakeKubeApiServer::CrashPod(const std::string& ns, const std::string& name,
                                         int exit_code) {
  std::lock_guard lock(state_->mu);
  auto it = state_->pods.find(ns + "/" + name);
  if (it == state_->pods.end()) {
    return absl::NotFoundError(absl::StrCat("pod ", ns, "/", name, " not found"));
  }
  it->second.crashed = true;
  it->second.exit_code = exit_code;
  it->second.crashed_at = Clock::now();
  return absl::OkStatus();
}

void FakeKubeApiServer::FailImagePulls(const std::string& image) {
  std::lock_guard lock(state_->mu);
  state_->failing_images.insert(image);
}

absl::Status FakeKubeApiServer::DeletePod(const std::string& ns, const std::string& name) {
  std::lock_guard lock(state_->mu);
  auto it = state_->pods.find(ns + "/" + name);
  if (it == state_->pods.end()) {
    return absl::NotFoundError(absl::StrCat("pod ", ns, "/", name, " not found"));
  }
  state_->BeginPodDeletionLocked(it->second);
  return absl::OkStatus();
}

void FakeKubeApiServer::StopAnswering() {
  std::unique_ptr<http::HttpServer> server;
  {
    std::lock_guard lock(ServerMu());
    server = std::move(server_);
  }
  if (server) server->Stop(0);
  server.reset();
  std::lock_guard lock(state_->mu);
  state_->watchers.clear();
}

absl::Status FakeKubeApiServer::ResumeAnswering() {
  {
    std::lock_guard lock(ServerMu());
    if (server_) return absl::OkStatus();
  }
  return Listen(port_);
}

void FakeKubeApiServer::SetForbidden(bool on) {
  std::lock_guard lock(state_->mu);
  state_->forbidden = on;
}

void FakeKubeApiServer::CompactHistory() {
  std::lock_guard lock(state_->mu);
  state_->history.clear();
  state_->compacted_rv = state_->rv + 1;
}

std::optional<nlohmann::json> FakeKubeApiServer::Get(const std::string& resource,
                                                     const std::string& ns,
                                                     const std::string& name) const {
  std::lock_guard lock(state_->mu);
  json* o = state_->FindLocked(resource, ns, name);
  if (o == nullptr) return std::nullopt;
  return *o;
}

std::vector<std::string> FakeKubeApiServer::Names(const std::string& resource,
                                                  const std::string& ns,
                                                  const std::string& label_selector) const {
  std::lock_guard lock(state_->mu);
  std::vector<std::string> out;
  for (auto& [name, o] : state_->objects[resource][ns]) {
    absl::StatusOr<bool> m =
        MatchesLabelSelector(o["metadata"].value("labels", json()), label_selector);
    if (m.ok() && *m) out.push_back(name);
  }
  return out;
}

std::set<std::string> FakeKubeApiServer::VerbsUsed() const {
  std::lock_guard lock(state_->mu);
  return state_->verbs;
}

int FakeKubeApiServer::watches_started() const {
  std::lock_guard lock(state_->mu);
  return state_->watches_started;
}

int FakeKubeApiServer::gone_answers() const {
  std::lock_guard lock(state_->mu);
  return state_->gone_answers;
}

int64_t FakeKubeApiServer::resource_version() const {
  std::lock_guard lock(state_->mu);
  return state_->rv;
}

}  // namespace weft::testing
