// SPDX-License-Identifier: Apache-2.0
#include "gateway/upstream/load_poller.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace weft::gateway::upstream {

using Clock = std::chrono::steady_clock;

namespace {
Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}
}  // namespace

LoadPoller::LoadPoller(UpstreamClient* client, LoadPollerOptions options, LoadReportFn on_report)
    : client_(client), options_(std::move(options)), on_report_(std::move(on_report)) {}

LoadPoller::~LoadPoller() { Stop(); }

void LoadPoller::SetReplicas(std::vector<PolledReplica> replicas) {
  std::vector<std::shared_ptr<Exchange>> to_cancel;
  {
    std::lock_guard lock(mu_);
    std::map<std::string, Entry> next;
    for (PolledReplica& r : replicas) {
      auto it = entries_.find(r.id);
      if (it != entries_.end() && it->second.replica == r) {
        next.emplace(r.id, std::move(it->second));
        entries_.erase(it);
        continue;
      }
      Entry e;
      e.replica = std::move(r);
      e.generation = next_generation_++;
      e.next_poll = Clock::now();
      std::string id = e.replica.id;
      next.emplace(std::move(id), std::move(e));
    }
    for (auto& [id, e] : entries_) {
      if (e.exchange != nullptr) to_cancel.push_back(std::move(e.exchange));
    }
    entries_ = std::move(next);
  }
  cv_.notify_all();
  for (auto& ex : to_cancel) ex->Cancel();
}

void LoadPoller::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void LoadPoller::Stop() {
  std::vector<std::shared_ptr<Exchange>> to_cancel;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [id, e] : entries_) {
      if (e.exchange != nullptr) to_cancel.push_back(e.exchange);
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& ex : to_cancel) ex->Cancel();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return in_flight_ == 0; });
}

void LoadPoller::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const Clock::time_point now = Clock::now();
    Clock::time_point wake = now + Seconds(options_.interval_s);
    std::vector<std::tuple<std::string, uint64_t, Target>> due;
    for (auto& [id, e] : entries_) {
      if (e.in_flight) continue;
      if (e.next_poll <= now) {
        e.in_flight = true;
        e.next_poll = now + Seconds(options_.interval_s);
        ++in_flight_;
        due.emplace_back(id, e.generation, e.replica.target);
      } else {
        wake = std::min(wake, e.next_poll);
      }
    }
    if (!due.empty()) {
      lock.unlock();
      for (auto& [id, generation, target] : due) Poll(id, generation, target);
      lock.lock();
      continue;  // recompute: a poll may already have finished
    }
    cv_.wait_until(lock, wake);
  }
}

void LoadPoller::SetExchange(const std::string& id, uint64_t generation,
                             std::shared_ptr<Exchange> ex) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (!stopping_ && it != entries_.end() && it->second.generation == generation) {
      it->second.exchange = std::move(ex);
      return;
    }
  }
  ex->Cancel();  // stopped or removed meanwhile
}

void LoadPoller::Poll(const std::string& id, uint64_t generation, Target target) {
  const Clock::time_point start = Clock::now();
  if (!options_.check_health) return FetchLoad(id, generation, std::move(target), start);
  UpstreamRequest request;
  request.target = options_.health_path;
  auto ex = client_->Fetch(
      target, std::move(request),
      [this, id, generation, target, start](absl::StatusOr<UpstreamResponse> r) {
        if (!r.ok()) return Report(id, generation, r.status(), start);
        if (r->status != 200) {
          return Report(id, generation,
                        absl::UnavailableError(
                            absl::StrCat("health check of ", target.Key(), ": HTTP ", r->status)),
                        start);
        }
        if (!options_.fetch_load) {
          api::LoadReport healthy;
          healthy.ready = true;
          return Report(id, generation, std::move(healthy), start);
        }
        FetchLoad(id, generation, target, start);
      },
      options_.timeouts);
  SetExchange(id, generation, std::move(ex));
}

void LoadPoller::FetchLoad(const std::string& id, uint64_t generation, Target target,
                           Clock::time_point start) {
  UpstreamRequest request;
  request.target = options_.load_path;
  auto ex = client_->Fetch(
      target, std::move(request),
      [this, id, generation, key = target.Key(), start](absl::StatusOr<UpstreamResponse> r) {
        if (!r.ok()) return Report(id, generation, r.status(), start);
        if (r->status != 200) {
          return Report(id, generation,
                        absl::UnavailableError(
                            absl::StrCat("GET ", key, options_.load_path, ": HTTP ", r->status)),
                        start);
        }
        Report(id, generation, api::ParseLoadReport(r->body), start);
      },
      options_.timeouts);
  SetExchange(id, generation, std::move(ex));
}

void LoadPoller::Report(const std::string& id, uint64_t generation,
                        absl::StatusOr<api::LoadReport> report, Clock::time_point start) {
  bool deliver;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    deliver = !stopping_ && it != entries_.end() && it->second.generation == generation;
  }
  if (deliver) {
    on_report_(id, std::move(report),
               std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start));
  }
  {
    std::lock_guard lock(mu_);
    --in_flight_;
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.generation == generation) {
      it->second.in_flight = false;
      it->second.exchange.reset();
    }
    // Under the lock: once it is released, Stop() may return and the poller be destroyed.
    cv_.notify_all();
  }
}

}  // namespace weft::gateway::upstream
