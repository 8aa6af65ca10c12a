// SPDX-License-Identifier: Apache-2.0
#include "control/providers/hosts/hosts_provider.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/agent/agent_api.h"
#include "control/reconciler/http_fetch.h"

namespace weft::control {
namespace {

using nlohmann::json;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string TrimSlash(std::string url) {
  while (absl::EndsWith(url, "/")) url.pop_back();
  return url;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HostsProvider>> HostsProvider::Create(HostsProviderOptions options) {
  if (options.hosts.empty()) return absl::InvalidArgumentError("hosts: empty (list agent URLs)");
  std::set<std::string> seen;
  for (size_t i = 0; i < options.hosts.size(); ++i) {
    std::string& url = options.hosts[i];
    url = TrimSlash(url);
    std::string host, port, target;
    if (!SplitHttpUrl(url, &host, &port, &target).ok() || host.empty() || target != "/") {
      return absl::InvalidArgumentError(absl::StrCat(
          "hosts[", i, "]: '", url, "' is not an agent URL like http://10.0.0.1:7071"));
    }
    if (!seen.insert(url).second) {
      return absl::InvalidArgumentError(absl::StrCat("hosts[", i, "]: '", url, "' listed twice"));
    }
  }
  if (options.token.empty()) {
    return absl::InvalidArgumentError("token: empty (the agents' shared bearer token)");
  }
  if (options.timeout_ms < 1) return absl::InvalidArgumentError("timeout_ms: must be >= 1");
  return std::unique_ptr<HostsProvider>(new HostsProvider(std::move(options)));
}

HostsProvider::HostsProvider(HostsProviderOptions options) : options_(std::move(options)) {
  for (const std::string& url : options_.hosts)
    hosts_.push_back({.url = url, .last_ok_ms = -1, .last_fail_ms = -1, .last_error = ""});
}

absl::StatusOr<json> HostsProvider::Call(size_t host, const std::string& method,
                                         const std::string& path, const std::string& body) {
  const std::string& url = options_.hosts[host];
  FetchRequest r;
  r.method = method;
  r.url = url + path;
  r.body = body;
  r.bearer_token = options_.token;
  r.timeout_ms = options_.timeout_ms;
  absl::StatusOr<FetchResponse> resp = HttpFetch(r);
  absl::StatusOr<json> out = absl::UnknownError("unset");
  if (!resp.ok()) {
    out = absl::UnavailableError(
        absl::StrCat("host ", url, " unreachable: ", resp.status().message()));
  } else if (resp->status == 401 || resp->status == 403) {
    // A wrong token is a configuration error, but the effect is the same: the host cannot be used.
    out = absl::UnavailableError(absl::StrCat(
        "host ", url, " unreachable: ",
        agent::StatusFromError(resp->status, resp->body, "").message(), " (check the token)"));
  } else if (resp->status >= 300) {
    out = agent::StatusFromError(resp->status, resp->body, absl::StrCat("host ", url));
  } else {
    json j = json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      out = absl::UnavailableError(absl::StrCat("host ", url, " unreachable: answer is not JSON"));
    } else {
      out = std::move(j);
    }
  }
  std::lock_guard lock(mu_);
  HostState& h = hosts_[host];
  if (out.ok() || out.status().code() != absl::StatusCode::kUnavailable ||
      !absl::StrContains(out.status().message(), " unreachable: ")) {
    h.last_ok_ms = SteadyMs();
  } else {
    h.last_fail_ms = SteadyMs();
    h.last_error = std::string(out.status().message());
  }
  return out;
}

std::vector<absl::StatusOr<json>> HostsProvider::CallAll(const std::string& method,
                                                         const std::string& path) {
  const size_t n = options_.hosts.size();
  std::vector<absl::StatusOr<json>> out(n, absl::UnknownError("not called"));
  if (n == 1) {
    out[0] = Call(0, method, path);
    return out;
  }
  // One thread per host: an unreachable host costs one timeout, not one per host.
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] { out[i] = Call(i, method, path); });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

void HostsProvider::Remember(size_t host, const ReplicaStatus& status) {
  Placed& p = placed_[status.id];
  p.host = host;
  p.status = status;
  p.seq = ++seq_;
}

ReplicaStatus HostsProvider::Unreachable(const ReplicaStatus& last, const std::string& url,
                                         const std::string& why) {
  ReplicaStatus s = last;
  s.phase = ReplicaPhase::kFailed;
  const std::string prefix = absl::StrCat("host ", url, " unreachable: ");
  s.failure_reason = absl::StartsWith(why, prefix) ? why : absl::StrCat(prefix, why);
  return s;
}

absl::StatusOr<ProviderCapacity> HostsProvider::Capacity() {
  std::vector<absl::StatusOr<json>> answers = CallAll("GET", "/v1/capacity");
  ProviderCapacity total;
  std::map<std::string, double> price_slots;  // kind -> sum of usd_per_hour x total
  std::set<std::string> regions;
  std::vector<std::string> errors;
  bool any = false;
  for (const auto& a : answers) {
    absl::StatusOr<ProviderCapacity> c =
        a.ok() ? agent::CapacityFromJson(*a) : absl::StatusOr<ProviderCapacity>(a.status());
    if (!c.ok()) {
      errors.emplace_back(c.status().message());
      continue;
    }
    any = true;
    for (const AcceleratorSlots& s : c->accelerators) {
      auto it = std::find_if(total.accelerators.begin(), total.accelerators.end(),
                             [&](const AcceleratorSlots& t) { return t.kind == s.kind; });
      if (it == total.accelerators.end()) {
        total.accelerators.push_back({.kind = s.kind, .total = 0, .free = 0, .usd_per_hour = 0});
        it = total.accelerators.end() - 1;
      }
      it->total += s.total;
      it->free += s.free;
      price_slots[s.kind] += s.usd_per_hour * s.total;
    }
    regions.insert(c->regions.begin(), c->regions.end());
  }
  if (!any) {
    return absl::UnavailableError(
        absl::StrCat("no agent reachable: ", absl::StrJoin(errors, "; ")));
  }
  // The price of a slot: the mean over the group's slots of that kind.
  for (AcceleratorSlots& s : total.accelerators) {
    s.usd_per_hour = options_.usd_per_hour >= 0 ? options_.usd_per_hour
                     : s.total > 0              ? price_slots[s.kind] / s.total
                                                : 0;
  }
  if (!options_.region.empty()) {
    total.regions = {options_.region};
  } else {
    total.regions.assign(regions.begin(), regions.end());
  }
  return total;
}

absl::StatusOr<ReplicaStatus> HostsProvider::Provision(const ReplicaSpec& spec) {
  if (spec.id.empty()) return absl::InvalidArgumentError("replica id: empty");
  if (spec.model_path.empty()) return absl::InvalidArgumentError("model_path: empty");
  if (spec.accelerator_count < 1) return absl::InvalidArgumentError("accelerator_count: < 1");
  // One Provision per id at a time, so concurrent retries cannot land on two hosts.
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !provisioning_.contains(spec.id); });
    provisioning_.insert(spec.id);
  }
  absl::StatusOr<ReplicaStatus> out = ProvisionNew(spec);
  {
    std::lock_guard lock(mu_);
    provisioning_.erase(spec.id);
  }
  cv_.notify_all();
  return out;
}

absl::StatusOr<ReplicaStatus> HostsProvider::ProvisionNew(const ReplicaSpec& spec) {
  const std::string body = agent::ToJson(spec).dump();
  std::optional<size_t> known;
  {
    std::lock_guard lock(mu_);
    if (deferred_terminate_.contains(spec.id)) {
      return absl::UnavailableError(absl::StrCat("replica ", spec.id,
                                                 " is still being terminated on ",
                                                 options_.hosts[deferred_terminate_[spec.id]]));
    }
    if (auto it = placed_.find(spec.id); it != placed_.end()) known = it->second.host;
  }
  if (known) {
    // The agent is idempotent by id: it answers with the replica's current status.
    absl::StatusOr<json> a = Call(*known, "POST", "/v1/replicas", body);
    std::lock_guard lock(mu_);
    auto it = placed_.find(spec.id);
    if (!a.ok()) {
      if (a.status().code() == absl::StatusCode::kUnavailable && it != placed_.end()) {
        return Unreachable(it->second.status, options_.hosts[*known],
                           std::string(a.status().message()));
      }
      return a.status();
    }
    absl::StatusOr<ReplicaStatus> s = agent::ReplicaStatusFromJson(*a);
    if (!s.ok()) return s.status();
    Remember(*known, *s);
    return s;
  }

  // Unknown here: some agent may hold it already (a retry after a control restart).
  std::vector<absl::StatusOr<json>> lists = CallAll("GET", "/v1/replicas");
  std::vector<std::string> errors;
  for (size_t i = 0; i < lists.size(); ++i) {
    if (!lists[i].ok()) {
      errors.emplace_back(lists[i].status().message());
      continue;
    }
    absl::StatusOr<std::vector<ReplicaStatus>> list = agent::ReplicaListFromJson(*lists[i]);
    if (!list.ok()) continue;
    for (const ReplicaStatus& s : *list) {
      if (s.id != spec.id) continue;
      std::lock_guard lock(mu_);
      Remember(i, s);
      return s;
    }
  }

  // Place it: the reachable hosts with room, most free slots first (spreads a group's replicas).
  std::vector<absl::StatusOr<json>> caps = CallAll("GET", "/v1/capacity");
  std::vector<std::pair<int, size_t>> candidates;  // (free slots, host)
  bool any_reachable = false;
  for (size_t i = 0; i < caps.size(); ++i) {
    if (!caps[i].ok()) continue;
    absl::StatusOr<ProviderCapacity> c = agent::CapacityFromJson(*caps[i]);
    if (!c.ok()) continue;
    any_reachable = true;
    const AcceleratorSlots* a = c->Find(spec.accelerator);
    if (a != nullptr && a->free >= spec.accelerator_count) candidates.emplace_back(a->free, i);
  }
  if (!any_reachable) {
    return absl::UnavailableError(
        absl::StrCat("no agent reachable: ", absl::StrJoin(errors, "; ")));
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [free, host] : candidates) {
    absl::StatusOr<json> a = Call(host, "POST", "/v1/replicas", body);
    if (!a.ok()) {
      // Taken meanwhile by a concurrent Provision, or gone: try the next host.
      if (a.status().code() == absl::StatusCode::kResourceExhausted ||
          a.status().code() == absl::StatusCode::kUnavailable) {
        continue;
      }
      return a.status();
    }
    absl::StatusOr<ReplicaStatus> s = agent::ReplicaStatusFromJson(*a);
    if (!s.ok()) return s.status();
    std::lock_guard lock(mu_);
    Remember(host, *s);
    return s;
  }
  return absl::ResourceExhaustedError(absl::StrCat("hosts provider: no reachable host has ",
                                                   spec.accelerator_count, " free ",
                                                   spec.accelerator, " slots"));
}

absl::Status HostsProvider::Terminate(const ReplicaId& id) {
  const std::string path = "/v1/replicas/" + agent::EncodePathSegment(id);
  std::optional<size_t> known;
  {
    std::lock_guard lock(mu_);
    if (deferred_terminate_.contains(id)) return absl::OkStatus();
    if (auto it = placed_.find(id); it != placed_.end()) known = it->second.host;
  }
  if (!known) {
    // Unknown here (a control restart): whichever agent holds it stops it. Unreachable agents
    // cannot be asked; the control plane terminates what they hold once they answer again.
    for (const auto& a : CallAll("DELETE", path)) {
      if (!a.ok() && a.status().code() != absl::StatusCode::kUnavailable) return a.status();
    }
    return absl::OkStatus();
  }
  absl::StatusOr<json> a = Call(*known, "DELETE", path);
  if (a.ok()) return absl::OkStatus();
  if (a.status().code() != absl::StatusCode::kUnavailable) return a.status();
  // The host is down: the replica is dropped from the list now and its termination is sent when
  // the host answers again (an agent that was only cut off keeps its engines running meanwhile).
  std::lock_guard lock(mu_);
  placed_.erase(id);
  deferred_terminate_[id] = *known;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReplicaStatus>> HostsProvider::List() {
  uint64_t seq_at_start;
  {
    std::lock_guard lock(mu_);
    seq_at_start = seq_;
  }
  std::vector<absl::StatusOr<json>> answers = CallAll("GET", "/v1/replicas");
  std::vector<ReplicaStatus> out;
  std::vector<std::pair<size_t, ReplicaId>> to_terminate;
  {
    std::lock_guard lock(mu_);
    for (size_t h = 0; h < answers.size(); ++h) {
      absl::StatusOr<std::vector<ReplicaStatus>> list =
          answers[h].ok() ? agent::ReplicaListFromJson(*answers[h])
                          : absl::StatusOr<std::vector<ReplicaStatus>>(answers[h].status());
      if (!list.ok()) {
        for (const auto& [id, p] : placed_) {
          if (p.host == h) {
            out.push_back(
                Unreachable(p.status, options_.hosts[h], std::string(list.status().message())));
          }
        }
        continue;
      }
      std::set<ReplicaId> listed;
      for (const ReplicaStatus& s : *list) {
        if (auto d = deferred_terminate_.find(s.id);
            d != deferred_terminate_.end() && d->second == h) {
          if (s.phase != ReplicaPhase::kDraining) to_terminate.emplace_back(h, s.id);
          continue;  // terminated already as far as the control plane knows
        }
        listed.insert(s.id);
        auto it = placed_.find(s.id);
        if (it != placed_.end() && it->second.host != h) {
          // The same id on two hosts (only after a crash in the middle of a Provision): list the
          // one this provider placed; the other is not listed, so it is left to be cleaned up.
          continue;
        }
        Placed& p = placed_[s.id];
        p.host = h;
        p.status = s;
        out.push_back(s);
      }
      // Deferred terminations the host no longer holds are done.
      std::erase_if(deferred_terminate_, [&](const auto& d) {
        if (d.second != h) return false;
        for (const ReplicaStatus& s : *list) {
          if (s.id == d.first) return false;
        }
        return true;
      });
      // Replicas this host no longer lists are gone, except ones placed after this List began
      // (their Provision may have answered after the host's list was read).
      for (auto it = placed_.begin(); it != placed_.end();) {
        if (it->second.host == h && !listed.contains(it->first)) {
          if (it->second.seq > seq_at_start) {
            out.push_back(it->second.status);
            ++it;
            continue;
          }
          it = placed_.erase(it);
          continue;
        }
        ++it;
      }
    }
  }
  for (const auto& [h, id] : to_terminate) {
    (void)Call(h, "DELETE", "/v1/replicas/" + agent::EncodePathSegment(id));
  }
  return out;
}

ProviderHealth HostsProvider::Health() {
  const int64_t now = SteadyMs();
  // health_cache_ms 0: always probe (also within the millisecond of the last call).
  const bool cache = options_.health_cache_ms > 0;
  bool fresh = cache;
  if (cache) {
    std::lock_guard lock(mu_);
    for (const HostState& h : hosts_) {
      const int64_t last = std::max(h.last_ok_ms, h.last_fail_ms);
      if (h.last_ok_ms >= 0 && h.last_ok_ms >= h.last_fail_ms &&
          now - h.last_ok_ms <= options_.health_cache_ms) {
        return {};  // one agent answered a moment ago
      }
      if (last < 0 || now - last > options_.health_cache_ms) fresh = false;
    }
  }
  if (!fresh) {
    for (const auto& a : CallAll("GET", "/v1/health")) {  // authenticated: a bad token shows
      if (a.ok()) return {};
    }
  }
  std::lock_guard lock(mu_);
  std::vector<std::string> errors;
  for (const HostState& h : hosts_) {
    // After a probe that every host failed, an earlier success in the same millisecond is stale.
    if (fresh && h.last_ok_ms >= 0 && h.last_ok_ms >= h.last_fail_ms) return {};
    errors.push_back(h.last_error.empty() ? absl::StrCat("host ", h.url, " not contacted yet")
                                          : h.last_error);
  }
  return {false, absl::StrCat("no agent reachable: ", absl::StrJoin(errors, "; "))};
}

std::string HostsProvider::HostOf(const ReplicaId& id) const {
  std::lock_guard lock(mu_);
  auto it = placed_.find(id);
  return it == placed_.end() ? "" : options_.hosts[it->second.host];
}

}  // namespace weft::control
