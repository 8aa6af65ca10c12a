// SPDX-License-Identifier: Apache-2.0
// The admin API over loopback: admin-key checks, every route, statuses and error shapes.
#include "gateway/admin/admin_routes.h"

#include <filesystem>
#include <memory>

#include "gateway/auth/sqlite_key_store.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/http_client.h"
#include "testing/test_data.h"

namespace weft::admin {
namespace {

using json = nlohmann::json;
using testing::HttpClient;
using testing::HttpResponse;

constexpr const char* kAdminKey = "admin-secret-0123456789";

class AdminRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(kAdminKey); }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop(1);
    server_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Start(std::string admin_key) {
    dir_ = weft::testing::MakeTempDir("admin_routes_test");
    auto store = auth::SqliteKeyStore::Open(dir_ + "/keys.sqlite");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    server_ = std::make_unique<http::HttpServer>(http::ServerOptions{});
    RegisterAdminRoutes(*server_, *store_, std::move(admin_key));
    ASSERT_TRUE(server_->Start().ok());
    auto client = HttpClient::Connect("127.0.0.1", server_->port());
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  HttpResponse Call(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& key = kAdminKey) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!key.empty()) headers.emplace_back("Authorization", "Bearer " + key);
    auto r = client_->Request(method, target, body, headers);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }

  static json Body(const HttpResponse& r) { return json::parse(r.body, nullptr, false); }

  // An OpenAI error body: all four fields, with the given code.
  static void ExpectError(const HttpResponse& r, int status, const std::string& code,
                          const std::string& param = "") {
    EXPECT_EQ(r.status, status) << r.body;
    json j = Body(r);
    ASSERT_TRUE(j.contains("error")) << r.body;
    const json& e = j["error"];
    EXPECT_TRUE(e["message"].is_string());
    EXPECT_TRUE(e["type"].is_string());
    ASSERT_TRUE(e.contains("param"));
    if (param.empty()) {
      EXPECT_TRUE(e["param"].is_null()) << r.body;
    } else {
      EXPECT_EQ(e["param"], param);
    }
    EXPECT_EQ(e["code"], code) << r.body;
  }

  std::string dir_;
  std::unique_ptr<auth::SqliteKeyStore> store_;
  std::unique_ptr<http::HttpServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(AdminRoutesTest, NeedsTheAdminKey) {
  for (const std::string& key : {std::string(), std::string("wrong"), std::string(kAdminKey) + "x",
                                 std::string(kAdminKey).substr(1)}) {
    ExpectError(Call("GET", "/admin/v1/tenants", "", key), 401, "invalid_api_key");
    ExpectError(Call("POST", "/admin/v1/tenants", R"({"id":"x"})", key), 401, "invalid_api_key");
  }
  auto basic = client_->Request("GET", "/admin/v1/tenants", "",
                                {{"Authorization", std::string("Basic ") + kAdminKey}});
  ASSERT_TRUE(basic.ok());
  ExpectError(*basic, 401, "invalid_api_key");
  EXPECT_TRUE(absl::IsNotFound(store_->GetTenant("x").status()));  // nothing was created
  EXPECT_EQ(Call("GET", "/admin/v1/tenants").status, 200);
}

TEST_F(AdminRoutesTest, EmptyAdminKeyDisablesTheApi) {
  TearDown();
  Start("");
  ExpectError(Call("GET", "/admin/v1/tenants", "", ""), 401, "invalid_api_key");
  auto r = client_->Request("GET", "/admin/v1/tenants", "", {{"Authorization", "Bearer "}});
  ASSERT_TRUE(r.ok());
  ExpectError(*r, 401, "invalid_api_key");
}

TEST_F(AdminRoutesTest, Tenants) {
  HttpResponse r = Call("POST", "/admin/v1/tenants",
                        R"({"id":"acme","name":"Acme Inc","deployments":["llama"],
                            "quotas":{"requests_per_min":60,"tokens_per_month":1000000}})");
  ASSERT_EQ(r.status, 200) << r.body;
  json t = Body(r);
  EXPECT_EQ(t["object"], "tenant");
  EXPECT_EQ(t["id"], "acme");
  EXPECT_EQ(t["name"], "Acme Inc");
  EXPECT_EQ(t["deployments"], json::array({"llama"}));
  EXPECT_EQ(t["quotas"]["requests_per_min"], 60);
  EXPECT_EQ(t["quotas"]["tokens_per_min"], 0);
  EXPECT_EQ(t["quotas"]["tokens_per_month"], 1000000);
  EXPECT_GT(t["created"].get<int64_t>(), 1'600'000'000);

  ExpectError(Call("POST", "/admin/v1/tenants", R"({"id":"acme"})"), 409, "already_exists");
  ExpectError(Call("POST", "/admin/v1/tenants", R"({"id":"b","quotas":{"rpm":1}})"), 400,
              "invalid_value", "quotas.rpm");
  ExpectError(Call("POST", "/admin/v1/tenants", "{"), 400, "invalid_value");
  ASSERT_EQ(Call("POST", "/admin/v1/tenants", R"({"id":"beta"})").status, 200);

  r = Call("GET", "/admin/v1/tenants");
  ASSERT_EQ(r.status, 200);
  json list = Body(r);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 2u);
  EXPECT_EQ(list["data"][0]["id"], "acme");
  EXPECT_EQ(list["data"][1]["deployments"], json::array({"*"}));

  r = Call("GET", "/admin/v1/tenants/acme");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r), t);
  ExpectError(Call("GET", "/admin/v1/tenants/nope"), 404, "not_found");

  r = Call("PATCH", "/admin/v1/tenants/acme",
           R"({"deployments":["llama","qwen"],"quotas":{"tokens_per_min":5000}})");
  ASSERT_EQ(r.status, 200) << r.body;
  json patched = Body(r);
  EXPECT_EQ(patched["deployments"], json::array({"llama", "qwen"}));
  EXPECT_EQ(patched["quotas"]["tokens_per_min"], 5000);
  EXPECT_EQ(patched["quotas"]["requests_per_min"], 60);  // untouched
  EXPECT_EQ(patched["name"], "Acme Inc");
  ExpectError(Call("PATCH", "/admin/v1/tenants/nope", R"({"name":"x"})"), 404, "not_found");
  ExpectError(Call("PATCH", "/admin/v1/tenants/acme", R"({"quotas":{"tokens_per_min":-1}})"), 400,
              "invalid_value", "quotas.tokens_per_min");
}

TEST_F(AdminRoutesTest, KeyLifecycle) {
  ASSERT_EQ(Call("POST", "/admin/v1/tenants", R"({"id":"acme","deployments":["llama"]})").status,
            200);
  ASSERT_EQ(Call("POST", "/admin/v1/tenants", R"({"id":"beta"})").status, 200);
  HttpResponse r = Call("POST", "/admin/v1/keys",
                        R"({"tenant":"acme","name":"ci","expires_in":"30d",
                            "quotas":{"requests_per_min":10}})");
  ASSERT_EQ(r.status, 200) << r.body;
  json created = Body(r);
  EXPECT_EQ(created["object"], "api_key");
  EXPECT_EQ(created["tenant"], "acme");
  EXPECT_EQ(created["name"], "ci");
  EXPECT_EQ(created["revoked"], false);
  EXPECT_EQ(created["quotas"]["requests_per_min"], 10);
  EXPECT_NEAR(created["expires_at"].get<int64_t>() - created["created"].get<int64_t>(), 30 * 86400,
              5);
  const std::string plaintext = created["key"];
  const std::string id = created["id"];
  ASSERT_EQ(plaintext.rfind("wft_" + id + "_", 0), 0u);

  // The key works at once, for the tenant's deployments only.
  auto p = store_->Authenticate(plaintext);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->tenant, "acme");
  EXPECT_TRUE(auth::MayUse(*p, "llama"));
  EXPECT_FALSE(auth::MayUse(*p, "qwen"));

  ASSERT_EQ(Call("POST", "/admin/v1/keys", R"({"tenant":"beta"})").status, 200);
  ExpectError(Call("POST", "/admin/v1/keys", R"({"tenant":"ghost"})"), 404, "not_found");
  ExpectError(Call("POST", "/admin/v1/keys", R"({"name":"x"})"), 400, "invalid_value", "tenant");

  // Listing never shows the key or anything of its secret.
  const std::string secret = plaintext.substr(4 + 16 + 1);
  r = Call("GET", "/admin/v1/keys");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find(secret), std::string::npos);
  json all = Body(r);
  ASSERT_EQ(all["data"].size(), 2u);
  for (const json& k : all["data"]) EXPECT_FALSE(k.contains("key"));
  r = Call("GET", "/admin/v1/keys?tenant=acme");
  json mine = Body(r);
  ASSERT_EQ(mine["data"].size(), 1u);
  EXPECT_EQ(mine["data"][0]["id"], id);
  EXPECT_EQ(Body(Call("GET", "/admin/v1/keys?tenant=nobody"))["data"].size(), 0u);

  r = Call("DELETE", "/admin/v1/keys/" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["revoked"], true);
  EXPECT_TRUE(absl::IsUnauthenticated(store_->Authenticate(plaintext).status()));
  EXPECT_EQ(Body(Call("GET", "/admin/v1/keys?tenant=acme"))["data"][0]["revoked"], true);
  ExpectError(Call("DELETE", "/admin/v1/keys/0000000000000000"), 404, "not_found");
}

TEST_F(AdminRoutesTest, TenantPatchReachesAuthenticatedKeys) {
  ASSERT_EQ(Call("POST", "/admin/v1/tenants", R"({"id":"acme","deployments":["llama"]})").status,
            200);
  std::string key = Body(Call("POST", "/admin/v1/keys", R"({"tenant":"acme"})"))["key"];
  ASSERT_FALSE(auth::MayUse(*store_->Authenticate(key), "qwen"));  // now cached
  ASSERT_EQ(Call("PATCH", "/admin/v1/tenants/acme", R"({"deployments":["*"]})").status, 200);
  EXPECT_TRUE(auth::MayUse(*store_->Authenticate(key), "qwen"));
}

}  // namespace
}  // namespace weft::admin
