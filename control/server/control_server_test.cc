// SPDX-License-Identifier: Apache-2.0
#include "control/server/control_server.h"

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "control/reconciler/http_fetch.h"
#include "control/store/memory_control_store.h"
#include "gateway/routing/route_table.h"
#include "gateway/routing/watch_route_source.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weft::control {
namespace {

using json = nlohmann::json;

constexpr char kSpec[] = "name: chat\nmodel: /m/model.gguf\nreplicas: {min: 2, max: 4}\n";

class ControlServerTest : public ::testing::Test {
 protected:
  void StartServer(std::string token = "") {
    ControlServerOptions o;
    o.admin_token = std::move(token);
    o.demand = &demand_;
    server_ = std::make_unique<ControlServer>(&store_, o);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  FetchResponse Call(const std::string& method, const std::string& path,
                     const std::string& body = "", const std::string& token = "") {
    FetchRequest r;
    r.method = method;
    r.url = absl::StrCat("http://127.0.0.1:", server_->port(), path);
    r.body = body;
    r.bearer_token = token;
    r.timeout_ms = 15000;
    if (!body.empty() && body[0] != '{') r.content_type = "application/yaml";
    absl::StatusOr<FetchResponse> resp = HttpFetch(r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? *resp : FetchResponse{};
  }

  void PutReplica(const std::string& id, ReplicaPhase phase, const std::string& endpoint) {
    ReplicaRecord r;
    r.id = id;
    r.deployment = "chat";
    r.provider = "local";
    r.phase = phase;
    r.endpoint = endpoint;
    r.spec_generation = 1;
    r.version = kAnyVersion;
    ASSERT_TRUE(store_.Put<ReplicaRecord>(r).ok());
  }

  MemoryControlStore store_;
  DemandBook demand_;
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlServerTest, DeploymentLifecycle) {
  StartServer();
  FetchResponse r = Call("POST", "/v1/deployments", kSpec);
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(json::parse(r.body)["generation"], 1);

  // The same spec again (as JSON this time): unchanged, no new generation.
  r = Call("GET", "/v1/deployments/chat");
  ASSERT_EQ(r.status, 200) << r.body;
  json got = json::parse(r.body);
  EXPECT_EQ(got["spec"]["replicas"]["min"], 2);
  r = Call("POST", "/v1/deployments", got["spec"].dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["unchanged"], true);
  EXPECT_EQ(json::parse(r.body)["generation"], 1);

  // A new model: generation 2, a rolling update.
  r = Call("POST", "/v1/deployments",
           "name: chat\nmodel: /m/model2.gguf\nreplicas: {min: 2, max: 4}\n");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["generation"], 2);
  EXPECT_EQ(json::parse(r.body)["rolling_update"], true);

  r = Call("GET", "/v1/deployments");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(json::parse(r.body)["deployments"].size(), 1u);

  // Scale: min/max change in place.
  r = Call("POST", "/v1/deployments/chat/scale", R"({"min": 3, "max": 6})");
  ASSERT_EQ(r.status, 200) << r.body;
  r = Call("GET", "/v1/deployments/chat");
  EXPECT_EQ(json::parse(r.body)["spec"]["replicas"]["max"], 6);
  r = Call("POST", "/v1/deployments/chat/scale", R"({"min": 7})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(json::parse(r.body)["error"]["field"], "replicas.max") << r.body;
  r = Call("POST", "/v1/deployments/chat/scale", R"({"mni": 1})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Call("POST", "/v1/deployments/nope/scale", R"({"min": 1})").status, 404);

  // Events record what happened.
  r = Call("GET", "/v1/events?object=deployment%2Fchat");
  ASSERT_EQ(r.status, 200);
  EXPECT_GE(json::parse(r.body)["events"].size(), 3u) << r.body;

  // Delete marks it; a new spec for it is refused until it is gone.
  EXPECT_EQ(Call("DELETE", "/v1/deployments/chat").status, 202);
  EXPECT_EQ(json::parse(Call("GET", "/v1/deployments/chat").body)["deleted"], true);
  EXPECT_EQ(Call("POST", "/v1/deployments", kSpec).status, 409);
  EXPECT_EQ(Call("DELETE", "/v1/deployments/nope").status, 404);
  EXPECT_EQ(Call("GET", "/v1/deployments/nope").status, 404);
}

TEST_F(ControlServerTest, BadSpecsNameTheField) {
  StartServer();
  FetchResponse r =
      Call("POST", "/v1/deployments", "name: chat\nmodel: /m.gguf\nreplicas: {min: 3, max: 2}\n");
  ASSERT_EQ(r.status, 400);
  json err = json::parse(r.body)["error"];
  EXPECT_EQ(err["field"], "replicas.max") << r.body;
  r = Call("POST", "/v1/deployments", R"({"name": "chat", "model": "/m.gguf", "colour": 1})");
  ASSERT_EQ(r.status, 400);
  EXPECT_NE(json::parse(r.body)["error"]["message"].get<std::string>().find("colour"),
            std::string::npos)
      << r.body;
  EXPECT_EQ(Call("POST", "/v1/deployments", "{not json").status, 400);
}

TEST_F(ControlServerTest, ListsReplicasProvidersMetrics) {
  StartServer();
  ASSERT_EQ(Call("POST", "/v1/deployments", kSpec).status, 201);
  PutReplica("chat-1", ReplicaPhase::kReady, "http://127.0.0.1:9");
  ProviderRecord p;
  p.name = "local";
  p.kind = "local";
  p.degraded = true;
  p.version = kAnyVersion;
  ASSERT_TRUE(store_.Put<ProviderRecord>(p).ok());

  json reps = json::parse(Call("GET", "/v1/replicas?deployment=chat").body)["replicas"];
  ASSERT_EQ(reps.size(), 1u);
  EXPECT_EQ(reps[0]["phase"], "ready");
  EXPECT_EQ(json::parse(Call("GET", "/v1/replicas?deployment=other").body)["replicas"].size(), 0u);
  json provs = json::parse(Call("GET", "/v1/providers").body)["providers"];
  ASSERT_EQ(provs.size(), 1u);
  EXPECT_EQ(provs[0]["degraded"], true);
  FetchResponse m = Call("GET", "/metrics");
  EXPECT_NE(m.body.find("weft_control_replicas{deployment=\"chat\",phase=\"ready\"} 1"),
            std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("weft_control_provider_degraded{provider=\"local\"} 1"), std::string::npos);
  EXPECT_EQ(Call("GET", "/health").status, 200);
}

TEST_F(ControlServerTest, AdminToken) {
  StartServer("s3cret");
  EXPECT_EQ(Call("GET", "/v1/deployments").status, 401);
  EXPECT_EQ(Call("GET", "/v1/deployments", "", "wrong").status, 401);
  EXPECT_EQ(Call("GET", "/v1/deployments", "", "s3cret").status, 200);
  EXPECT_EQ(Call("GET", "/weft/v1/routes").status, 401);
  EXPECT_EQ(Call("GET", "/weft/v1/routes", "", "s3cret").status, 200);
  EXPECT_EQ(Call("GET", "/health").status, 200);
}

TEST_F(ControlServerTest, DemandFromGatewaysForAScaledToZeroDeployment) {
  StartServer("s3cret");
  const std::string spec =
      "name: chat\nmodel: /m/model.gguf\nreplicas: {min: 0, max: 2}\n"
      "autoscaling: {scale_to_zero: true}\n";
  ASSERT_EQ(Call("POST", "/v1/deployments", spec, "s3cret").status, 201);
  // No replica at all: still in the route table (the gateway holds its requests instead of 404).
  FetchResponse r = Call("GET", "/weft/v1/routes", "", "s3cret");
  ASSERT_EQ(r.status, 200);
  auto table = gateway::RouteTableFromJson(r.body);
  ASSERT_TRUE(table.ok()) << table.status() << r.body;
  ASSERT_NE((*table)->FindDeployment("chat"), nullptr) << r.body;
  EXPECT_TRUE((*table)->FindDeployment("chat")->replicas.empty());

  const std::string body = R"({"gateway": "gw-1", "deployments": {"chat": {"held": 3}}})";
  EXPECT_EQ(Call("POST", "/weft/v1/demand", body).status, 401) << "the route watch's token";
  ASSERT_EQ(Call("POST", "/weft/v1/demand", body, "s3cret").status, 200);
  ASSERT_EQ(Call("POST", "/weft/v1/demand",
                 R"({"gateway": "gw-2", "deployments": {"chat": {"held": 2}}})", "s3cret")
                .status,
            200);
  EXPECT_EQ(demand_.Held("chat"), 5);
  r = Call("GET", "/v1/deployments/chat", "", "s3cret");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["held"], 5);

  for (const char* bad : {R"([1])", R"({"deployments": {}})", R"({"gateway": "g"})",
                          R"({"gateway": "g", "deployments": {"chat": {"held": -1}}})",
                          R"({"gateway": "g", "deployments": {"chat": 4}})"}) {
    r = Call("POST", "/weft/v1/demand", bad, "s3cret");
    EXPECT_EQ(r.status, 400) << bad;
  }
  r = Call("POST", "/weft/v1/demand", R"({"gateway": "g", "deployments": {"chat": {"held": 1.5}}})",
           "s3cret");
  EXPECT_NE(r.body.find("deployments.chat.held"), std::string::npos) << r.body;
}

TEST_F(ControlServerTest, RoutesAndTheirWatch) {
  StartServer();
  ASSERT_EQ(Call("POST", "/v1/deployments", kSpec).status, 201);
  PutReplica("chat-1", ReplicaPhase::kReady, "http://127.0.0.1:9001");
  PutReplica("chat-2", ReplicaPhase::kStarting, "http://127.0.0.1:9002");
  FetchResponse r = Call("GET", "/weft/v1/routes");
  ASSERT_EQ(r.status, 200);
  auto table = gateway::RouteTableFromJson(r.body);
  ASSERT_TRUE(table.ok()) << table.status() << r.body;
  ASSERT_NE((*table)->FindDeployment("chat"), nullptr);
  ASSERT_EQ((*table)->FindDeployment("chat")->replicas.size(), 1u) << "only ready replicas";
  const std::string v1 = (*table)->version();
  ASSERT_FALSE(v1.empty());

  // Unchanged: 304 at the timeout (writes that do not change the routes do not wake it early).
  auto start = std::chrono::steady_clock::now();
  PutReplica("chat-3", ReplicaPhase::kPending, "");
  r = Call("GET", absl::StrCat("/weft/v1/routes?watch=1&version=", v1, "&timeout_s=1"));
  EXPECT_EQ(r.status, 304);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));

  // A stale version answers at once.
  r = Call("GET", "/weft/v1/routes?watch=1&version=old&timeout_s=10");
  EXPECT_EQ(r.status, 200);

  // A held watch answers as soon as a replica becomes ready.
  auto held = std::async(std::launch::async, [&] {
    return Call("GET", absl::StrCat("/weft/v1/routes?watch=1&version=", v1, "&timeout_s=20"));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  start = std::chrono::steady_clock::now();
  PutReplica("chat-2", ReplicaPhase::kReady, "http://127.0.0.1:9002");
  r = held.get();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ASSERT_EQ(r.status, 200);
  table = gateway::RouteTableFromJson(r.body);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ((*table)->FindDeployment("chat")->replicas.size(), 2u);
  EXPECT_NE((*table)->version(), v1);
}

TEST_F(ControlServerTest, CanaryReplicasGetTheirShareAsRouteWeights) {
  DeploymentRecord d;
  d.name = "chat";
  d.spec = "name: chat\nmodel: /m/v1.gguf\nreplicas: 3\nrollout: {canary_percent: 10}\n";
  d.version = kAnyVersion;
  ASSERT_TRUE(store_.Put<DeploymentRecord>(d).ok());
  d.spec = "name: chat\nmodel: /m/v2.gguf\nreplicas: 3\nrollout: {canary_percent: 10}\n";
  d.status = "canary: 1/1 ready (10% of traffic), holding 120 s; 3 old";
  auto put = store_.Put<DeploymentRecord>(d);
  ASSERT_TRUE(put.ok());
  ASSERT_EQ(put->generation, 2);
  for (int i = 0; i < 4; ++i) {
    ReplicaRecord r;
    r.id = absl::StrCat("chat-", i);
    r.deployment = "chat";
    r.provider = "local";
    r.phase = ReplicaPhase::kReady;
    r.endpoint = absl::StrCat("http://127.0.0.1:900", i);
    r.spec_generation = i == 3 ? 2 : 1;
    r.version = kAnyVersion;
    ASSERT_TRUE(store_.Put<ReplicaRecord>(r).ok());
  }
  auto weights = [&] {
    std::map<std::string, double> out;
    auto table = BuildRouteTableJson(store_);
    EXPECT_TRUE(table.ok());
    if (!table.ok()) return out;
    for (const auto& r : (*table)["deployments"][0]["replicas"]) {
      out[r["id"].get<std::string>()] = r["weight"].get<double>();
    }
    return out;
  };
  auto w = weights();
  ASSERT_EQ(w.size(), 4u);
  EXPECT_NEAR(w["chat-3"], 1.0 / 3, 1e-9) << "10% of the capacity: 10 x 3 / (90 x 1)";
  EXPECT_EQ(w["chat-0"], 1.0);
  // Past the canary (the status no longer shows it): every weight back to 1.
  d.status = "4/3 ready; rolling update: 1 new ready, 3 old left";
  d.version = kAnyVersion;
  ASSERT_TRUE(store_.Put<DeploymentRecord>(d).ok());
  for (const auto& [id, weight] : weights()) EXPECT_EQ(weight, 1.0) << id;
}

TEST_F(ControlServerTest, GatewayWatchRouteSourceFollowsIt) {
  StartServer();
  ASSERT_EQ(Call("POST", "/v1/deployments", kSpec).status, 201);
  gateway::WatchRouteSourceOptions o;
  o.control_url = absl::StrCat("http://127.0.0.1:", server_->port());
  o.path = "/weft/v1/routes";
  o.watch_timeout_s = 5;
  gateway::WatchRouteSource source(o);
  std::mutex mu;
  std::shared_ptr<const gateway::RouteTable> last;
  ASSERT_TRUE(source
                  .Start([&](std::shared_ptr<const gateway::RouteTable> t) {
                    std::lock_guard<std::mutex> l(mu);
                    last = std::move(t);
                  })
                  .ok());
  auto replicas = [&]() -> int {
    std::lock_guard<std::mutex> l(mu);
    if (!last || !last->FindDeployment("chat")) return -1;
    return static_cast<int>(last->FindDeployment("chat")->replicas.size());
  };
  for (int i = 0; i < 100 && replicas() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(replicas(), 0);
  auto start = std::chrono::steady_clock::now();
  PutReplica("chat-1", ReplicaPhase::kReady, "http://127.0.0.1:9001");
  for (int i = 0; i < 200 && replicas() != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(replicas(), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1))
      << "new replicas take traffic within a second";
  PutReplica("chat-1", ReplicaPhase::kFailed, "http://127.0.0.1:9001");
  for (int i = 0; i < 200 && replicas() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(replicas(), 0);
  source.Stop();
}

TEST_F(ControlServerTest, StopEndsHeldWatchesPromptly) {
  StartServer();
  FetchResponse r = Call("GET", "/weft/v1/routes");
  const std::string v = json::parse(r.body)["version"];
  auto held = std::async(std::launch::async, [&, port = server_->port()] {
    FetchRequest req;
    req.url = absl::StrCat("http://127.0.0.1:", port, "/weft/v1/routes?watch=1&version=", v,
                           "&timeout_s=30");
    req.timeout_ms = 20000;
    return HttpFetch(req);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  held.wait();
}

}  // namespace
}  // namespace weft::control
