// SPDX-License-Identifier: Apache-2.0
// DemandReporter against a loopback HTTP server standing in for `weft control`.
#include "gateway/demand_reporter.h"

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "base/http/http_server.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {
namespace {

TEST(DemandReporterTest, PostsHeldCountsWithTheToken) {
  std::mutex mu;
  std::vector<nlohmann::json> bodies;
  std::vector<std::string> auth;
  http::ServerOptions so;
  so.host = "127.0.0.1";
  so.port = 0;
  http::HttpServer control(so);
  control.Handle("POST", "/weft/v1/demand",
                 [&](const http::Request& r, std::shared_ptr<http::ResponseWriter> w) {
                   {
                     std::lock_guard lock(mu);
                     bodies.push_back(nlohmann::json::parse(r.body, nullptr, false));
                     auth.emplace_back(r.Header("Authorization"));
                   }
                   http::Response resp;
                   resp.status = auth.back() == "Bearer s3cret" ? 200 : 401;
                   resp.body = "{}";
                   w->Respond(std::move(resp));
                 });
  ASSERT_TRUE(control.Start().ok());
  upstream::UpstreamClient client;
  auto reporter = DemandReporter::Create(
      &client, {.control_url = "http://127.0.0.1:" + std::to_string(control.port()),
                .bearer_token = "s3cret",
                .gateway_id = "gw-a",
                .timeout_s = 2});
  ASSERT_TRUE(reporter.ok()) << reporter.status();
  (*reporter)->Report({{"chat", 3}, {"code", 0}});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*reporter)->sent() + (*reporter)->failed() < 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ((*reporter)->sent(), 1);
  EXPECT_EQ((*reporter)->failed(), 0);
  std::lock_guard lock(mu);
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(bodies[0], nlohmann::json::parse(
                           R"({"gateway": "gw-a",
                               "deployments": {"chat": {"held": 3}, "code": {"held": 0}}})"));
  EXPECT_EQ(auth[0], "Bearer s3cret");
  control.Stop(1);
}

TEST(DemandReporterTest, BadUrlAndUnreachableControl) {
  upstream::UpstreamClient client;
  EXPECT_FALSE(
      DemandReporter::Create(
          &client, {.control_url = "ftp://x", .bearer_token = "", .gateway_id = "", .timeout_s = 1})
          .ok());
  // A port nobody listens on (bound then closed): the failure is counted, nothing throws.
  uint16_t port = 0;
  {
    http::ServerOptions so;
    so.host = "127.0.0.1";
    http::HttpServer s(so);
    ASSERT_TRUE(s.Start().ok());
    port = s.port();
    s.Stop(0);
  }
  auto r =
      DemandReporter::Create(&client, {.control_url = "http://127.0.0.1:" + std::to_string(port),
                                       .bearer_token = "",
                                       .gateway_id = "",
                                       .timeout_s = 1});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->gateway_id().rfind("gw-", 0), 0u);
  (*r)->Report({{"chat", 1}});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*r)->failed() < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ((*r)->failed(), 1);
  EXPECT_EQ((*r)->sent(), 0);
}

}  // namespace
}  // namespace weft::gateway
