// SPDX-License-Identifier: Apache-2.0
#include "control/providers/local/local_provider.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "control/providers/provider_conformance.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::control {
namespace {

// Real `weft engine` processes on the stories260K model, two slots.
absl::StatusOr<ConformanceSubject> MakeLocalSubject() {
  const std::string model = weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
  const std::string dir = weft::testing::MakeTempDir("weft-local-provider");
  LocalProviderOptions o;
  o.weft_binary = WEFT_BINARY;
  o.log_dir = dir;
  o.slots = 2;
  o.ready_timeout_s = 30;
  o.terminate_grace_s = 5;
  o.poll_interval_s = 0.05;
  absl::StatusOr<std::unique_ptr<LocalProvider>> p = LocalProvider::Create(o);
  if (!p.ok()) return p.status();
  LocalProvider* raw = p->get();
  ConformanceSubject s;
  s.provider = *std::move(p);
  s.spec.model_path = model;
  s.spec.engine.threads = 1;
  s.spec.engine.extra = {"--http-threads", "1"};
  s.slots = 2;
  s.kill = [raw](const ReplicaId& id) {
    std::optional<pid_t> pid = raw->PidOf(id);
    if (!pid) return absl::NotFoundError(id);
    kill(*pid, SIGKILL);
    return absl::OkStatus();
  };
  s.timeout_s = 30;
  s.cleanup = [dir] { std::filesystem::remove_all(dir); };
  return s;
}

INSTANTIATE_TEST_SUITE_P(Local, ProviderConformanceTest,
                         ::testing::Values(ProviderConformanceCase{"local", &MakeLocalSubject}),
                         ConformanceCaseName);

// Local-only behaviour, with small shell scripts standing in for `weft`.
class LocalProviderTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = weft::testing::MakeTempDir("weft-local-provider-unit"); }
  void TearDown() override {
    provider_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A `weft` stand-in running `body` (sh) whatever its arguments.
  std::string Script(const std::string& name, const std::string& body) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    chmod(path.c_str(), 0755);
    return path;
  }
  void Start(const std::string& binary, double ready_timeout_s = 30, double grace_s = 5) {
    LocalProviderOptions o;
    o.weft_binary = binary;
    o.log_dir = dir_ + "/logs";
    o.slots = 2;
    o.ready_timeout_s = ready_timeout_s;
    o.terminate_grace_s = grace_s;
    o.poll_interval_s = 0.02;
    auto p = LocalProvider::Create(o);
    ASSERT_TRUE(p.ok()) << p.status();
    provider_ = *std::move(p);
  }
  ReplicaSpec Spec(const std::string& id) {
    ReplicaSpec s;
    s.id = id;
    s.deployment = "demo";
    s.model_path = "/nonexistent/model.gguf";
    return s;
  }
  // Polls List() until `id` satisfies `done` or 10 s pass.
  std::optional<ReplicaStatus> WaitFor(
      const ReplicaId& id, const std::function<bool(const std::optional<ReplicaStatus>&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      std::optional<ReplicaStatus> found;
      auto list = provider_->List();
      EXPECT_TRUE(list.ok());
      for (const ReplicaStatus& s : *list) {
        if (s.id == id) found = s;
      }
      if (done(found) || std::chrono::steady_clock::now() > deadline) return found;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  static bool Failed(const std::optional<ReplicaStatus>& s) {
    return s && s->phase == ReplicaPhase::kFailed;
  }

  std::string dir_;
  std::unique_ptr<LocalProvider> provider_;
};

TEST_F(LocalProviderTest, EngineArgvCarriesTheSpec) {
  LocalProviderOptions o;
  o.weft_binary = "/bin/weft";
  ReplicaSpec s = Spec("r1");
  s.adapters = {{"sql", "/a/sql.gguf"}, {"chat", "/a/chat.gguf"}};
  s.engine.threads = 4;
  s.engine.ctx = 2048;
  s.engine.extra = {"--kv-mem", "256"};
  EXPECT_EQ(LocalProvider::EngineArgv(o, s, 4321),
            (std::vector<std::string>{"/bin/weft",
                                      "engine",
                                      "--model",
                                      "/nonexistent/model.gguf",
                                      "--host",
                                      "127.0.0.1",
                                      "--port",
                                      "4321",
                                      "--name",
                                      "demo",
                                      "--exit-with-parent",
                                      std::to_string(getpid()),
                                      "--threads",
                                      "4",
                                      "--ctx",
                                      "2048",
                                      "--adapter",
                                      "chat=/a/chat.gguf",
                                      "--adapter",
                                      "sql=/a/sql.gguf",
                                      "--kv-mem",
                                      "256"}));
}

TEST_F(LocalProviderTest, MissingBinaryIsNotFound) {
  LocalProviderOptions o;
  o.weft_binary = dir_ + "/no-such-weft";
  o.log_dir = dir_;
  EXPECT_EQ(LocalProvider::Create(o).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LocalProviderTest, ExitIsFailedWithStatusAndLastLogLine) {
  Start(Script("exits", "echo 'loading model'\necho 'error: no such model file' >&2\nexit 3"));
  ASSERT_TRUE(provider_->Provision(Spec("r1")).ok());
  std::optional<ReplicaStatus> s = WaitFor("r1", Failed);
  ASSERT_TRUE(Failed(s));
  EXPECT_TRUE(absl::StrContains(s->failure_reason, "exited with status 3")) << s->failure_reason;
  EXPECT_TRUE(absl::StrContains(s->failure_reason, "error: no such model file"))
      << s->failure_reason;
  // The engine log is where it says.
  std::ifstream log(dir_ + "/logs/r1.log");
  std::string first;
  std::getline(log, first);
  EXPECT_EQ(first, "loading model");
  EXPECT_EQ(provider_->Capacity()->accelerators[0].free, 1);  // held until terminated
  ASSERT_TRUE(provider_->Terminate("r1").ok());
  EXPECT_FALSE(WaitFor("r1", [](const auto& s) { return !s.has_value(); }).has_value());
  EXPECT_EQ(provider_->Capacity()->accelerators[0].free, 2);
}

TEST_F(LocalProviderTest, NeverHealthyFailsAfterTheReadyTimeoutAndIsKilled) {
  Start(Script("silent", "exec sleep 30"), /*ready_timeout_s=*/0.3);
  ASSERT_TRUE(provider_->Provision(Spec("r1")).ok());
  const pid_t pid = *provider_->PidOf("r1");
  std::optional<ReplicaStatus> s = WaitFor("r1", Failed);
  ASSERT_TRUE(Failed(s));
  EXPECT_TRUE(absl::StrContains(s->failure_reason, "not healthy within")) << s->failure_reason;
  // The stuck process is killed and reaped (PidOf clears once reaped).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (provider_->PidOf("r1").has_value() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(provider_->PidOf("r1").has_value());
  EXPECT_NE(kill(pid, 0), 0);                  // gone
  EXPECT_TRUE(Failed(WaitFor("r1", Failed)));  // still failed with the first reason
}

TEST_F(LocalProviderTest, TerminateEscalatesToSigkillAfterTheGracePeriod) {
  Start(Script("stubborn", "trap '' TERM\nexec sleep 30"), 30, /*grace_s=*/0.3);
  ASSERT_TRUE(provider_->Provision(Spec("r1")).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the trap be set
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(provider_->Terminate("r1").ok());
  EXPECT_EQ(WaitFor("r1", [](const auto&) { return true; })->phase, ReplicaPhase::kDraining);
  EXPECT_FALSE(WaitFor("r1", [](const auto& s) { return !s.has_value(); }).has_value());
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(took, 0.25);
  EXPECT_LT(took, 5);
}

TEST_F(LocalProviderTest, DestructorStopsEveryEngine) {
  Start(Script("sleeper", "exec sleep 30"), 30, /*grace_s=*/1);
  ASSERT_TRUE(provider_->Provision(Spec("r1")).ok());
  ASSERT_TRUE(provider_->Provision(Spec("r2")).ok());
  const pid_t p1 = *provider_->PidOf("r1");
  const pid_t p2 = *provider_->PidOf("r2");
  provider_.reset();
  EXPECT_NE(kill(p1, 0), 0);
  EXPECT_NE(kill(p2, 0), 0);
}

TEST_F(LocalProviderTest, IdsThatAreNotFileNamesAreRefused) {
  Start(Script("sleeper", "exec sleep 30"));
  EXPECT_EQ(provider_->Provision(Spec("../evil")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(provider_->Provision(Spec(".hidden")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft::control
