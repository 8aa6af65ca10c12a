// SPDX-License-Identifier: Apache-2.0
#include "gateway/upstream/load_poller.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/http/http_server.h"
#include "boost/asio.hpp"
#include "gtest/gtest.h"

namespace weft::gateway::upstream {
namespace {

using Clock = std::chrono::steady_clock;

// A replica's control endpoints with switchable answers.
class FakeReplica {
 public:
  FakeReplica() {
    http::ServerOptions o;
    o.threads = 1;
    server_ = std::make_unique<http::HttpServer>(o);
    server_->Handle("GET", "/health", [this](const http::Request&, auto w) {
      ++health_hits;
      http::Response r;
      r.status = healthy ? 200 : 503;
      r.body = healthy ? R"({"status":"ok"})" : R"({"status":"unavailable"})";
      w->Respond(std::move(r));
    });
    server_->Handle("GET", "/weft/v1/load", [this](const http::Request&, auto w) {
      ++load_hits;
      http::Response r;
      std::lock_guard lock(mu_);
      r.body = load_body_;
      w->Respond(std::move(r));
    });
    ExpectOk(server_->Start());
    SetLoad(0);
  }
  ~FakeReplica() { server_->Stop(1); }

  void SetLoad(int running) {
    api::LoadReport l;
    l.model = "stories260K";
    l.ready = true;
    l.running = running;
    l.kv_blocks_free = 7;
    std::lock_guard lock(mu_);
    load_body_ = api::LoadReportJson(l).dump();
  }
  void SetBody(std::string body) {
    std::lock_guard lock(mu_);
    load_body_ = std::move(body);
  }
  Target target() const { return Target{"127.0.0.1", server_->port()}; }

  std::atomic<bool> healthy{true};
  std::atomic<int> health_hits{0};
  std::atomic<int> load_hits{0};

 private:
  static void ExpectOk(absl::Status s) { ASSERT_TRUE(s.ok()) << s; }
  std::unique_ptr<http::HttpServer> server_;
  std::mutex mu_;
  std::string load_body_;
};

struct Reports {
  std::mutex mu;
  std::map<std::string, std::vector<absl::StatusOr<api::LoadReport>>> by_id;
  std::map<std::string, std::chrono::microseconds> last_latency;

  LoadReportFn Fn() {
    return [this](const std::string& id, absl::StatusOr<api::LoadReport> r,
                  std::chrono::microseconds latency) {
      std::lock_guard lock(mu);
      by_id[id].push_back(std::move(r));
      last_latency[id] = latency;
    };
  }
  size_t Count(const std::string& id) {
    std::lock_guard lock(mu);
    return by_id[id].size();
  }
  absl::StatusOr<api::LoadReport> Last(const std::string& id) {
    std::lock_guard lock(mu);
    if (by_id[id].empty()) return absl::NotFoundError("no report");
    return by_id[id].back();
  }
  bool WaitCount(const std::string& id, size_t n, double timeout_s = 5) {
    auto end = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (Clock::now() < end) {
      if (Count(id) >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
};

LoadPollerOptions Fast() {
  LoadPollerOptions o;
  o.interval_s = 0.05;
  o.timeouts = Timeouts{0.5, 0.3, 0.3};
  return o;
}

uint16_t DeadPort() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor probe(
      ioc, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return probe.local_endpoint().port();
}

TEST(LoadPollerTest, PollsEveryReplicaRepeatedly) {
  FakeReplica a, b;
  a.SetLoad(3);
  UpstreamClient client;
  Reports reports;
  LoadPoller poller(&client, Fast(), reports.Fn());
  poller.SetReplicas({{"a", a.target()}, {"b", b.target()}});
  poller.Start();
  ASSERT_TRUE(reports.WaitCount("a", 3));
  ASSERT_TRUE(reports.WaitCount("b", 3));
  auto last = reports.Last("a");
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->running, 3);
  EXPECT_EQ(last->kv_blocks_free, 7);
  EXPECT_EQ(last->model, "stories260K");
  {
    std::lock_guard lock(reports.mu);
    EXPECT_GT(reports.last_latency["a"].count(), 0);
  }
  a.SetLoad(9);
  size_t n = reports.Count("a");
  ASSERT_TRUE(reports.WaitCount("a", n + 2));
  EXPECT_EQ(reports.Last("a")->running, 9);
  poller.Stop();
  // One connection per replica, reused by every poll.
  EXPECT_EQ(client.Stats(a.target()).connects, 1u);
}

TEST(LoadPollerTest, IntervalIsRespected) {
  FakeReplica a;
  UpstreamClient client;
  Reports reports;
  LoadPollerOptions o = Fast();
  o.interval_s = 0.1;
  LoadPoller poller(&client, o, reports.Fn());
  poller.SetReplicas({{"a", a.target()}});
  poller.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(550));
  poller.Stop();
  size_t n = reports.Count("a");
  EXPECT_GE(n, 3u);
  EXPECT_LE(n, 7u);
}

TEST(LoadPollerTest, UnhealthyReplicaIsUnavailableWithoutLoadFetch) {
  FakeReplica a;
  a.healthy = false;
  UpstreamClient client;
  Reports reports;
  LoadPoller poller(&client, Fast(), reports.Fn());
  poller.SetReplicas({{"a", a.target()}});
  poller.Start();
  ASSERT_TRUE(reports.WaitCount("a", 2));
  EXPECT_EQ(reports.Last("a").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(a.load_hits.load(), 0);
  a.healthy = true;
  size_t n = reports.Count("a");
  ASSERT_TRUE(reports.WaitCount("a", n + 2));
  EXPECT_TRUE(reports.Last("a").ok());
}

TEST(LoadPollerTest, DownStalledAndMalformedReplicasDoNotHoldBackOthers) {
  FakeReplica good, garbled;
  garbled.SetBody("not json");
  // A replica that accepts and never answers.
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor silent(
      ioc, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  UpstreamClient client;
  Reports reports;
  LoadPoller poller(&client, Fast(), reports.Fn());
  poller.SetReplicas({{"good", good.target()},
                      {"down", Target{"127.0.0.1", DeadPort()}},
                      {"silent", Target{"127.0.0.1", silent.local_endpoint().port()}},
                      {"garbled", garbled.target()}});
  poller.Start();
  ASSERT_TRUE(reports.WaitCount("silent", 1));
  // While "silent" took its 0.3 s timeout per poll, "good" kept its 50 ms cadence.
  EXPECT_GE(reports.Count("good"), 4u);
  EXPECT_EQ(reports.Last("silent").status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(reports.WaitCount("down", 1));
  EXPECT_EQ(reports.Last("down").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(reports.WaitCount("garbled", 1));
  EXPECT_EQ(reports.Last("garbled").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(reports.Last("good").ok());
}

TEST(LoadPollerTest, ReplacingTheSetStopsReportsOfRemovedReplicas) {
  FakeReplica a, b;
  UpstreamClient client;
  Reports reports;
  LoadPoller poller(&client, Fast(), reports.Fn());
  poller.SetReplicas({{"a", a.target()}});
  poller.Start();
  ASSERT_TRUE(reports.WaitCount("a", 2));
  poller.SetReplicas({{"b", b.target()}});
  size_t a_count = reports.Count("a");
  ASSERT_TRUE(reports.WaitCount("b", 3));
  EXPECT_LE(reports.Count("a"), a_count);  // nothing after the replacement
  // Same id, new target: polled at its new address.
  poller.SetReplicas({{"b", a.target()}});
  int hits = a.load_hits.load();
  ASSERT_TRUE(reports.WaitCount("b", reports.Count("b") + 3));
  EXPECT_GT(a.load_hits.load(), hits);
}

TEST(LoadPollerTest, NoReportAfterStop) {
  FakeReplica a;
  UpstreamClient client;
  Reports reports;
  LoadPoller poller(&client, Fast(), reports.Fn());
  poller.SetReplicas({{"a", a.target()}});
  poller.Start();
  ASSERT_TRUE(reports.WaitCount("a", 2));
  poller.Stop();
  size_t n = reports.Count("a");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(reports.Count("a"), n);
  poller.Stop();  // idempotent
}

TEST(LoadPollerTest, HealthOnly) {
  FakeReplica a;
  UpstreamClient client;
  Reports reports;
  LoadPollerOptions o = Fast();
  o.fetch_load = false;
  LoadPoller poller(&client, o, reports.Fn());
  poller.SetReplicas({{"a", a.target()}});
  poller.Start();
  ASSERT_TRUE(reports.WaitCount("a", 2));
  EXPECT_TRUE(reports.Last("a")->ready);
  EXPECT_EQ(a.load_hits.load(), 0);
}

}  // namespace
}  // namespace weft::gateway::upstream
