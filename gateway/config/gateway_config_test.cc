// SPDX-License-Identifier: Apache-2.0
#include "gateway/config/gateway_config.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

constexpr char kFull[] = R"(# a complete gateway config
listen: {host: 0.0.0.0, port: 9090}
io_threads: 4
io_cpu_affinity: true
tls: {cert: /etc/weft/cert.pem, key: /etc/weft/key.pem}
admin_key_env: WEFT_TEST_ADMIN_KEY
data_dir: /var/lib/weft
store: postgresql://weft@db/weft
limits:
  max_body_bytes: 2MiB
  header_timeout_s: 5
  idle_timeout_s: 30
  upstream_connect_timeout_s: 1.5
  upstream_first_byte_timeout_s: 20
  upstream_stall_timeout_s: 4
  retries: 3
  retry_budget_ratio: 0.1
  retry_budget_min_per_s: 5
  hedge_after_ms: 250
  max_outstanding_per_replica: 64
  hold_timeout_s: 12.5
  max_held_per_deployment: 9
balancer:
  policy: prefix
  adapter_affinity: false
  seed: 42
  prefix: {block_chars: 64, max_blocks: 8, affinity_blocks: 2, virtual_nodes: 50, load_epsilon: 0.5}
  latency: {ewma_alpha: 0.5, stale_after_s: 3, decay_s: 9, output_tokens: 64}
outlier:
  consecutive_failures: 3
  base_ejection_s: 10
  max_ejection_s: 60
  max_ejection_percent: 34
  breaker_failures: 4
  breaker_open_s: 2
health: {interval_s: 1, timeout_s: 0.5, unhealthy_threshold: 3, healthy_threshold: 2, load_poll_interval_s: 0.25}
routes: {reload_poll_s: 0}
deployments:
  stories:
    replicas:
      - {id: s1, url: "http://127.0.0.1:8001", provider: local, region: home}
      - id: s2
        url: http://10.0.0.2:8002/
        provider: aws
        region: eu-west-1
        state: draining
        weight: 2
    adapters: [sql, chat]
    aliases: {sql-bot: sql, stories-base: ""}
    preferred_providers: [local]
    preferred_regions: home
  alpha:
    replicas:
      - {url: "http://[::1]:8003"}
)";

TEST(GatewayConfigTest, EmptyDocumentGivesDefaults) {
  auto c = ParseGatewayConfig("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, GatewayConfig{});
  EXPECT_EQ(c->listen_host, "127.0.0.1");
  EXPECT_EQ(c->listen_port, 8080);
  EXPECT_EQ(c->data_dir, "./weft-data");
  EXPECT_EQ(c->store.kind, StoreConfig::Kind::kSqlite);
  EXPECT_EQ(c->balancer.policy, BalancerPolicy::kLeastTokens);
  EXPECT_FALSE(c->tls.has_value());
  auto comments_only = ParseGatewayConfig("# nothing here\n");
  ASSERT_TRUE(comments_only.ok()) << comments_only.status();
  EXPECT_EQ(*comments_only, GatewayConfig{});
}

TEST(GatewayConfigTest, ParsesEveryField) {
  auto c = ParseGatewayConfig(kFull, "gw.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen_host, "0.0.0.0");
  EXPECT_EQ(c->listen_port, 9090);
  EXPECT_EQ(c->io_threads, 4);
  EXPECT_TRUE(c->io_cpu_affinity);
  ASSERT_TRUE(c->tls.has_value());
  EXPECT_EQ(c->tls->cert, "/etc/weft/cert.pem");
  EXPECT_EQ(c->tls->key, "/etc/weft/key.pem");
  EXPECT_EQ(c->admin_key_env, "WEFT_TEST_ADMIN_KEY");
  EXPECT_EQ(c->data_dir, "/var/lib/weft");
  EXPECT_EQ(c->store.kind, StoreConfig::Kind::kPostgres);
  EXPECT_EQ(c->store.postgres_url, "postgresql://weft@db/weft");

  const LimitsConfig& l = c->limits;
  EXPECT_EQ(l.max_body_bytes, size_t{2} << 20);
  EXPECT_EQ(l.header_timeout_s, 5);
  EXPECT_EQ(l.idle_timeout_s, 30);
  EXPECT_EQ(l.upstream_connect_timeout_s, 1.5);
  EXPECT_EQ(l.upstream_first_byte_timeout_s, 20);
  EXPECT_EQ(l.upstream_stall_timeout_s, 4);
  EXPECT_EQ(l.retries, 3);
  EXPECT_EQ(l.retry_budget_ratio, 0.1);
  EXPECT_EQ(l.retry_budget_min_per_s, 5);
  EXPECT_EQ(l.hedge_after_ms, 250);
  EXPECT_EQ(l.max_outstanding_per_replica, 64);
  EXPECT_EQ(l.hold_timeout_s, 12.5);
  EXPECT_EQ(l.max_held_per_deployment, 9);

  const BalancerConfig& b = c->balancer;
  EXPECT_EQ(b.policy, BalancerPolicy::kPrefix);
  EXPECT_FALSE(b.adapter_affinity);
  EXPECT_EQ(b.seed, 42u);
  EXPECT_EQ(b.prefix_block_chars, 64u);
  EXPECT_EQ(b.prefix_max_blocks, 8u);
  EXPECT_EQ(b.prefix_affinity_blocks, 2u);
  EXPECT_EQ(b.prefix_virtual_nodes, 50);
  EXPECT_EQ(b.prefix_load_epsilon, 0.5);
  EXPECT_EQ(b.latency_ewma_alpha, 0.5);
  EXPECT_EQ(b.latency_stale_after_s, 3);
  EXPECT_EQ(b.latency_decay_s, 9);
  EXPECT_EQ(b.latency_output_tokens, 64);

  EXPECT_EQ(c->outlier.consecutive_failures, 3);
  EXPECT_EQ(c->outlier.base_ejection_s, 10);
  EXPECT_EQ(c->outlier.max_ejection_s, 60);
  EXPECT_EQ(c->outlier.max_ejection_percent, 34);
  EXPECT_EQ(c->outlier.breaker_failures, 4);
  EXPECT_EQ(c->outlier.breaker_open_s, 2);
  EXPECT_EQ(c->health.interval_s, 1);
  EXPECT_EQ(c->health.timeout_s, 0.5);
  EXPECT_EQ(c->health.unhealthy_threshold, 3);
  EXPECT_EQ(c->health.healthy_threshold, 2);
  EXPECT_EQ(c->health.load_poll_interval_s, 0.25);
  EXPECT_EQ(c->routes.reload_poll_s, 0);

  ASSERT_EQ(c->deployments.size(), 2u);
  const DeploymentConfig& a = c->deployments[0];  // sorted by name
  EXPECT_EQ(a.name, "alpha");
  ASSERT_EQ(a.replicas.size(), 1u);
  EXPECT_EQ(a.replicas[0].id, "alpha-0");  // default id
  EXPECT_EQ(a.replicas[0].host, "::1");
  EXPECT_EQ(a.replicas[0].port, 8003);
  const DeploymentConfig& s = c->deployments[1];
  EXPECT_EQ(s.name, "stories");
  ASSERT_EQ(s.replicas.size(), 2u);
  EXPECT_EQ(s.replicas[0].id, "s1");
  EXPECT_EQ(s.replicas[0].host, "127.0.0.1");
  EXPECT_EQ(s.replicas[0].port, 8001);
  EXPECT_EQ(s.replicas[0].provider, "local");
  EXPECT_EQ(s.replicas[0].region, "home");
  EXPECT_EQ(s.replicas[0].state, ReplicaState::kReady);
  EXPECT_EQ(s.replicas[0].weight, 1);
  EXPECT_EQ(s.replicas[1].url, "http://10.0.0.2:8002/");
  EXPECT_EQ(s.replicas[1].host, "10.0.0.2");
  EXPECT_EQ(s.replicas[1].state, ReplicaState::kDraining);
  EXPECT_EQ(s.replicas[1].weight, 2);
  EXPECT_EQ(s.adapters, (std::vector<std::string>{"sql", "chat"}));
  EXPECT_EQ(s.aliases.at("sql-bot"), "sql");
  EXPECT_EQ(s.aliases.at("stories-base"), "");
  EXPECT_EQ(s.preferred_providers, std::vector<std::string>{"local"});
  EXPECT_EQ(s.preferred_regions, std::vector<std::string>{"home"});
}

TEST(GatewayConfigTest, Shorthands) {
  auto c = ParseGatewayConfig("listen: \"[::]:7000\"\nbalancer: round_robin\nstore: sqlite\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen_host, "::");
  EXPECT_EQ(c->listen_port, 7000);
  EXPECT_EQ(c->balancer.policy, BalancerPolicy::kRoundRobin);
  EXPECT_EQ(c->store.kind, StoreConfig::Kind::kSqlite);
  auto m = ParseGatewayConfig("store: {kind: sqlite, sqlite_path: /tmp/g.db}\nlisten: :81\n");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->store.sqlite_path, "/tmp/g.db");
  EXPECT_EQ(m->listen_host, "127.0.0.1");
  EXPECT_EQ(m->listen_port, 81);
}

// Each bad config: the error names the source, the line and the field path.
struct BadCase {
  const char* yaml;
  const char* expect_prefix;  // "source:line: path"
  const char* expect_text;
};

TEST(GatewayConfigTest, ErrorsNameFileLineAndField) {
  const BadCase cases[] = {
      {"listen: {host: a, port: 1}\nlimits:\n  retries: 2\n  max_body_byte: 5\n",
       "gw.yaml:4: limits.max_body_byte", "unknown field"},
      {"io_threads: many\n", "gw.yaml:1: io_threads", "expected an integer"},
      {"io_threads: 0\n", "gw.yaml:1: io_threads", "must be in [1, 1024]"},
      {"io_cpu_affinity: 2\n", "gw.yaml:1: io_cpu_affinity", "expected true or false"},
      {"\n\nlistn: :80\n", "gw.yaml:3: listn", "unknown field"},
      {"limits:\n  retries: [1]\n", "gw.yaml:2: limits.retries", "expected an integer"},
      {"limits: {max_body_bytes: 12 parsecs}\n", "gw.yaml:1: limits.max_body_bytes", "byte count"},
      {"balancer: {policy: fastest}\n", "gw.yaml:1: balancer.policy", "expected least_tokens"},
      {"balancer:\n  prefix:\n    block_chars: 0\n", "gw.yaml:3: balancer.prefix.block_chars",
       "must be in"},
      {"tls: {cert: a.pem}\n", "gw.yaml:1: tls.key", "required"},
      {"admin_key: k\nadmin_key_env: K\n", "gw.yaml:2: admin_key_env", "use one"},
      {"store: mysql://x\n", "gw.yaml:1: store", "expected sqlite"},
      {"store: {kind: postgres}\n", "gw.yaml:1: store.postgres_url", "required"},
      {"outlier: {base_ejection_s: 10, max_ejection_s: 5}\n", "gw.yaml:1: outlier.max_ejection_s",
       "at least"},
      {"deployments:\n  a:\n    replicas:\n      - {id: r1, url: \"http://h:1\"}\n"
       "      - {id: r2, url: \"https://h:2\"}\n",
       "gw.yaml:5: deployments.a.replicas[1].url", "expected http://host:port"},
      {"deployments:\n  a:\n    replicas:\n      - {id: r1, url: \"http://h:1\"}\n"
       "  b:\n    replicas:\n      - id: r1\n        url: http://h:2\n",
       "gw.yaml:7: deployments.b.replicas[0].id", "duplicate replica id"},
      {"deployments:\n  a:\n    replicas:\n      - {id: r1, url: \"http://h:1\", stat: down}\n",
       "gw.yaml:4: deployments.a.replicas[0].stat", "unknown field"},
      {"deployments:\n  a:\n    replicas:\n      - {id: r1, url: \"http://h:1\", state: gone}\n",
       "gw.yaml:4: deployments.a.replicas[0].state", "expected ready"},
      {"deployments:\n  a:\n    replicas:\n      - {id: r1}\n",
       "gw.yaml:4: deployments.a.replicas[0].url", "required"},
      {"deployments:\n  a:\n    replicas:\n      - {id: r1, url: \"http://h:1\", weight: 0}\n",
       "gw.yaml:4: deployments.a.replicas[0].weight", "greater than 0"},
      {"deployments:\n  a: {}\n  b:\n    aliases: {a: \"\"}\n",
       "gw.yaml:4: deployments.b.aliases.a", "collides"},
      {"deployments:\n  a:\n    adapters: [sql]\n    aliases:\n      bot: chat\n",
       "gw.yaml:5: deployments.a.aliases.bot", "not in adapters"},
      {"deployments:\n  \"a:b\": {}\n", "gw.yaml:2: deployments.a:b", "deployment name"},
      {"deployments:\n  a:\n    adapters: [x, x]\n", "gw.yaml:3: deployments.a.adapters[1]",
       "duplicate adapter"},
      {"routes: {control_url: \"http://c:1\"}\ndeployments:\n  a: {}\n", "gw.yaml:3: deployments",
       "control plane"},
      {"routes: {control_url: ctl}\n", "gw.yaml:1: routes.control_url", "http://host:port"},
      {"limits: {retries: 1, retries: 2}\n", "gw.yaml:1: limits.retries", "duplicate field"},
      {"- a\n- b\n", "gw.yaml:1: (top)", "expected a mapping"},
      {"limits: {retries: 1\n", "gw.yaml:", "invalid YAML"},
      {"a: b\n  c: d: e\n", "gw.yaml:", "invalid YAML"},
  };
  for (const BadCase& bc : cases) {
    auto c = ParseGatewayConfig(bc.yaml, "gw.yaml");
    ASSERT_FALSE(c.ok()) << bc.yaml;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    std::string msg(c.status().message());
    EXPECT_EQ(msg.rfind(bc.expect_prefix, 0), 0u) << "got: " << msg << "\nfor:\n" << bc.yaml;
    EXPECT_NE(msg.find(bc.expect_text), std::string::npos) << "got: " << msg;
  }
}

TEST(GatewayConfigTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "deployments: " + std::string(100000, '[') + std::string(100000, ']');
  auto c = ParseGatewayConfig(deep, "deep.yaml");
  EXPECT_FALSE(c.ok());
  std::string block = "a:\n";
  for (int i = 1; i < 3000; ++i) block += std::string(i, ' ') + "- \n";
  EXPECT_FALSE(ParseGatewayConfig(block).ok());
}

TEST(GatewayConfigTest, LoadFromFile) {
  std::string path = ::testing::TempDir() + "/weft_gateway_config_test.yaml";
  {
    std::ofstream out(path);
    out << "limits:\n  retries: 7\n";
  }
  auto c = LoadGatewayConfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->limits.retries, 7);
  {
    std::ofstream out(path);
    out << "limits:\n  retries: -1\n";
  }
  auto bad = LoadGatewayConfig(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.status().message()).rfind(path + ":2: limits.retries", 0), 0u)
      << bad.status();
  std::remove(path.c_str());
  EXPECT_EQ(LoadGatewayConfig(path).status().code(), absl::StatusCode::kNotFound);
}

TEST(GatewayConfigTest, ResolveAdminKey) {
  GatewayConfig c;
  EXPECT_EQ(ResolveAdminKey(c).value(), "");
  c.admin_key = "literal";
  EXPECT_EQ(ResolveAdminKey(c).value(), "literal");
  c.admin_key.clear();
  c.admin_key_env = "WEFT_GATEWAY_CONFIG_TEST_KEY";
  ::unsetenv("WEFT_GATEWAY_CONFIG_TEST_KEY");
  EXPECT_EQ(ResolveAdminKey(c).status().code(), absl::StatusCode::kFailedPrecondition);
  ::setenv("WEFT_GATEWAY_CONFIG_TEST_KEY", "from-env", 1);
  EXPECT_EQ(ResolveAdminKey(c).value(), "from-env");
  ::unsetenv("WEFT_GATEWAY_CONFIG_TEST_KEY");
}

TEST(GatewayConfigTest, ParseHttpUrl) {
  auto hp = ParseHttpUrl("http://localhost:8080");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "localhost");
  EXPECT_EQ(hp->port, 8080);
  for (const char* bad :
       {"localhost:8080", "http://localhost", "http://:80", "http://h:0", "http://h:65536",
        "http://h:80/v1", "http://u@h:80", "http://a:b:80", "https://h:443", "http://h:8x"}) {
    EXPECT_FALSE(ParseHttpUrl(bad).ok()) << bad;
  }
}

TEST(GatewayConfigTest, ValidateDeploymentsWithoutYaml) {
  std::vector<DeploymentConfig> ds(1);
  ds[0].name = "m";
  ReplicaConfig r;
  r.id = "r";
  r.url = "http://h:9";
  ds[0].replicas.push_back(r);
  ASSERT_TRUE(ValidateDeployments(ds).ok());
  EXPECT_EQ(ds[0].replicas[0].host, "h");
  EXPECT_EQ(ds[0].replicas[0].port, 9);
  r.url = "http://h:10";
  ds[0].replicas.push_back(r);
  absl::Status s = ValidateDeployments(ds);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(s.message()).rfind("deployments.m.replicas[1].id: duplicate", 0), 0u) << s;
}

}  // namespace
}  // namespace weft::gateway
