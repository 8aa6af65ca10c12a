// SPDX-License-Identifier: Apache-2.0
// The control plane end to end, with real processes on loopback: `weft control` (SQLite, the local
// provider) runs a deployment of stories260K with 2 replicas as `weft engine` children; `weft
// gateway` follows control's route watch. Requests through the gateway succeed; a SIGKILLed engine
// is replaced and the replacement takes traffic within 30 s; `weft delete` drains every replica.
// The CLI verbs (deploy, get, describe, scale, delete) are run as the user would.
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/http_client.h"
#include "testing/subprocess.h"
#include "testing/tenant_keys.h"
#include "testing/test_data.h"

namespace weft {
namespace {

using nlohmann::json;
using weft::testing::HttpClient;
using weft::testing::Subprocess;

constexpr char kDeployment[] = "stories";

// The pid of the process whose command line has "--port <port>" (an engine), or -1.
pid_t PidListeningAs(uint16_t port) {
  DIR* d = opendir("/proc");
  if (d == nullptr) return -1;
  pid_t found = -1;
  while (dirent* e = readdir(d)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream f(absl::StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::string> args;
    std::stringstream ss(all);
    for (std::string a; std::getline(ss, a, '\0');) args.push_back(a);
    bool engine = false;
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "engine") engine = true;
      if (engine && args[i] == "--port" && args[i + 1] == std::to_string(port)) found = pid;
    }
  }
  closedir(d);
  return found;
}

uint16_t PortOf(const std::string& url) {
  return static_cast<uint16_t>(std::atoi(url.substr(url.rfind(':') + 1).c_str()));
}

class ControlIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
    dir_ = weft::testing::MakeTempDir("weft-control-test");
    control_port_ = weft::testing::FreeLoopbackPort();
    control_url_ = absl::StrCat("http://127.0.0.1:", control_port_);
    auto p =
        Subprocess::Start({WEFT_BINARY, "control", "--data", dir_ + "/control", "--port",
                           std::to_string(control_port_), "--local-slots", "3", "--tick", "0.2"},
                          dir_ + "/control.log");
    ASSERT_TRUE(p.ok()) << p.status();
    control_ = std::make_unique<Subprocess>(*std::move(p));
    ASSERT_TRUE(weft::testing::WaitForHttp200(control_port_, "/health", 30).ok());
  }
  void TearDown() override {
    if (gateway_) gateway_->Signal(SIGTERM);
    if (control_) {
      control_->Signal(SIGTERM);
      control_->Wait(20);
    }
  }

  // Runs `weft <args> --control URL`; its exit status (-1 when it did not exit) and output.
  int Cli(std::vector<std::string> args, std::string* output = nullptr) {
    std::vector<std::string> argv = {WEFT_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--control", control_url_});
    const std::string log = absl::StrCat(dir_, "/cli", ++cli_runs_, ".log");
    auto p = Subprocess::Start(argv, log);
    if (!p.ok()) return -1;
    std::optional<int> st = p->Wait(30);
    if (output != nullptr) {
      std::ifstream f(log);
      *output = std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    }
    if (!st || !WIFEXITED(*st)) return -1;
    return WEXITSTATUS(*st);
  }

  json Get(const std::string& path) {
    auto c = HttpClient::Connect("127.0.0.1", control_port_, 5);
    if (!c.ok()) return json();
    auto r = (*c)->Request("GET", path);
    if (!r.ok() || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }

  // Ready replicas of the deployment: id -> endpoint.
  std::map<std::string, std::string> Ready() {
    std::map<std::string, std::string> out;
    json j = Get(absl::StrCat("/v1/replicas?deployment=", kDeployment));
    if (!j.is_object()) return out;
    for (const auto& r : j["replicas"]) {
      if (r["phase"] == "ready") out[r["id"]] = r["endpoint"];
    }
    return out;
  }
  size_t AllReplicas() {
    json j = Get(absl::StrCat("/v1/replicas?deployment=", kDeployment));
    return j.is_object() ? j["replicas"].size() : 999;
  }

  template <typename F>
  bool WaitFor(F done, double timeout_s) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return done();
  }

  void StartGateway() {
    auto key = weft::testing::CreateTenantWithKey(dir_ + "/gw/keys.sqlite", "acme", {kDeployment});
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = *key;
    gateway_port_ = weft::testing::FreeLoopbackPort();
    {
      std::ofstream f(dir_ + "/gateway.yaml");
      f << "listen: 127.0.0.1:" << gateway_port_ << "\nio_threads: 2\n"
        << "data_dir: " << dir_ << "/gw\n"
        << "limits:\n  upstream_connect_timeout_s: 1\n  upstream_first_byte_timeout_s: 5\n"
        << "  retries: 3\n  retry_budget_min_per_s: 100\n"
        << "health:\n  interval_s: 0.2\n  timeout_s: 0.5\n  load_poll_interval_s: 0.2\n"
        << "routes:\n  control_url: " << control_url_ << "\n";
    }
    auto p = Subprocess::Start({WEFT_BINARY, "gateway", "--config", dir_ + "/gateway.yaml"},
                               dir_ + "/gateway.log");
    ASSERT_TRUE(p.ok()) << p.status();
    gateway_ = std::make_unique<Subprocess>(*std::move(p));
    ASSERT_TRUE(weft::testing::WaitForHttp200(gateway_port_, "/health", 30).ok());
  }

  int Complete() {
    auto c = HttpClient::Connect("127.0.0.1", gateway_port_, 5);
    if (!c.ok()) return -1;
    json body = {{"model", kDeployment},
                 {"prompt", "Once upon a time"},
                 {"max_tokens", 8},
                 {"temperature", 0}};
    auto r = (*c)->Request("POST", "/v1/completions", body.dump(),
                           {{"Authorization", "Bearer " + key_}});
    return r.ok() ? r->status : -1;
  }

  std::string model_, dir_, control_url_, key_;
  uint16_t control_port_ = 0, gateway_port_ = 0;
  std::unique_ptr<Subprocess> control_, gateway_;
  int cli_runs_ = 0;
};

TEST_F(ControlIntegrationTest, DeployServeReplaceDelete) {
  {
    std::ofstream f(dir_ + "/spec.yaml");
    f << "name: " << kDeployment << "\nmodel: " << model_
      << "\nreplicas: {min: 2, max: 2}\nengine: {threads: 1}\n";
  }
  std::string out;
  ASSERT_EQ(Cli({"deploy", "-f", dir_ + "/spec.yaml"}, &out), 0) << out;
  EXPECT_NE(out.find("created"), std::string::npos) << out;
  ASSERT_TRUE(WaitFor([&] { return Ready().size() == 2; }, 60)) << Get("/v1/replicas").dump();

  ASSERT_EQ(Cli({"get", "replicas"}, &out), 0);
  EXPECT_NE(out.find("ready"), std::string::npos) << out;
  ASSERT_EQ(Cli({"get", "deployments"}, &out), 0);
  EXPECT_NE(out.find(kDeployment), std::string::npos) << out;
  ASSERT_EQ(Cli({"get", "providers"}, &out), 0);
  EXPECT_NE(out.find("local"), std::string::npos) << out;
  ASSERT_EQ(Cli({"describe", "deployment", kDeployment}, &out), 0);
  EXPECT_NE(out.find("provisioned on local"), std::string::npos) << out;
  EXPECT_EQ(Cli({"describe", "deployment", "nope"}, &out), 1);

  // A bad spec names the field and changes nothing.
  {
    std::ofstream f(dir_ + "/bad.yaml");
    f << "name: " << kDeployment << "\nmodel: " << model_ << "\nreplicas: {min: 3, max: 2}\n";
  }
  EXPECT_EQ(Cli({"deploy", "-f", dir_ + "/bad.yaml"}, &out), 1);
  EXPECT_NE(out.find("replicas.max"), std::string::npos) << out;

  StartGateway();
  ASSERT_TRUE(WaitFor([&] { return Complete() == 200; }, 15));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(Complete(), 200);

  // SIGKILL one engine: a replacement is ready and serving within 30 s.
  const std::map<std::string, std::string> before = Ready();
  ASSERT_EQ(before.size(), 2u);
  const auto victim = before.begin();
  const pid_t pid = PidListeningAs(PortOf(victim->second));
  ASSERT_GT(pid, 0);
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto now = Ready();
        return now.size() == 2 && !now.count(victim->first);
      },
      30))
      << Get("/v1/replicas").dump();
  std::string replacement;
  for (const auto& [id, url] : Ready()) {
    if (!before.count(id)) replacement = id;
  }
  ASSERT_FALSE(replacement.empty());
  // It is in the routes the gateway follows; then the other original replica dies too, and the
  // replacement alone serves.
  ASSERT_TRUE(WaitFor(
      [&] { return Get("/weft/v1/routes").dump().find(replacement) != std::string::npos; }, 5));
  const pid_t other = PidListeningAs(PortOf(std::next(before.begin())->second));
  ASSERT_GT(other, 0);
  ASSERT_EQ(kill(other, SIGKILL), 0);
  EXPECT_TRUE(WaitFor([&] { return Complete() == 200; }, 5));
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, std::chrono::seconds(40));
  json events = Get("/v1/events");
  EXPECT_NE(events.dump().find("failed"), std::string::npos);

  // Scale (in place: no rolling update) and delete: every replica drained, the record removed.
  ASSERT_EQ(Cli({"scale", kDeployment, "--min", "1", "--max", "2"}, &out), 0) << out;
  ASSERT_EQ(Cli({"delete", kDeployment}, &out), 0) << out;
  ASSERT_TRUE(WaitFor(
      [&] { return AllReplicas() == 0 && Get("/v1/deployments")["deployments"].empty(); }, 30))
      << Get("/v1/replicas").dump();
  for (const auto& [id, url] : Ready()) ADD_FAILURE() << id;
  EXPECT_TRUE(WaitFor([&] { return Complete() != 200; }, 5));
}

// `weft up`: control + gateway + a demo deployment; the printed curl line's key works.
TEST(WeftUpTest, PrintsAWorkingCurlLine) {
  weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
  const std::string dir = weft::testing::MakeTempDir("weft-up-test");
  const uint16_t port = weft::testing::FreeLoopbackPort();
  const uint16_t control_port = weft::testing::FreeLoopbackPort();
  auto up =
      Subprocess::Start({WEFT_BINARY, "up", "--data", dir + "/data", "--port", std::to_string(port),
                         "--control-port", std::to_string(control_port)},
                        dir + "/up.log");
  ASSERT_TRUE(up.ok()) << up.status();
  std::string log, key;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream f(dir + "/up.log");
    log = std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const size_t at = log.find("\ncurl ");
    if (at != std::string::npos && log.find('\n', at + 1) != std::string::npos) {
      const size_t b = log.find("Bearer ", at);
      ASSERT_NE(b, std::string::npos) << log;
      key = log.substr(b + 7, log.find('\'', b) - b - 7);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(key.empty()) << log;
  EXPECT_NE(log.find("admin key"), std::string::npos) << log;
  auto c = HttpClient::Connect("127.0.0.1", port, 5);
  ASSERT_TRUE(c.ok());
  json body = {{"model", "demo"}, {"prompt", "Once upon a time"}, {"max_tokens", 8}};
  auto r =
      (*c)->Request("POST", "/v1/completions", body.dump(), {{"Authorization", "Bearer " + key}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200) << r->body;
  up->Signal(SIGTERM);
  std::optional<int> st = up->Wait(40);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
}

}  // namespace
}  // namespace weft
