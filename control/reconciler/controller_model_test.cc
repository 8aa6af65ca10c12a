// SPDX-License-Identifier: Apache-2.0
// The control loop and model sources (FakeModelResolver, FakeProvider, simulated clock): replicas
// wait for the model and get its local path; a model that cannot be fetched is retried a bounded
// number of times with backoff, then the deployment is Failed with the reason and nothing more is
// tried; a new generation, or an overwritten status (an unchanged `weft deploy`), tries again.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "control/models/fake/fake_model_resolver.h"
#include "control/providers/fake/fake_provider.h"
#include "control/reconciler/controller.h"
#include "control/store/memory_control_store.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

constexpr char kUri[] = "hf://org/repo/model.gguf";

// Records the model paths it is asked to provision, and delegates to a FakeProvider.
class RecordingProvider : public Provider {
 public:
  explicit RecordingProvider(Provider* inner) : inner_(inner) {}
  absl::StatusOr<ProviderCapacity> Capacity() override { return inner_->Capacity(); }
  absl::StatusOr<ReplicaStatus> Provision(const ReplicaSpec& spec) override {
    model_paths.push_back(spec.model_path);
    return inner_->Provision(spec);
  }
  absl::Status Terminate(const ReplicaId& id) override { return inner_->Terminate(id); }
  absl::StatusOr<std::vector<ReplicaStatus>> List() override { return inner_->List(); }
  ProviderHealth Health() override { return inner_->Health(); }

  std::vector<std::string> model_paths;

 private:
  Provider* inner_;
};

class ControllerModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeProviderOptions o;
    o.slots = 4;
    o.provision_delay_ms = 500;
    o.now_ms = [this] { return now_.load(); };
    fake_ = std::make_unique<FakeProvider>(o);
    provider_ = std::make_unique<RecordingProvider>(fake_.get());
    ControllerOptions co;
    co.now_ms = [this] { return now_.load(); };
    co.fetch_load = [](const std::string&) { return std::optional<api::LoadReport>(); };
    co.models = &models_;
    co.model_retry = {.attempts = 3, .backoff_ms = 2000, .max_backoff_ms = 60000};
    controller_ = std::make_unique<Controller>(
        &store_, std::vector<ProviderEntry>{{"p", "fake", provider_.get()}}, co);
    ASSERT_TRUE(controller_->Init().ok());
  }

  void Deploy(int max_replicas = 2) {
    DeploymentRecord d;
    if (auto e = store_.Get<DeploymentRecord>("chat"); e.ok() && e->has_value()) d = **e;
    d.name = "chat";
    d.spec = absl::StrCat("name: chat\nmodel: ", kUri, "\nreplicas: {min: 1, max: ", max_replicas,
                          "}\n");
    d.version = kAnyVersion;
    ASSERT_TRUE(store_.Put<DeploymentRecord>(d).ok());
  }
  void Tick(int n = 1) {
    for (int i = 0; i < n; ++i) {
      now_ += 500;
      ASSERT_TRUE(controller_->Tick().ok());
    }
  }
  std::string Status() {
    auto d = store_.Get<DeploymentRecord>("chat");
    return d.ok() && d->has_value() ? (*d)->status : "<none>";
  }
  size_t Replicas() {
    auto rs = store_.List<ReplicaRecord>();
    return rs.ok() ? rs->size() : 999;
  }

  std::atomic<int64_t> now_{1'000'000};
  MemoryControlStore store_;
  FakeModelResolver models_;
  std::unique_ptr<FakeProvider> fake_;
  std::unique_ptr<RecordingProvider> provider_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerModelTest, ReplicasWaitForTheModelAndGetItsLocalPath) {
  models_.SetReady(kUri, "/cache/hf/org/repo/main/model.gguf");
  models_.SetFetchCalls(3);
  Deploy();
  Tick();
  EXPECT_TRUE(absl::StartsWith(Status(), "Pending: fetching model hf://org/repo/model.gguf"))
      << Status();
  EXPECT_EQ(Replicas(), 0u);
  Tick(6);
  ASSERT_EQ(provider_->model_paths.size(), 1u);
  EXPECT_EQ(provider_->model_paths[0], "/cache/hf/org/repo/main/model.gguf");
  EXPECT_EQ(Status(), "1/1 ready");
  EXPECT_EQ(models_.fetches(kUri), 1);
}

TEST_F(ControllerModelTest, UnreachableModelFailsTheDeploymentAfterBoundedRetries) {
  const std::string reason = "model hf://org/repo/model.gguf: cannot reach huggingface.co: refused";
  models_.SetFailed(kUri, reason);
  Deploy();
  Tick(2);
  EXPECT_TRUE(absl::StartsWith(Status(), "Retrying: " + reason)) << Status();
  EXPECT_TRUE(absl::StrContains(Status(), "attempt 1 of 3 failed")) << Status();
  // Backoff: 2 s, then 4 s; a minute later it has given up after exactly 3 fetches.
  Tick(120);
  EXPECT_EQ(models_.fetches(kUri), 3);
  EXPECT_TRUE(absl::StartsWith(Status(), "Failed: " + reason)) << Status();
  EXPECT_TRUE(absl::StrContains(Status(), "gave up after 3 attempts")) << Status();
  EXPECT_EQ(Replicas(), 0u) << "no replica is started for a model that is not there";
  EXPECT_TRUE(provider_->model_paths.empty());
  auto events = store_.ListEvents({.object = "deployment/chat", .after_id = 0, .limit = 100});
  ASSERT_TRUE(events.ok());
  int failed_attempts = 0;
  for (const EventRecord& e : *events) {
    if (absl::StartsWith(e.message, "model fetch failed")) failed_attempts++;
  }
  EXPECT_EQ(failed_attempts, 3);
  Tick(120);
  EXPECT_EQ(models_.fetches(kUri), 3) << "not retried silently";

  // A new generation of the spec tries again, and this time the model is there.
  models_.SetReady(kUri, "/cache/model.gguf");
  Deploy(/*max_replicas=*/3);
  Tick(6);
  EXPECT_EQ(models_.fetches(kUri), 4);
  ASSERT_EQ(provider_->model_paths.size(), 1u);
  EXPECT_EQ(Status(), "1/1 ready");
}

TEST_F(ControllerModelTest, AnOverwrittenFailedStatusRequestsARetry) {
  models_.SetFailed(kUri, "model hf://org/repo/model.gguf: HTTP 404 from huggingface.co");
  Deploy();
  Tick(40);
  ASSERT_TRUE(absl::StartsWith(Status(), "Failed: ")) << Status();
  EXPECT_EQ(models_.fetches(kUri), 3);
  Tick(4);
  EXPECT_EQ(models_.fetches(kUri), 3);
  // What the control API does when the unchanged spec is deployed again.
  auto d = store_.Get<DeploymentRecord>("chat");
  ASSERT_TRUE(d.ok() && d->has_value());
  DeploymentRecord rec = **d;
  rec.status = "Retrying: requested";
  ASSERT_TRUE(store_.Put<DeploymentRecord>(rec).ok());
  Tick(2);
  EXPECT_EQ(models_.fetches(kUri), 4);
}

}  // namespace
}  // namespace weft::control
