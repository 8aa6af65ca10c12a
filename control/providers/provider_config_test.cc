// SPDX-License-Identifier: Apache-2.0
#include "control/providers/provider_config.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "testing/fake_kube_apiserver.h"
#include "testing/test_data.h"
#include "yaml-cpp/yaml.h"

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
      // kind: kubernetes
      {"providers:\n  - {name: k, kind: kubernetes, slots: {cpu: 1}}\n",
       "p.yaml:2: providers[0].kubeconfig: required for kind kubernetes"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: ''}\n",
       "p.yaml:2: providers[0].kubeconfig: empty"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k}\n",
       "p.yaml:2: providers[0].slots: required for kind kubernetes"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k, slots: 4}\n",
       "p.yaml:2: providers[0].slots: want a map of accelerator kind to slots"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k, slots: {}}\n",
       "p.yaml:2: providers[0].slots: want a map"},
      {"providers:\n  - name: k\n    kind: kubernetes\n    kubeconfig: /k\n    slots:\n"
       "      cpu: 2\n      h100: 0\n",
       "p.yaml:7: providers[0].slots.h100: must be in [1, 4096]"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k, slots: {H100: 1}}\n",
       "p.yaml:2: providers[0].slots.H100: 'H100' is not an accelerator kind"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k, slots: {cpu: many}}\n",
       "p.yaml:2: providers[0].slots.cpu: want an integer"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k, slots: {cpu: 1}, "
       "namespace: Weft_NS}\n",
       "p.yaml:2: providers[0].namespace: 'Weft_NS' is not a namespace name"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k, slots: {cpu: 1}, image: ''}\n",
       "p.yaml:2: providers[0].image: empty"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k, slots: {cpu: 1}, "
       "model_pvc: 'a/b'}\n",
       "p.yaml:2: providers[0].model_pvc: 'a/b' is not a PersistentVolumeClaim name"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k, slots: {cpu: 1}, "
       "context: [a]}\n",
       "p.yaml:2: providers[0].context: want a string"},
      {"providers:\n  - {name: k, kind: kubernetes, kubeconfig: /k, slots: {cpu: 1}, "
       "hosts: [http://a:1]}\n",
       "p.yaml:2: providers[0].hosts: unknown key for kind kubernetes"},
      {"providers:\n  - {name: a, kind: local, kubeconfig: /k}\n",
       "p.yaml:2: providers[0].kubeconfig: unknown key for kind local"},
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

TEST(ProviderConfigTest, ParsesKubernetes) {
  auto r = ParseProvidersYaml(R"(providers:
  - name: cluster
    kind: kubernetes
    kubeconfig: /etc/weft/kubeconfig.yaml
    context: ""              # "" = current-context
    namespace: weft
    image: registry.example/weft:1.2
    model_pvc: weft-models
    region: us-east
    slots: {cpu: 8, h100: 4}
    usd_per_hour: 2.5
  - {name: small, kind: kubernetes, kubeconfig: k.yaml, context: prod, slots: {cpu: 1}}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  const ProviderConfig& k = (*r)[0];
  EXPECT_EQ(k.kind, "kubernetes");
  EXPECT_EQ(k.kubeconfig, "/etc/weft/kubeconfig.yaml");
  EXPECT_EQ(k.context, "");
  EXPECT_EQ(k.namespace_name, "weft");
  EXPECT_EQ(k.image, "registry.example/weft:1.2");
  EXPECT_EQ(k.model_pvc, "weft-models");
  EXPECT_EQ(k.region, "us-east");
  EXPECT_EQ(k.accelerator_slots, (std::map<std::string, int>{{"cpu", 8}, {"h100", 4}}));
  EXPECT_DOUBLE_EQ(k.usd_per_hour, 2.5);
  const ProviderConfig& small = (*r)[1];
  EXPECT_EQ(small.context, "prod");
  EXPECT_EQ(small.namespace_name, "");
  EXPECT_EQ(small.image, "ghcr.io/weft/weft:latest");
  EXPECT_EQ(small.model_pvc, "");
  EXPECT_EQ(small.region, "");
  EXPECT_EQ(small.usd_per_hour, -1);
  EXPECT_EQ(small.accelerator_slots, (std::map<std::string, int>{{"cpu", 1}}));
}

// The providers.yaml in deploy/kubernetes/control-plane.yaml's ConfigMap parses, and the kubeconfig
// it names is the one the same ConfigMap mounts.
TEST(ProviderConfigTest, DeployedProvidersFileParses) {
  const std::vector<YAML::Node> docs =
      YAML::LoadAllFromFile(std::string(WEFT_SOURCE_DIR) + "/deploy/kubernetes/control-plane.yaml");
  int found = 0;
  for (const YAML::Node& doc : docs) {
    if (!doc["kind"] || doc["kind"].Scalar() != "ConfigMap") continue;
    ASSERT_TRUE(doc["data"]["providers.yaml"]);
    ASSERT_TRUE(doc["data"]["kubeconfig.yaml"]);
    auto r = ParseProvidersYaml(doc["data"]["providers.yaml"].Scalar(), "control-plane.yaml");
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].kind, "kubernetes");
    EXPECT_EQ((*r)[0].kubeconfig, "/etc/weft/kubeconfig.yaml");  // the ConfigMap's mount path
    EXPECT_EQ((*r)[0].model_pvc, "weft-models");  // the claim the control plane itself mounts
    ++found;
  }
  EXPECT_EQ(found, 1);
}

// The factory turns a kubernetes entry into a KubernetesProvider that talks to the cluster its
// kubeconfig names (the fake API server here) with the file's namespace, image, PVC and slots.
TEST(ProviderConfigTest, BuildsKubernetesAgainstTheFakeApiServer) {
  weft::testing::FakeKubeApiServerOptions api_options;
  api_options.token = "kube-t0ken";
  auto api = weft::testing::FakeKubeApiServer::Start(api_options);
  ASSERT_TRUE(api.ok()) << api.status();
  const std::string dir = weft::testing::MakeTempDir("weft-provider-config");
  std::ofstream(dir + "/kubeconfig.yaml")
      << "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
      << "clusters: [{name: fake, cluster: {server: \"" << (*api)->url() << "\"}}]\n"
      << "contexts:\n"
      << "  - {name: other, context: {cluster: fake, user: nobody}}\n"
      << "  - {name: test, context: {cluster: fake, user: u, namespace: weft}}\n"
      << "users: [{name: u, user: {token: kube-t0ken}}, {name: nobody, user: {token: wrong}}]\n";
  std::ofstream(dir + "/providers.yaml")
      << "providers:\n"
      << "  - name: cluster\n"
      << "    kind: kubernetes\n"
      << "    kubeconfig: " << dir << "/kubeconfig.yaml\n"
      << "    context: test\n"
      << "    image: registry.example/weft:test\n"
      << "    model_pvc: weft-models\n"
      << "    region: lab\n"
      << "    slots: {cpu: 2, h100: 1}\n"
      << "    usd_per_hour: 0.5\n"
      << "  - {name: missing, kind: kubernetes, kubeconfig: " << dir
      << "/none.yaml, slots: {cpu: 1}}\n";
  auto configs = LoadProvidersFile(dir + "/providers.yaml");
  ASSERT_TRUE(configs.ok()) << configs.status();
  ProviderEnvironment env;

  auto missing = MakeProvider((*configs)[1], env);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_TRUE(absl::StartsWith(missing.status().message(), "kubeconfig:")) << missing.status();

  auto built = BuildProviders({(*configs)[0]}, env);
  ASSERT_TRUE(built.ok()) << built.status();
  Provider& p = *(*built)[0].provider;
  EXPECT_EQ((*built)[0].kind, "kubernetes");
  EXPECT_TRUE(p.Health().ok) << p.Health().reason;  // the context's token, not current-context's
  auto cap = p.Capacity();
  ASSERT_TRUE(cap.ok()) << cap.status();
  EXPECT_EQ(cap->regions, std::vector<std::string>{"lab"});
  ASSERT_EQ(cap->accelerators.size(), 2u);
  for (const AcceleratorSlots& a : cap->accelerators) {
    EXPECT_EQ(a.total, a.kind == "cpu" ? 2 : 1) << a.kind;
    EXPECT_DOUBLE_EQ(a.usd_per_hour, 0.5) << a.kind;
  }

  ReplicaSpec spec;
  spec.id = "r1";
  spec.deployment = "demo";
  spec.model_path = "/models/stories260K.gguf";
  spec.accelerator = "h100";
  auto provisioned = p.Provision(spec);
  ASSERT_TRUE(provisioned.ok()) << provisioned.status();
  // In the context's namespace, with the file's image, the models claim and one GPU.
  const std::optional<nlohmann::json> d = (*api)->Get("deployments", "weft", "weft-r1");
  ASSERT_TRUE(d.has_value());
  const nlohmann::json& pod = (*d)["spec"]["template"]["spec"];
  EXPECT_EQ(pod["containers"][0]["image"], "registry.example/weft:test");
  EXPECT_EQ(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], "1");
  EXPECT_EQ(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "weft-models");
  built->clear();
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
