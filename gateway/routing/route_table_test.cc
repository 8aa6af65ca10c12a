// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/route_table.h"

#include <thread>

#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

ReplicaConfig Replica(std::string id, std::string url, std::string provider = "",
                      std::string region = "", ReplicaState state = ReplicaState::kReady,
                      double weight = 1) {
  ReplicaConfig r;
  r.id = std::move(id);
  r.url = std::move(url);
  r.provider = std::move(provider);
  r.region = std::move(region);
  r.state = state;
  r.weight = weight;
  return r;
}

std::vector<DeploymentConfig> Sample() {
  DeploymentConfig llama;
  llama.name = "llama";
  llama.replicas = {
      Replica("l1", "http://10.0.0.1:8000", "aws", "eu-west-1"),
      Replica("l2", "http://10.0.0.2:8000", "gcp", "us-east1", ReplicaState::kDraining, 2.5)};
  llama.adapters = {"sql", "chat"};
  llama.aliases = {{"sql-bot", "sql"}, {"llama-latest", ""}};
  llama.preferred_providers = {"aws"};
  llama.preferred_regions = {"eu-west-1"};
  DeploymentConfig open;
  open.name = "open";  // lists no adapters: any adapter passes through
  open.replicas = {Replica("o1", "http://127.0.0.1:9000", "local")};
  return {open, llama};  // unsorted on purpose
}

TEST(RouteTableTest, ResolvesDeploymentsAdaptersAndAliases) {
  auto table = RouteTable::Build(Sample(), "7");
  ASSERT_TRUE(table.ok()) << table.status();
  const RouteTable& t = **table;
  EXPECT_EQ(t.version(), "7");
  ASSERT_EQ(t.deployments().size(), 2u);
  EXPECT_EQ(t.deployments()[0].name, "llama");  // sorted by name

  auto base = t.Resolve("llama");
  ASSERT_TRUE(base.has_value());
  EXPECT_EQ(base->deployment->name, "llama");
  EXPECT_EQ(base->adapter, "");
  EXPECT_EQ(base->deployment->replicas[1].host, "10.0.0.2");  // filled by validation

  auto sql = t.Resolve("llama:sql");
  ASSERT_TRUE(sql.has_value());
  EXPECT_EQ(sql->adapter, "sql");
  EXPECT_FALSE(t.Resolve("llama:nope").has_value());  // not in the deployment's list
  EXPECT_FALSE(t.Resolve("llama:").has_value());
  EXPECT_FALSE(t.Resolve("llama:sql:x").has_value());
  EXPECT_FALSE(t.Resolve("missing").has_value());
  EXPECT_FALSE(t.Resolve("").has_value());

  auto bot = t.Resolve("sql-bot");
  ASSERT_TRUE(bot.has_value());
  EXPECT_EQ(bot->deployment->name, "llama");
  EXPECT_EQ(bot->adapter, "sql");
  auto latest = t.Resolve("llama-latest");
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->adapter, "");

  auto any = t.Resolve("open:whatever");
  ASSERT_TRUE(any.has_value());
  EXPECT_EQ(any->adapter, "whatever");

  EXPECT_EQ(t.FindReplica("l2")->weight, 2.5);
  EXPECT_EQ(t.FindReplica("zz"), nullptr);
  EXPECT_EQ(t.FindDeployment("open")->replicas.size(), 1u);
  EXPECT_EQ(t.ModelNames(), (std::vector<std::string>{"llama", "llama-latest", "llama:chat",
                                                      "llama:sql", "open", "sql-bot"}));
}

TEST(RouteTableTest, BuildRejectsInvalidDeployments) {
  auto ds = Sample();
  ds[1].replicas[1].id = "o1";  // collides with open's replica
  auto t = RouteTable::Build(ds);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(t.status().message()).find("duplicate replica id"), std::string::npos);
  ds = Sample();
  ds[0].replicas[0].url = "10.0.0.1:80";
  EXPECT_FALSE(RouteTable::Build(ds).ok());
}

TEST(RouteTableTest, JsonRoundTrip) {
  auto table = RouteTable::Build(Sample(), "v42");
  ASSERT_TRUE(table.ok());
  std::string body = RouteTableToJson(**table).dump();
  auto back = RouteTableFromJson(body);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->version(), "v42");
  EXPECT_EQ((*back)->deployments(), (*table)->deployments());
  EXPECT_EQ(RouteTableToJson(**back).dump(), body);
  EXPECT_EQ(RouteTableToJson(**back)["deployments"][0]["replicas"][1]["state"], "draining");
}

TEST(RouteTableTest, JsonToleratesUnknownAndMissingFields) {
  auto t = RouteTableFromJson(R"({"version": 3, "future": true, "deployments": [
      {"name": "m", "extra": 1, "replicas": [{"id": "r", "url": "http://h:1", "gpu": "h100"}]}]})");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->version(), "3");
  const ReplicaConfig* r = (*t)->FindReplica("r");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state, ReplicaState::kReady);
  EXPECT_EQ(r->weight, 1);
  EXPECT_EQ(r->port, 1);
  auto empty = RouteTableFromJson("{}");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE((*empty)->deployments().empty());
}

TEST(RouteTableTest, JsonErrors) {
  const char* bad[] = {
      "",
      "[]",
      "{\"deployments\": {}}",
      "{\"version\": [1]}",
      "{\"deployments\": [{\"name\": 5}]}",
      "{\"deployments\": [{\"name\": \"m\", \"replicas\": [{\"id\": \"r\"}]}]}",  // no url
      "{\"deployments\": [{\"name\": \"m\", \"replicas\": [{\"id\": \"r\", \"url\": \"http://h:1\","
      " \"state\": \"sleeping\"}]}]}",
      "{\"deployments\": [{\"name\": \"m\", \"replicas\": [{\"id\": \"r\", \"url\": \"http://h:1\","
      " \"weight\": \"heavy\"}]}]}",
      "{\"deployments\": [{\"name\": \"m\", \"aliases\": {\"a\": 1}}]}",
      "{\"deployments\": [{\"name\": \"m\"}, {\"name\": \"m\"}]}",
      "{\"deployments\": [{\"name\": \"m\", \"adapters\": [1]}]}",
  };
  for (const char* body : bad) {
    auto t = RouteTableFromJson(body);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << body;
  }
}

TEST(RouteTableTest, HolderSwapsSnapshotsWhileReadersHoldOldOnes) {
  RouteTableHolder holder;
  EXPECT_TRUE(holder.Get()->deployments().empty());
  auto first = RouteTable::Build(Sample(), "1").value();
  holder.Set(first);
  std::shared_ptr<const RouteTable> held = holder.Get();
  std::atomic<bool> stop{false};
  std::atomic<int64_t> reads{0};
  std::thread reader([&] {
    while (!stop) {
      auto t = holder.Get();
      EXPECT_TRUE(t->version() == "1" || t->version() == "2");
      EXPECT_TRUE(t->Resolve("llama").has_value());
      ++reads;
    }
  });
  for (int i = 0; i < 200; ++i) {
    holder.Set(RouteTable::Build(Sample(), i % 2 ? "1" : "2").value());
  }
  while (reads.load() < 100) std::this_thread::yield();
  stop = true;
  reader.join();
  EXPECT_EQ(held->version(), "1");  // still valid
  EXPECT_TRUE(held->Resolve("sql-bot").has_value());
}

}  // namespace
}  // namespace weft::gateway
