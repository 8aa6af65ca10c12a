// SPDX-License-Identifier: Apache-2.0
// The kubernetes provider against testing/'s fake API server: the shared conformance suite (over
// plain HTTP with a bearer token, and over HTTPS with a private CA), then failure cases.
#include "control/providers/kubernetes/kubernetes_provider.h"

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "base/http/test_cert.h"
#include "control/providers/provider_conformance.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/fake_kube_apiserver.h"

namespace weft::control {
namespace {

using testing::FakeKubeApiServer;
using testing::FakeKubeApiServerOptions;
using ::testing::HasSubstr;

constexpr char kNs[] = "weft";
constexpr char kToken[] = "t0ken";

ReplicaSpec BaseSpec() {
  ReplicaSpec s;
  s.model_path = "/models/stories260K.gguf";
  s.deployment = "demo";
  return s;
}

KubernetesProviderOptions Options(const FakeKubeApiServer& api, int slots = 2) {
  KubernetesProviderOptions o;
  o.cluster.server = api.url();
  o.cluster.token = kToken;
  o.engine.namespace_name = kNs;
  o.accelerators = {KubeAccelerator{.kind = "cpu",
                                    .slots = slots,
                                    .usd_per_hour = 0.25,
                                    .resource = "",
                                    .cpu_millis_per_slot = 1000,
                                    .memory_mib_per_slot = 1024,
                                    .node_selector = {}}};
  o.region = "test-cluster";
  o.request_timeout_ms = 2000;
  o.watch_timeout_s = 30;
  o.retry_delay_s = 0.05;
  o.sweep_interval_s = 0.02;
  o.ready_timeout_s = 30;
  return o;
}

absl::StatusOr<ConformanceSubject> MakeSubject(
    FakeKubeApiServerOptions api_options, std::function<void(KubernetesProviderOptions&)> tweak) {
  api_options.token = kToken;
  absl::StatusOr<std::unique_ptr<FakeKubeApiServer>> api = FakeKubeApiServer::Start(api_options);
  if (!api.ok()) return api.status();
  std::shared_ptr<FakeKubeApiServer> fake = *std::move(api);
  KubernetesProviderOptions o = Options(*fake);
  if (tweak) tweak(o);
  absl::StatusOr<std::unique_ptr<KubernetesProvider>> p = KubernetesProvider::Create(o);
  if (!p.ok()) return p.status();
  KubernetesProvider* raw = p->get();
  ConformanceSubject s;
  s.provider = *std::move(p);
  s.spec = BaseSpec();
  s.slots = 2;
  // A dead replica: its engine container crashes and the kubelet keeps restarting it.
  s.kill = [raw, fake](const ReplicaId& id) -> absl::Status {
    std::vector<std::string> pods = raw->PodsOf(id);
    if (pods.empty()) return absl::NotFoundError("no pod for " + id);
    return fake->CrashPod(kNs, pods[0], 1);
  };
  s.timeout_s = 10;
  s.cleanup = [fake]() mutable { fake.reset(); };
  return s;
}

absl::StatusOr<ConformanceSubject> MakeHttpSubject() { return MakeSubject({}, nullptr); }

// HTTPS with the server's certificate as the kubeconfig's certificate-authority, Background
// deletion, and a NodePort endpoint template.
absl::StatusOr<ConformanceSubject> MakeHttpsSubject() {
  http::TestCert cert = http::MakeTestCert();
  if (cert.cert_pem.empty()) return absl::InternalError("MakeTestCert failed");
  FakeKubeApiServerOptions api;
  api.tls = http::TlsOptions{.cert_pem = cert.cert_pem, .key_pem = cert.key_pem};
  return MakeSubject(api, [cert](KubernetesProviderOptions& o) {
    o.cluster.ca_pem = cert.cert_pem;
    o.propagation_policy = "Background";
    o.engine.service_type = "NodePort";
    o.endpoint_template = "http://node.example:{node_port}";
  });
}

INSTANTIATE_TEST_SUITE_P(Kubernetes, ProviderConformanceTest,
                         ::testing::Values(ProviderConformanceCase{"http_token", &MakeHttpSubject},
                                           ProviderConformanceCase{"https_ca_nodeport",
                                                                   &MakeHttpsSubject}),
                         ConformanceCaseName);

// --- failure handling ---------------------------------------------------------------------------

class KubernetesProviderTest : public ::testing::Test {
 protected:
  void StartApi(FakeKubeApiServerOptions o = {}) {
    o.token = kToken;
    auto api = FakeKubeApiServer::Start(o);
    ASSERT_TRUE(api.ok()) << api.status();
    api_ = *std::move(api);
  }
  std::unique_ptr<KubernetesProvider> MakeProvider(
      std::function<void(KubernetesProviderOptions&)> tweak = nullptr) {
    KubernetesProviderOptions o = Options(*api_);
    if (tweak) tweak(o);
    auto p = KubernetesProvider::Create(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }
  ReplicaSpec Spec(const std::string& id) {
    ReplicaSpec s = BaseSpec();
    s.id = id;
    return s;
  }
  // Polls List() until `done` holds for `id`'s status (nullopt = not listed), up to 10 s.
  std::optional<ReplicaStatus> WaitFor(
      Provider& p, const ReplicaId& id,
      const std::function<bool(const std::optional<ReplicaStatus>&)>& done) {
    std::optional<ReplicaStatus> last;
    for (int i = 0; i < 1000; ++i) {
      last.reset();
      auto list = p.List();
      EXPECT_TRUE(list.ok());
      for (const ReplicaStatus& s : *list) {
        if (s.id == id) last = s;
      }
      if (done(last)) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return last;
  }
  std::optional<ReplicaStatus> WaitPhase(Provider& p, const ReplicaId& id, ReplicaPhase phase) {
    return WaitFor(p, id, [phase](const auto& s) { return s && s->phase == phase; });
  }
  bool WaitUntil(const std::function<bool()>& pred) {
    for (int i = 0; i < 1000; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::unique_ptr<FakeKubeApiServer> api_;
};

TEST_F(KubernetesProviderTest, CreatesTheDeploymentAndServiceItDescribes) {
  StartApi();
  auto p = MakeProvider();
  ReplicaSpec s = Spec("r1");
  s.adapters = {{"sql", "/models/sql.gguf"}};
  s.engine.ctx = 512;
  auto st = p->Provision(s);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->endpoint, "http://weft-r1.weft.svc:8080");
  std::optional<nlohmann::json> d = api_->Get("deployments", kNs, "weft-r1");
  ASSERT_TRUE(d.has_value());
  const nlohmann::json& c = (*d)["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "ghcr.io/weft/weft:latest");
  EXPECT_EQ(c["args"], (nlohmann::json{"engine", "--model", "/models/stories260K.gguf", "--host",
                                       "0.0.0.0", "--port", "8080", "--name", "demo", "--ctx",
                                       "512", "--adapter", "sql=/models/sql.gguf"}));
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/health");
  EXPECT_EQ(c["resources"]["requests"]["cpu"], "1000m");
  EXPECT_EQ((*d)["metadata"]["labels"]["weft.dev/replica"], "r1");
  EXPECT_EQ((*d)["metadata"]["labels"]["weft.dev/deployment"], "demo");
  std::optional<nlohmann::json> svc = api_->Get("services", kNs, "weft-r1");
  ASSERT_TRUE(svc.has_value());
  EXPECT_EQ((*svc)["spec"]["type"], "ClusterIP");
  EXPECT_EQ((*svc)["spec"]["selector"], (*d)["spec"]["selector"]["matchLabels"]);
}

TEST_F(KubernetesProviderTest, CrashingPodBecomesFailedWithTheReason) {
  StartApi();
  auto p = MakeProvider();
  ASSERT_TRUE(p->Provision(Spec("r1")).ok());
  ASSERT_TRUE(WaitPhase(*p, "r1", ReplicaPhase::kReady).has_value());
  std::vector<std::string> pods = p->PodsOf("r1");
  ASSERT_EQ(pods.size(), 1u);
  ASSERT_TRUE(api_->CrashPod(kNs, pods[0], 137).ok());
  auto failed = WaitPhase(*p, "r1", ReplicaPhase::kFailed);
  ASSERT_TRUE(failed.has_value());
  EXPECT_THAT(failed->failure_reason, HasSubstr("CrashLoopBackOff"));
  EXPECT_THAT(failed->failure_reason, HasSubstr("exit code 137"));
  EXPECT_THAT(failed->failure_reason, HasSubstr(pods[0]));
}

TEST_F(KubernetesProviderTest, ImagePullFailureBecomesFailed) {
  StartApi();
  api_->FailImagePulls("registry.example/weft:missing");
  auto p = MakeProvider(
      [](KubernetesProviderOptions& o) { o.engine.image = "registry.example/weft:missing"; });
  ASSERT_TRUE(p->Provision(Spec("r1")).ok());
  auto failed = WaitPhase(*p, "r1", ReplicaPhase::kFailed);
  ASSERT_TRUE(failed.has_value());
  EXPECT_THAT(failed->failure_reason, HasSubstr("ImagePullBackOff"));
}

TEST_F(KubernetesProviderTest, NotReadyInTimeFails) {
  FakeKubeApiServerOptions o;
  o.pod_start_delay_ms = 60'000;  // the container never gets going within the test
  StartApi(o);
  auto p = MakeProvider([](KubernetesProviderOptions& po) { po.ready_timeout_s = 0.3; });
  ASSERT_TRUE(p->Provision(Spec("slow")).ok());
  auto failed = WaitPhase(*p, "slow", ReplicaPhase::kFailed);
  ASSERT_TRUE(failed.has_value());
  EXPECT_THAT(failed->failure_reason, HasSubstr("not ready within 0.3 s"));
  EXPECT_THAT(failed->failure_reason, HasSubstr("ContainerCreating"));
}

TEST_F(KubernetesProviderTest, ProvisionAfterALostAnswerTakesOverItsObjects) {
  StartApi();
  auto second = MakeProvider();  // started before the replica exists: adopts nothing
  auto first = MakeProvider();
  auto made = first->Provision(Spec("r1"));
  ASSERT_TRUE(made.ok());
  // The same id again from a provider that never saw the answer: 409 on both objects, both ours.
  auto again = second->Provision(Spec("r1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->endpoint, made->endpoint);
  EXPECT_EQ(again->started_ms, made->started_ms);
  EXPECT_TRUE(WaitPhase(*second, "r1", ReplicaPhase::kReady).has_value());
  EXPECT_EQ(api_->Names("deployments", kNs).size(), 1u);
}

TEST_F(KubernetesProviderTest, DeletedPodIsReplacedAndTheReplicaRecovers) {
  StartApi();
  auto p = MakeProvider();
  ASSERT_TRUE(p->Provision(Spec("r1")).ok());
  ASSERT_TRUE(WaitPhase(*p, "r1", ReplicaPhase::kReady).has_value());
  const std::string first = p->PodsOf("r1").at(0);
  ASSERT_TRUE(api_->DeletePod(kNs, first).ok());
  ASSERT_TRUE(WaitUntil([&] {
    auto pods = p->PodsOf("r1");
    return pods.size() == 1 && pods[0] != first;
  }));
  auto ready = WaitPhase(*p, "r1", ReplicaPhase::kReady);
  ASSERT_TRUE(ready.has_value());
  EXPECT_TRUE(ready->failure_reason.empty());
}

// The watch is renewed every second; compacting the history makes the renewal's resourceVersion
// too old: 410 Gone (as an ERROR event, or as an HTTP status), a fresh list, and a new watch that
// still sees what happens next.
class WatchGoneTest : public KubernetesProviderTest, public ::testing::WithParamInterface<bool> {};

TEST_P(WatchGoneTest, RelistsAndKeepsWatching) {
  FakeKubeApiServerOptions o;
  o.gone_as_http_status = GetParam();
  StartApi(o);
  auto p = MakeProvider([](KubernetesProviderOptions& po) { po.watch_timeout_s = 1; });
  ASSERT_TRUE(p->Provision(Spec("r1")).ok());
  ASSERT_TRUE(WaitPhase(*p, "r1", ReplicaPhase::kReady).has_value());
  const int relists = p->relists();
  api_->CompactHistory();
  ASSERT_TRUE(WaitUntil([&] { return api_->gone_answers() > 0 && p->relists() > relists; }))
      << "gone answers " << api_->gone_answers() << ", relists " << p->relists();
  // Changes after the relist still arrive through the new watch.
  ASSERT_TRUE(api_->CrashPod(kNs, p->PodsOf("r1").at(0)).ok());
  auto failed = WaitPhase(*p, "r1", ReplicaPhase::kFailed);
  ASSERT_TRUE(failed.has_value());
  EXPECT_TRUE(p->Health().ok) << p->Health().reason;
}

INSTANTIATE_TEST_SUITE_P(Kubernetes, WatchGoneTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "HttpStatus" : "ErrorEvent"; });

TEST_F(KubernetesProviderTest, ApiServerDownMeansDegradedAndUnavailable) {
  StartApi();
  auto p = MakeProvider();
  ASSERT_TRUE(p->Provision(Spec("r1")).ok());
  ASSERT_TRUE(WaitPhase(*p, "r1", ReplicaPhase::kReady).has_value());
  EXPECT_TRUE(p->Health().ok);
  api_->StopAnswering();
  ASSERT_TRUE(WaitUntil([&] { return !p->Health().ok; }));
  EXPECT_THAT(p->Health().reason, HasSubstr(api_->url()));
  absl::StatusOr<ReplicaStatus> r = p->Provision(Spec("r2"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(p->Capacity().status().code(), absl::StatusCode::kUnavailable);
  // What it knew stays listed; a refused Provision reserved nothing.
  auto list = p->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, "r1");

  ASSERT_TRUE(api_->ResumeAnswering().ok());
  ASSERT_TRUE(WaitUntil([&] { return p->Health().ok; })) << p->Health().reason;
  auto c = p->Capacity();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->Find("cpu")->free, 1);
  EXPECT_TRUE(p->Provision(Spec("r2")).ok());
}

TEST_F(KubernetesProviderTest, DownAtStartIsDegradedUntilItAnswers) {
  StartApi();
  api_->StopAnswering();
  auto p = MakeProvider();
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->Health().ok);
  ASSERT_TRUE(api_->ResumeAnswering().ok());
  EXPECT_TRUE(WaitUntil([&] { return p->Health().ok; })) << p->Health().reason;
}

TEST_F(KubernetesProviderTest, UnauthorizedAndForbiddenAreDegradedWithTheReason) {
  StartApi();
  auto bad = MakeProvider([](KubernetesProviderOptions& o) { o.cluster.token = "wrong"; });
  EXPECT_FALSE(bad->Health().ok);
  EXPECT_THAT(bad->Health().reason, HasSubstr("401"));
  absl::StatusOr<ReplicaStatus> r = bad->Provision(Spec("r1"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();

  auto p = MakeProvider();
  EXPECT_TRUE(p->Health().ok);
  api_->SetForbidden(true);
  r = p->Provision(Spec("r1"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  EXPECT_FALSE(p->Health().ok);
  EXPECT_THAT(p->Health().reason, HasSubstr("forbidden"));
  api_->SetForbidden(false);
  EXPECT_TRUE(p->Provision(Spec("r1")).ok());
}

TEST_F(KubernetesProviderTest, ARestartedProviderAdoptsItsReplicas) {
  StartApi();
  ReplicaStatus before;
  {
    auto first = MakeProvider();
    auto s = first->Provision(Spec("keep"));
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(WaitPhase(*first, "keep", ReplicaPhase::kReady).has_value());
    before = *s;
  }  // a provider going away leaves its replicas running
  auto second = MakeProvider();
  auto ready = WaitPhase(*second, "keep", ReplicaPhase::kReady);
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->endpoint, before.endpoint);
  EXPECT_EQ(ready->started_ms, before.started_ms);
  EXPECT_EQ(ready->deployment, "demo");
  EXPECT_EQ(second->Capacity()->Find("cpu")->free, 1);
  auto again = second->Provision(Spec("keep"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->started_ms, before.started_ms);
  ASSERT_TRUE(second->Terminate("keep").ok());
  EXPECT_FALSE(WaitFor(*second, "keep", [](const auto& s) { return !s.has_value(); }).has_value());
  EXPECT_TRUE(api_->Names("deployments", kNs).empty());
  EXPECT_TRUE(api_->Names("services", kNs).empty());
  EXPECT_TRUE(api_->Names("pods", kNs).empty());
}

}  // namespace
}  // namespace weft::control
