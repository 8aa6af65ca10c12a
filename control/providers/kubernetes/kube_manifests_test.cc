// SPDX-License-Identifier: Apache-2.0
// deploy/kubernetes/ against the code: the engine manifests there are exactly what the provider
// builds for the example replica, and the control plane's RBAC Role grants exactly the verbs the
// provider uses against the fake API server.
#include "control/providers/kubernetes/kube_manifests.h"

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "control/providers/kubernetes/kubernetes_provider.h"
#include "gtest/gtest.h"
#include "testing/fake_kube_apiserver.h"
#include "yaml-cpp/yaml.h"

namespace weft::control {
namespace {

using json = nlohmann::json;

std::string DeployPath(const std::string& file) {
  return absl::StrCat(WEFT_SOURCE_DIR, "/deploy/kubernetes/", file);
}

// YAML -> JSON as the API server reads it: plain scalars that look like integers, booleans or null
// become those; quoted scalars stay strings.
json ToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      int64_t i = 0;
      if (absl::SimpleAtoi(s, &i)) return i;
      if (s == "true") return true;
      if (s == "false") return false;
      if (s == "null" || s == "~") return nullptr;
      return s;
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const YAML::Node& e : n) a.push_back(ToJson(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.Scalar()] = ToJson(kv.second);
      return o;
    }
    default:
      return nullptr;
  }
}

std::vector<json> LoadDocuments(const std::string& path) {
  std::vector<json> out;
  try {
    for (const YAML::Node& d : YAML::LoadAllFromFile(path)) {
      if (!d.IsNull()) out.push_back(ToJson(d));
    }
  } catch (const YAML::Exception& e) {
    ADD_FAILURE() << path << ": " << e.what();
  }
  return out;
}

// The example replica of deploy/kubernetes/engine-*.yaml.
struct Example {
  KubeEngineTemplate engine;
  KubeAccelerator accelerator;
  ReplicaSpec spec;
  std::string instance = "0123456789ab";
  int64_t started_ms = 1700000000000;

  Example() {
    engine.namespace_name = "weft";
    engine.model_pvc = "weft-models";
    accelerator =
        KubeAccelerator{.kind = "h100",
                        .slots = 8,
                        .usd_per_hour = 2.5,
                        .resource = "nvidia.com/gpu",
                        .cpu_millis_per_slot = 4000,
                        .memory_mib_per_slot = 16384,
                        .node_selector = {{"nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"}}};
    spec.id = "chat-7f3a";
    spec.deployment = "chat";
    spec.model_path = "/models/llama-3.1-8b-ft.gguf";
    spec.adapters = {{"support", "/models/adapters/support.gguf"}};
    spec.engine.ctx = 8192;
    spec.accelerator = "h100";
    spec.accelerator_count = 1;
  }
};

TEST(KubeManifestsTest, EngineDeploymentMatchesDeployFolder) {
  Example ex;
  std::vector<json> docs = LoadDocuments(DeployPath("engine-deployment.yaml"));
  ASSERT_EQ(docs.size(), 1u);
  const json built =
      BuildEngineDeployment(ex.engine, ex.accelerator, ex.spec, ex.instance, ex.started_ms);
  EXPECT_EQ(docs[0], built) << "deploy/kubernetes/engine-deployment.yaml drifted from "
                               "BuildEngineDeployment; it now builds:\n"
                            << built.dump(2);
}

TEST(KubeManifestsTest, EngineServiceMatchesDeployFolder) {
  Example ex;
  std::vector<json> docs = LoadDocuments(DeployPath("engine-service.yaml"));
  ASSERT_EQ(docs.size(), 1u);
  const json built = BuildEngineService(ex.engine, ex.spec, ex.instance);
  EXPECT_EQ(docs[0], built) << "deploy/kubernetes/engine-service.yaml drifted from "
                               "BuildEngineService; it now builds:\n"
                            << built.dump(2);
}

TEST(KubeManifestsTest, NamesAreValidAndDistinct) {
  ReplicaSpec a, b, c, d;
  a.id = "r1";
  b.id = "R1";
  c.id = "r_1";
  d.id = std::string(100, 'x');
  std::set<std::string> names;
  for (ReplicaSpec* s : {&a, &b, &c, &d}) {
    KubeNames n = KubeNamesFor(*s);
    EXPECT_LE(n.object.size(), 63u) << n.object;
    EXPECT_TRUE(n.object.starts_with("weft-")) << n.object;
    for (char ch : n.object) {
      EXPECT_TRUE((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') << n.object;
    }
    EXPECT_NE(n.object.back(), '-');
    EXPECT_LE(n.replica.size(), 63u);
    names.insert(n.object);
  }
  EXPECT_EQ(names.size(), 4u);
  EXPECT_EQ(KubeNamesFor(a).object, "weft-r1");
  EXPECT_EQ(LabelSafe("chat"), "chat");
  EXPECT_NE(LabelSafe("a/b"), "a/b");
}

// The RBAC Role in control-plane.yaml as "verb resource" strings.
std::set<std::string> RoleVerbs() {
  std::set<std::string> out;
  for (const json& doc : LoadDocuments(DeployPath("control-plane.yaml"))) {
    if (doc.value("kind", "") != "Role") continue;
    for (const json& rule : doc["rules"]) {
      for (const json& r : rule["resources"]) {
        for (const json& v : rule["verbs"])
          out.insert(absl::StrCat(v.get<std::string>(), " ", r.get<std::string>()));
      }
    }
  }
  return out;
}

bool WaitUntil(const std::function<bool()>& pred) {
  for (int i = 0; i < 1000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(KubeManifestsTest, RoleGrantsExactlyTheVerbsTheProviderUses) {
  auto api = testing::FakeKubeApiServer::Start({});
  ASSERT_TRUE(api.ok());
  KubernetesProviderOptions o;
  o.cluster.server = (*api)->url();
  o.engine.namespace_name = "weft";
  o.accelerators = {KubeAccelerator{.kind = "cpu",
                                    .slots = 2,
                                    .usd_per_hour = 0,
                                    .resource = "",
                                    .cpu_millis_per_slot = 100,
                                    .memory_mib_per_slot = 0,
                                    .node_selector = {}}};
  o.retry_delay_s = 0.05;
  o.sweep_interval_s = 0.02;
  // Every path: create, a retried Provision that finds both objects (409 -> get), ready, delete,
  // gone.
  auto late = KubernetesProvider::Create(o);
  auto p = KubernetesProvider::Create(o);
  ASSERT_TRUE(p.ok() && late.ok());
  ReplicaSpec s;
  s.id = "r1";
  s.deployment = "demo";
  s.model_path = "/models/m.gguf";
  ASSERT_TRUE((*p)->Provision(s).ok());
  ASSERT_TRUE((*late)->Provision(s).ok());
  late->reset();
  ASSERT_TRUE(WaitUntil([&] {
    auto l = (*p)->List();
    return l.ok() && l->size() == 1 && (*l)[0].phase == ReplicaPhase::kReady;
  }));
  ASSERT_TRUE((*p)->Terminate("r1").ok());
  ASSERT_TRUE(WaitUntil([&] {
    auto l = (*p)->List();
    return l.ok() && l->empty();
  }));
  p->reset();
  EXPECT_EQ((*api)->VerbsUsed(), RoleVerbs())
      << "deploy/kubernetes/control-plane.yaml's Role must grant exactly what the provider uses";
}

}  // namespace
}  // namespace weft::control
