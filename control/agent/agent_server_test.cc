// SPDX-License-Identifier: Apache-2.0
#include "control/agent/agent_server.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "control/agent/agent_api.h"
#include "control/providers/fake/fake_provider.h"
#include "control/reconciler/http_fetch.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weft::control::agent {
namespace {

using nlohmann::json;

constexpr char kToken[] = "agent-secret";

class AgentServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeProviderOptions fo;
    fo.slots = 2;
    fo.region = "us-east";
    provider_ = std::make_unique<FakeProvider>(fo);
    AgentServerOptions o;
    o.token = kToken;
    auto s = AgentServer::Start(provider_.get(), o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }

  FetchResponse Fetch(const std::string& method, const std::string& path,
                      const std::string& body = "", const std::string& token = kToken) {
    FetchRequest r;
    r.method = method;
    r.url = absl::StrCat("http://127.0.0.1:", server_->port(), path);
    r.body = body;
    r.bearer_token = token;
    absl::StatusOr<FetchResponse> resp = HttpFetch(r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? *resp : FetchResponse{};
  }

  std::string SpecBody(const std::string& id) {
    ReplicaSpec s;
    s.id = id;
    s.deployment = "demo";
    s.model_path = "/models/m.gguf";
    return ToJson(s).dump();
  }

  std::unique_ptr<FakeProvider> provider_;
  std::unique_ptr<AgentServer> server_;
};

TEST_F(AgentServerTest, EveryRouteButHealthNeedsTheToken) {
  EXPECT_EQ(Fetch("GET", "/health", "", "").status, 200);
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/health"},
                                                        {"GET", "/v1/capacity"},
                                                        {"GET", "/v1/replicas"},
                                                        {"POST", "/v1/replicas"},
                                                        {"DELETE", "/v1/replicas/x"}}) {
    const std::string body = method == "POST" ? SpecBody("r1") : "";
    EXPECT_EQ(Fetch(method, path, body, "").status, 401) << method << " " << path;
    FetchResponse wrong = Fetch(method, path, body, "agent-secreT");
    EXPECT_EQ(wrong.status, 401) << method << " " << path;
    EXPECT_TRUE(absl::StrContains(wrong.body, "UNAUTHENTICATED")) << wrong.body;
    EXPECT_EQ(Fetch(method, path, body, "agent-secret-and-more").status, 401);
  }
  // Nothing was provisioned by the refused requests.
  EXPECT_TRUE(provider_->List()->empty());
}

TEST_F(AgentServerTest, ServesTheProviderInterface) {
  FetchResponse cap = Fetch("GET", "/v1/capacity");
  ASSERT_EQ(cap.status, 200) << cap.body;
  absl::StatusOr<ProviderCapacity> c = CapacityFromJson(json::parse(cap.body));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->accelerators.size(), 1u);
  EXPECT_EQ(c->accelerators[0].free, 2);
  EXPECT_EQ(c->regions, std::vector<std::string>{"us-east"});

  FetchResponse p = Fetch("POST", "/v1/replicas", SpecBody("r1"));
  ASSERT_EQ(p.status, 200) << p.body;
  absl::StatusOr<ReplicaStatus> st = ReplicaStatusFromJson(json::parse(p.body));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->id, "r1");
  EXPECT_EQ(provider_->provisions(), 1);
  // Provision is idempotent through the agent too.
  ASSERT_EQ(Fetch("POST", "/v1/replicas", SpecBody("r1")).status, 200);
  EXPECT_EQ(provider_->provisions(), 1);

  FetchResponse list = Fetch("GET", "/v1/replicas");
  ASSERT_EQ(list.status, 200);
  absl::StatusOr<std::vector<ReplicaStatus>> l = ReplicaListFromJson(json::parse(list.body));
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].id, "r1");

  EXPECT_EQ(Fetch("DELETE", "/v1/replicas/r1").status, 200);
  EXPECT_EQ(Fetch("DELETE", "/v1/replicas/never-there").status, 200);
  EXPECT_TRUE(provider_->List()->empty());

  FetchResponse h = Fetch("GET", "/v1/health");
  ASSERT_EQ(h.status, 200);
  EXPECT_TRUE(HealthFromJson(json::parse(h.body))->ok);
  provider_->SetOutage(true, "rack on fire");
  h = Fetch("GET", "/v1/health");
  EXPECT_FALSE(HealthFromJson(json::parse(h.body))->ok);
  EXPECT_EQ(HealthFromJson(json::parse(h.body))->reason, "rack on fire");
  FetchResponse down = Fetch("GET", "/v1/capacity");
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(StatusFromError(down.status, down.body, "").code(), absl::StatusCode::kUnavailable);
}

TEST_F(AgentServerTest, ProviderErrorsKeepTheirCode) {
  ASSERT_EQ(Fetch("POST", "/v1/replicas", SpecBody("a")).status, 200);
  ASSERT_EQ(Fetch("POST", "/v1/replicas", SpecBody("b")).status, 200);
  FetchResponse full = Fetch("POST", "/v1/replicas", SpecBody("c"));
  EXPECT_EQ(full.status, 429);
  EXPECT_EQ(StatusFromError(full.status, full.body, "").code(),
            absl::StatusCode::kResourceExhausted);
  FetchResponse bad = Fetch("POST", "/v1/replicas", "{not json");
  EXPECT_EQ(bad.status, 400);
  bad = Fetch("POST", "/v1/replicas", R"({"id": "x", "accelerator_count": "two"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_TRUE(absl::StrContains(bad.body, "accelerator_count")) << bad.body;
}

TEST(AgentServerStartTest, RefusesAnEmptyToken) {
  FakeProvider provider(FakeProviderOptions{});
  AgentServerOptions o;
  EXPECT_EQ(AgentServer::Start(&provider, o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft::control::agent
