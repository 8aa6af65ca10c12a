// SPDX-License-Identifier: Apache-2.0
// Model sources end to end with a real `weft control` process: a deployment whose hf:// model
// cannot be reached (HF_ENDPOINT is a closed loopback port; nothing leaves 127.0.0.1) is retried a
// few times and then Failed, with the reason shown by `weft get deployments` and `weft describe`;
// deploying the unchanged spec again retries it.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/http_client.h"
#include "testing/subprocess.h"
#include "testing/test_data.h"

namespace weft {
namespace {

using nlohmann::json;
using weft::testing::HttpClient;
using weft::testing::Subprocess;

class ControlModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = weft::testing::MakeTempDir("weft-control-model-test");
    dead_port_ = weft::testing::FreeLoopbackPort();  // nothing listens there
    setenv("HF_ENDPOINT", absl::StrCat("http://127.0.0.1:", dead_port_).c_str(), 1);
    control_port_ = weft::testing::FreeLoopbackPort();
    control_url_ = absl::StrCat("http://127.0.0.1:", control_port_);
    auto p = Subprocess::Start({WEFT_BINARY, "control", "--data", dir_ + "/control", "--port",
                                std::to_string(control_port_), "--tick", "0.2"},
                               dir_ + "/control.log");
    unsetenv("HF_ENDPOINT");
    ASSERT_TRUE(p.ok()) << p.status();
    control_ = std::make_unique<Subprocess>(*std::move(p));
    ASSERT_TRUE(weft::testing::WaitForHttp200(control_port_, "/health", 30).ok());
  }
  void TearDown() override {
    if (control_) {
      control_->Signal(SIGTERM);
      control_->Wait(20);
    }
  }

  int Cli(std::vector<std::string> args, std::string* output) {
    std::vector<std::string> argv = {WEFT_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--control", control_url_});
    const std::string log = absl::StrCat(dir_, "/cli", ++cli_runs_, ".log");
    auto p = Subprocess::Start(argv, log);
    if (!p.ok()) return -1;
    std::optional<int> st = p->Wait(30);
    std::ifstream f(log);
    *output = std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
  }

  json Get(const std::string& path) {
    auto c = HttpClient::Connect("127.0.0.1", control_port_, 5);
    if (!c.ok()) return json();
    auto r = (*c)->Request("GET", path);
    if (!r.ok() || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }
  std::string Status(const std::string& name) {
    json d = Get("/v1/deployments/" + name);
    return d.is_object() && d.contains("status") ? d["status"].get<std::string>() : "";
  }

  std::string dir_;
  uint16_t dead_port_ = 0;
  uint16_t control_port_ = 0;
  std::string control_url_;
  std::unique_ptr<Subprocess> control_;
  int cli_runs_ = 0;
};

TEST_F(ControlModelTest, UnreachableHfModelFailsTheDeploymentWithTheReason) {
  const std::string spec = dir_ + "/spec.yaml";
  std::ofstream(spec) << "name: remote\nmodel: hf://ggml-org/models/tinyllamas/stories260K.gguf\n"
                         "replicas: {min: 1, max: 1}\n";
  std::string out;
  ASSERT_EQ(Cli({"deploy", "-f", spec}, &out), 0) << out;

  const std::string want = absl::StrCat(
      "Failed: model hf://ggml-org/models/tinyllamas/stories260K.gguf: cannot reach 127.0.0.1:",
      dead_port_);
  const auto start = std::chrono::steady_clock::now();
  std::string status;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(40)) {
    status = Status("remote");
    if (absl::StartsWith(status, "Failed")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double took_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("deployment Failed after %.1f s: %s\n", took_s, status.c_str());
  ASSERT_TRUE(absl::StartsWith(status, want)) << status;
  EXPECT_TRUE(absl::StrContains(status, "gave up after 3 attempts")) << status;

  json replicas = Get("/v1/replicas?deployment=remote");
  ASSERT_TRUE(replicas.is_object());
  EXPECT_TRUE(replicas["replicas"].empty()) << replicas.dump();

  ASSERT_EQ(Cli({"get", "deployments"}, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, want)) << out;
  ASSERT_EQ(Cli({"describe", "deployment", "remote"}, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "Status:      " + want)) << out;
  EXPECT_TRUE(absl::StrContains(out, "model fetch failed (attempt 3 of 3)")) << out;

  // Nothing more is tried...
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_TRUE(absl::StartsWith(Status("remote"), want));
  // ...until the spec is deployed again.
  ASSERT_EQ(Cli({"deploy", "-f", spec}, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "retrying")) << out;
  ASSERT_EQ(Cli({"describe", "deployment", "remote"}, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "retry requested")) << out;
  const auto again = std::chrono::steady_clock::now();
  bool retried = false;
  while (!retried && std::chrono::steady_clock::now() - again < std::chrono::seconds(10)) {
    ASSERT_EQ(Cli({"describe", "deployment", "remote"}, &out), 0) << out;
    retried = absl::StrContains(out, "retrying model hf://");
    if (!retried) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(retried) << out;
}

}  // namespace
}  // namespace weft
