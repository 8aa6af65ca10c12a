// SPDX-License-Identifier: Apache-2.0
#include "control/providers/provider_config.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::control {
namespace {

std::string ErrorOf(const std::string& yaml) {
  auto r = ParseProvidersYaml(yaml, "p.yaml");
  EXPECT_FALSE(r.ok()) << yaml;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  return std::string(r.status().message());
}

TEST(ProviderConfigTest, ParsesTheDocumentedExample) {
  auto r = ParseProvidersYaml(R"(providers:
  - name: local
    kind: local
    slots: 2
  - name: east
    kind: hosts
    region: us-east
    token_env: WEFT_AGENT_TOKEN   # or token: ...
    hosts: [http://10.0.0.1:7071, "http://10.0.0.2:7071/"]
    usd_per_hour: 1.25
    timeout_ms: 800
)");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  const ProviderConfig& local = (*r)[0];
  EXPECT_EQ(local.name, "local");
  EXPECT_EQ(local.kind, "local");
  EXPECT_EQ(local.slots, 2);
  EXPECT_EQ(local.accelerator, "cpu");
  EXPECT_EQ(local.usd_per_hour, -1);
  const ProviderConfig& east = (*r)[1];
  EXPECT_EQ(east.kind, "hosts");
  EXPECT_EQ(east.region, "us-east");
  EXPECT_EQ(east.token_env, "WEFT_AGENT_TOKEN");
  EXPECT_EQ(east.hosts, (std::vector<std::string>{"http://10.0.0.1:7071", "http://10.0.0.2:7071"}));
  EXPECT_DOUBLE_EQ(east.usd_per_hour, 1.25);
  EXPECT_EQ(east.timeout_ms, 800);
}

TEST(ProviderConfigTest, ErrorsNameTheFieldAndLine) {
  struct Case {
    std::string yaml;
    std::string want;  // the message starts with this
  };
  const std::vector<Case> cases = {
      {"providers: [", "p.yaml:1: not YAML"},
      {"- a\n", "p.yaml:1: providers: want a map"},
      {"provider: []\n", "p.yaml:1: provider: unknown key"},
      {"providers: []\n", "p.yaml:1: providers: want a non-empty list"},
      {"providers:\n  - kind: local\n", "p.yaml:2: providers[0].name: required"},
      {"providers:\n  - {name: Local, kind: local}\n", "p.yaml:2: providers[0].name: 'Local'"},
      {"providers:\n  - {name: a}\n", "p.yaml:2: providers[0].kind: required"},
      {"providers:\n  - {name: a, kind: aws}\n", "p.yaml:2: providers[0].kind: unknown kind 'aws'"},
      {"providers:\n  - name: a\n    kind: local\n    slot: 2\n",
       "p.yaml:4: providers[0].slot: unknown key for kind local"},
      {"providers:\n  - {name: a, kind: local, slots: 0}\n",
       "p.yaml:2: providers[0].slots: must be"},
      {"providers:\n  - {name: a, kind: local, slots: two}\n",
       "p.yaml:2: providers[0].slots: want an integer"},
      {"providers:\n  - {name: a, kind: local, slots: '2'}\n",
       "p.yaml:2: providers[0].slots: want an integer"},
      {"providers:\n  - {name: a, kind: local, usd_per_hour: -1}\n",
       "p.yaml:2: providers[0].usd_per_hour: must be >= 0"},
      {"providers:\n  - {name: a, kind: local, hosts: [http://h:1]}\n",
       "p.yaml:2: providers[0].hosts: unknown key for kind local"},
      {"providers:\n  - {name: a, kind: local}\n  - {name: a, kind: local}\n",
       "p.yaml:3: providers[1].name: 'a' is used"},
      {"providers:\n  - {name: h, kind: hosts, token: t}\n",
       "p.yaml:2: providers[0].hosts: required"},
      {"providers:\n  - name: h\n    kind: hosts\n    token: t\n    hosts:\n      - http://a:1\n"
       "      - 10.0.0.2:7071\n",
       "p.yaml:7: providers[0].hosts[1]: '10.0.0.2:7071' is not an agent URL"},
      {"providers:\n  - {name: h, kind: hosts, token: t, hosts: [http://a:1, http://a:1/]}\n",
       "p.yaml:2: providers[0].hosts[1]: 'http://a:1' listed twice"},
      {"providers:\n  - {name: h, kind: hosts, token: t, hosts: [http://a:99999]}\n",
       "p.yaml:2: providers[0].hosts[0]:"},
      {"providers:\n  - {name: h, kind: hosts, token: t, hosts: [http://a:1/x]}\n",
       "p.yaml:2: providers[0].hosts[0]:"},
      {"providers:\n  - {name: h, kind: hosts, hosts: [http://a:1]}\n",
       "p.yaml:2: providers[0].token: give exactly one"},
      {"providers:\n  - {name: h, kind: hosts, token: t, token_env: T, hosts: [http://a:1]}\n",
       "p.yaml:2: providers[0].token: give exactly one"},
      {"providers:\n  - {name: h, kind: hosts, token_env: 'A B', hosts: [http://a:1]}\n",
       "p.yaml:2: providers[0].token_env: 'A B' is not"},
      {"providers:\n  - {name: h, kind: hosts, token: t, hosts: [http://a:1], timeout_ms: 1}\n",
       "p.yaml:2: providers[0].timeout_ms: must be"},
  };
  for (const Case& c : cases) {
    const std::string got = ErrorOf(c.yaml);
    EXPECT_TRUE(absl::StartsWith(got, c.want))
        << "yaml:\n"
        << c.yaml << "\ngot:  " << got << "\nwant: " << c.want;
  }
}

TEST(ProviderConfigTest, BuildsEachKind) {
  const std::string dir = weft::testing::MakeTempDir("weft-provider-config");
  const std::string fake_weft = dir + "/weft";
  std::ofstream(fake_weft) << "#!/bin/sh\nexec sleep 30\n";
  std::filesystem::permissions(fake_weft, std::filesystem::perms::owner_all);
  auto configs = ParseProvidersYaml(R"(providers:
  - {name: here, kind: local, slots: 3, region: lab}
  - {name: east, kind: hosts, token_env: TEST_AGENT_TOKEN, hosts: [http://127.0.0.1:9], region: us-east}
)");
  ASSERT_TRUE(configs.ok()) << configs.status();
  ProviderEnvironment env;
  env.weft_binary = fake_weft;
  env.data_dir = dir;
  env.getenv = [](const char*) -> const char* { return nullptr; };
  auto missing = BuildProviders(*configs, env);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "providers[1] (east): token_env: environment variable TEST_AGENT_TOKEN is not set");

  env.getenv = [](const char* name) -> const char* {
    return std::string(name) == "TEST_AGENT_TOKEN" ? "s3cret" : nullptr;
  };
  auto built = BuildProviders(*configs, env);
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_EQ(built->size(), 2u);
  EXPECT_EQ((*built)[0].name, "here");
  EXPECT_EQ((*built)[0].kind, "local");
  auto cap = (*built)[0].provider->Capacity();
  ASSERT_TRUE(cap.ok());
  EXPECT_EQ(cap->accelerators[0].total, 3);
  EXPECT_EQ(cap->regions, std::vector<std::string>{"lab"});
  EXPECT_EQ((*built)[1].kind, "hosts");
  // Nothing listens on port 9: the hosts provider is built but degraded.
  EXPECT_FALSE((*built)[1].provider->Health().ok);
  EXPECT_EQ((*built)[1].provider->Capacity().status().code(), absl::StatusCode::kUnavailable);
  built->clear();

  env.weft_binary = dir + "/no-such-weft";
  EXPECT_EQ(BuildProviders(*configs, env).status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(ProviderConfigTest, LoadsAFile) {
  const std::string dir = weft::testing::MakeTempDir("weft-provider-config");
  EXPECT_EQ(LoadProvidersFile(dir + "/none.yaml").status().code(), absl::StatusCode::kNotFound);
  std::ofstream(dir + "/p.yaml") << "providers:\n  - {name: local, kind: local, slots: 1}\n";
  auto r = LoadProvidersFile(dir + "/p.yaml");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].slots, 1);
  std::ofstream(dir + "/bad.yaml") << "providers:\n  - {name: local, kind: local, slots: -1}\n";
  EXPECT_TRUE(absl::StartsWith(LoadProvidersFile(dir + "/bad.yaml").status().message(),
                               dir + "/bad.yaml:2: providers[0].slots"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace weft::control
