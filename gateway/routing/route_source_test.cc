// SPDX-License-Identifier: Apache-2.0
// StaticRouteSource (config file reloads) and WatchRouteSource against a loopback control plane
// (base/http HttpServer) implementing the long-poll watch.
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/http/http_server.h"
#include "gateway/routing/static_route_source.h"
#include "gateway/routing/watch_route_source.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

using Clock = std::chrono::steady_clock;

// Collects delivered tables; Wait blocks until a predicate over them holds (or a deadline).
class Collector {
 public:
  RouteSource::Callback callback() {
    return [this](std::shared_ptr<const RouteTable> t) {
      std::lock_guard<std::mutex> lock(mu_);
      tables_.push_back(std::move(t));
      cv_.notify_all();
    };
  }
  bool WaitFor(size_t count, double timeout_s = 10) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                        [&] { return tables_.size() >= count; });
  }
  std::shared_ptr<const RouteTable> last() {
    std::lock_guard<std::mutex> lock(mu_);
    return tables_.empty() ? nullptr : tables_.back();
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return tables_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<const RouteTable>> tables_;
};

std::string ConfigYaml(const std::string& replica_url) {
  return absl::StrCat("deployments:\n  m:\n    replicas:\n      - {id: r1, url: \"", replica_url,
                      "\"}\n");
}

void WriteFile(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
  }
  std::rename(tmp.c_str(), path.c_str());  // atomic, as config management tools do
}

TEST(StaticRouteSourceTest, DeliversAtStartAndReloadsOnChange) {
  std::string path = absl::StrCat(::testing::TempDir(), "/weft_routes_", ::getpid(), ".yaml");
  WriteFile(path, ConfigYaml("http://127.0.0.1:1001"));
  GatewayConfig config = LoadGatewayConfig(path).value();
  StaticRouteSource source(config.deployments, {path, 0.02});
  Collector got;
  ASSERT_TRUE(source.Start(got.callback()).ok());
  ASSERT_EQ(got.size(), 1u);  // delivered before Start returned
  EXPECT_EQ(got.last()->FindReplica("r1")->port, 1001);
  EXPECT_EQ(got.last()->version(), "static-1");

  WriteFile(path, ConfigYaml("http://127.0.0.1:1002"));
  ASSERT_TRUE(got.WaitFor(2));
  EXPECT_EQ(got.last()->FindReplica("r1")->port, 1002);

  // A broken file keeps the last table and reports why.
  WriteFile(path, "deployments:\n  m:\n    replicas: [{id: r1, url: nope}]\n");
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (source.last_error().ok() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_NE(std::string(source.last_error().message()).find(path + ":3:"), std::string::npos)
      << source.last_error();
  EXPECT_EQ(got.size(), 2u);

  // Reload() (SIGHUP) re-reads at once; an unchanged file delivers nothing new.
  source.Stop();
  StaticRouteSource manual(config.deployments, {path, 0});
  Collector got2;
  ASSERT_TRUE(manual.Start(got2.callback()).ok());
  EXPECT_FALSE(manual.Reload().ok());
  WriteFile(path, ConfigYaml("http://127.0.0.1:1003"));
  ASSERT_TRUE(manual.Reload().ok());
  ASSERT_EQ(got2.size(), 2u);
  EXPECT_EQ(got2.last()->FindReplica("r1")->port, 1003);
  ASSERT_TRUE(manual.Reload().ok());
  EXPECT_EQ(got2.size(), 2u);
  EXPECT_EQ(manual.generation(), 2);
  manual.Stop();
  std::remove(path.c_str());
}

TEST(StaticRouteSourceTest, InvalidInitialDeploymentsFailStart) {
  DeploymentConfig d;
  d.name = "bad:name";
  StaticRouteSource source({d});
  Collector got;
  EXPECT_EQ(source.Start(got.callback()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(got.size(), 0u);
}

// The control plane's side of the watch: GET /v1/routes?watch=1&version=V answers at once when the
// table's version differs from V, else parks the request until Publish.
class FakeControlPlane {
 public:
  FakeControlPlane() : server_(http::ServerOptions{}) {
    server_.Handle("GET", "/v1/routes", [this](const http::Request& r, auto w) {
      std::string version = Param(r.query, "version");
      std::lock_guard<std::mutex> lock(mu_);
      ++requests_;
      last_auth_ = std::string(r.Header("Authorization"));
      if (fail_next_ > 0) {
        --fail_next_;
        w->Respond(http::Response{500, "application/json", {}, "{\"error\": \"boom\"}"});
        return;
      }
      if (garbage_next_ > 0) {
        --garbage_next_;
        w->Respond(http::Response{200, "application/json", {}, "{\"deployments\": 7}"});
        return;
      }
      if (version != version_) {
        w->Respond(http::Response{200, "application/json", {}, body_});
      } else {
        parked_.push_back(std::move(w));
      }
    });
  }
  ~FakeControlPlane() { server_.Stop(0); }

  absl::Status Start() { return server_.Start(); }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", server_.port()); }

  void Publish(std::vector<DeploymentConfig> deployments, std::string version) {
    auto table = RouteTable::Build(std::move(deployments), version).value();
    std::vector<std::shared_ptr<http::ResponseWriter>> parked;
    std::string body = RouteTableToJson(*table).dump();
    {
      std::lock_guard<std::mutex> lock(mu_);
      version_ = version;
      body_ = body;
      parked.swap(parked_);
    }
    for (auto& w : parked) w->Respond(http::Response{200, "application/json", {}, body});
  }
  // A timed-out watch: answers parked requests with 304.
  void NotModified() {
    std::vector<std::shared_ptr<http::ResponseWriter>> parked;
    {
      std::lock_guard<std::mutex> lock(mu_);
      parked.swap(parked_);
    }
    for (auto& w : parked) w->Respond(http::Response{304, "application/json", {}, ""});
  }
  void FailNext(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_next_ = n;
  }
  void GarbageNext(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    garbage_next_ = n;
  }
  size_t parked() {
    std::lock_guard<std::mutex> lock(mu_);
    return parked_.size();
  }
  int requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::string last_auth() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_auth_;
  }
  bool WaitParked(double timeout_s = 10) {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (parked() == 0) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

 private:
  static std::string Param(const std::string& query, const std::string& name) {
    size_t pos = 0;
    while (pos <= query.size()) {
      size_t amp = query.find('&', pos);
      std::string kv = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      if (kv.rfind(name + "=", 0) == 0) return kv.substr(name.size() + 1);
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
    return "";
  }

  http::HttpServer server_;
  std::mutex mu_;
  std::string version_ = "1";
  std::string body_ = R"({"version": "1", "deployments": []})";
  std::vector<std::shared_ptr<http::ResponseWriter>> parked_;
  int fail_next_ = 0;
  int garbage_next_ = 0;
  int requests_ = 0;
  std::string last_auth_;
};

std::vector<DeploymentConfig> OneReplica(int port) {
  DeploymentConfig d;
  d.name = "m";
  ReplicaConfig r;
  r.id = "r1";
  r.url = absl::StrCat("http://127.0.0.1:", port);
  d.replicas = {r};
  return {d};
}

WatchRouteSourceOptions FastOptions(const std::string& url) {
  WatchRouteSourceOptions o;
  o.control_url = url;
  o.watch_timeout_s = 5;
  o.min_backoff_s = 0.01;
  o.max_backoff_s = 0.05;
  o.bearer_token = "ctl-token";
  return o;
}

TEST(WatchRouteSourceTest, FollowsTheControlPlane) {
  FakeControlPlane control;
  ASSERT_TRUE(control.Start().ok());
  control.Publish(OneReplica(2001), "10");
  WatchRouteSource source(FastOptions(control.url()));
  Collector got;
  ASSERT_TRUE(source.Start(got.callback()).ok());
  ASSERT_TRUE(got.WaitFor(1));
  EXPECT_EQ(got.last()->version(), "10");
  EXPECT_EQ(got.last()->FindReplica("r1")->port, 2001);
  EXPECT_EQ(control.last_auth(), "Bearer ctl-token");

  // The next request waits for a change, which arrives through the parked request.
  ASSERT_TRUE(control.WaitParked());
  control.Publish(OneReplica(2002), "11");
  ASSERT_TRUE(got.WaitFor(2));
  EXPECT_EQ(got.last()->version(), "11");
  EXPECT_EQ(got.last()->FindReplica("r1")->port, 2002);
  EXPECT_EQ(source.version(), "11");

  // A timed-out watch (304) changes nothing and the watch goes on.
  ASSERT_TRUE(control.WaitParked());
  control.NotModified();
  ASSERT_TRUE(control.WaitParked());
  EXPECT_EQ(got.size(), 2u);

  // Errors (two 500s, then a malformed snapshot) keep the last table; the watch recovers.
  control.FailNext(2);
  control.GarbageNext(1);
  control.NotModified();
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (source.errors() < 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(source.errors(), 3);
  EXPECT_EQ(got.size(), 2u);
  ASSERT_TRUE(control.WaitParked());
  control.Publish(OneReplica(2003), "12");
  ASSERT_TRUE(got.WaitFor(3));
  EXPECT_EQ(got.last()->FindReplica("r1")->port, 2003);

  // Stop returns promptly although a watch is parked on the server.
  ASSERT_TRUE(control.WaitParked());
  auto start = Clock::now();
  source.Stop();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(got.size(), 3u);
}

TEST(WatchRouteSourceTest, RetriesUntilTheControlPlaneAnswers) {
  // The control plane answers 500 at first: the source keeps retrying without delivering.
  auto control = std::make_unique<FakeControlPlane>();
  ASSERT_TRUE(control->Start().ok());
  std::string url = control->url();
  control->FailNext(1000000);
  WatchRouteSource source(FastOptions(url));
  Collector got;
  ASSERT_TRUE(source.Start(got.callback()).ok());
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (source.errors() < 5 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(source.errors(), 5);
  EXPECT_EQ(got.size(), 0u);
  control->FailNext(0);
  ASSERT_TRUE(got.WaitFor(1));
  EXPECT_EQ(got.last()->version(), "1");
  source.Stop();
  source.Stop();  // idempotent
}

TEST(WatchRouteSourceTest, BadUrlFailsStart) {
  WatchRouteSource source(FastOptions("ctl:80"));
  Collector got;
  EXPECT_EQ(source.Start(got.callback()).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft::gateway
