// SPDX-License-Identifier: Apache-2.0
#include "control/providers/hosts/hosts_provider.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "control/agent/agent_server.h"
#include "control/providers/fake/fake_provider.h"
#include "control/providers/provider_conformance.h"
#include "gtest/gtest.h"
#include "testing/subprocess.h"
#include "testing/test_data.h"

namespace weft::control {
namespace {

using weft::testing::Subprocess;

constexpr char kToken[] = "conformance-token";

// The pid of the `weft engine` process started with "--port <port>", or -1.
pid_t EnginePid(uint16_t port) {
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

// Two real `weft agent` processes on loopback, one slot each, running stories260K engines: the
// provider's slots are spread over hosts, so every suite case crosses host boundaries.
absl::StatusOr<ConformanceSubject> MakeHostsSubject() {
  const std::string model = weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
  const std::string dir = weft::testing::MakeTempDir("weft-hosts-provider");
  auto agents = std::make_shared<std::vector<Subprocess>>();
  HostsProviderOptions o;
  o.token = kToken;
  o.region = "test-region";
  for (int i = 0; i < 2; ++i) {
    const uint16_t port = weft::testing::FreeLoopbackPort();
    auto p = Subprocess::Start(
        {WEFT_BINARY, "agent", "--token", kToken, "--port", std::to_string(port), "--slots", "1",
         "--region", "test-region", "--data", absl::StrCat(dir, "/agent", i)},
        absl::StrCat(dir, "/agent", i, ".log"));
    if (!p.ok()) return p.status();
    agents->push_back(*std::move(p));
    if (absl::Status s = weft::testing::WaitForHttp200(port, "/health", 30); !s.ok()) return s;
    o.hosts.push_back(absl::StrCat("http://127.0.0.1:", port));
  }
  absl::StatusOr<std::unique_ptr<HostsProvider>> p = HostsProvider::Create(o);
  if (!p.ok()) return p.status();
  HostsProvider* raw = p->get();
  ConformanceSubject s;
  s.provider = *std::move(p);
  s.spec.model_path = model;
  s.spec.engine.threads = 1;
  s.spec.engine.extra = {"--http-threads", "1"};
  s.slots = 2;
  s.kill = [raw](const ReplicaId& id) {
    absl::StatusOr<std::vector<ReplicaStatus>> list = raw->List();
    if (!list.ok()) return list.status();
    for (const ReplicaStatus& r : *list) {
      if (r.id != id) continue;
      const pid_t pid = EnginePid(
          static_cast<uint16_t>(std::atoi(r.endpoint.substr(r.endpoint.rfind(':') + 1).c_str())));
      if (pid <= 0) return absl::NotFoundError(absl::StrCat("no engine process for ", id));
      kill(pid, SIGKILL);
      return absl::OkStatus();
    }
    return absl::NotFoundError(id);
  };
  s.timeout_s = 30;
  s.cleanup = [agents, dir] {
    for (Subprocess& a : *agents) a.Signal(SIGTERM);  // each stops its engines
    for (Subprocess& a : *agents) a.Wait(15);
    agents->clear();
    std::filesystem::remove_all(dir);
  };
  return s;
}

INSTANTIATE_TEST_SUITE_P(Hosts, ProviderConformanceTest,
                         ::testing::Values(ProviderConformanceCase{"hosts", &MakeHostsSubject}),
                         ConformanceCaseName);

// Hosts-only behaviour against in-process agents over fake providers (fast, and a host can be
// taken down and brought back on the same port).
class HostsProviderTest : public ::testing::Test {
 protected:
  struct Host {
    std::unique_ptr<FakeProvider> provider;
    std::unique_ptr<agent::AgentServer> server;
    uint16_t port = 0;
  };

  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      FakeProviderOptions fo;
      fo.slots = 2;
      fo.region = i == 0 ? "us-east-1a" : "us-east-1b";
      fo.usd_per_hour = i == 0 ? 1.0 : 3.0;
      fo.endpoint = [i](const ReplicaSpec& s) {
        return absl::StrCat("http://host", i, ".invalid:9000/", s.id);
      };
      hosts_.push_back({std::make_unique<FakeProvider>(fo), nullptr, 0});
      Up(i);
    }
  }

  void Up(int i) {
    agent::AgentServerOptions o;
    o.token = kToken;
    o.http.port = hosts_[i].port;  // 0 the first time; then the same port again
    auto s = agent::AgentServer::Start(hosts_[i].provider.get(), o);
    ASSERT_TRUE(s.ok()) << s.status();
    hosts_[i].server = *std::move(s);
    hosts_[i].port = hosts_[i].server->port();
  }
  void Down(int i) { hosts_[i].server.reset(); }
  std::string Url(int i) const { return absl::StrCat("http://127.0.0.1:", hosts_[i].port); }

  std::unique_ptr<HostsProvider> Make(const std::string& token = kToken) {
    HostsProviderOptions o;
    o.hosts = {Url(0), Url(1)};
    o.token = token;
    o.timeout_ms = 1000;
    o.health_cache_ms = 0;  // always probe
    auto p = HostsProvider::Create(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }
  static ReplicaSpec Spec(const std::string& id) {
    ReplicaSpec s;
    s.id = id;
    s.deployment = "demo";
    s.model_path = "/models/m.gguf";
    return s;
  }
  static std::optional<ReplicaStatus> Find(HostsProvider& p, const ReplicaId& id) {
    absl::StatusOr<std::vector<ReplicaStatus>> list = p.List();
    EXPECT_TRUE(list.ok()) << list.status();
    if (!list.ok()) return std::nullopt;
    for (const ReplicaStatus& s : *list) {
      if (s.id == id) return s;
    }
    return std::nullopt;
  }

  std::vector<Host> hosts_;
};

TEST_F(HostsProviderTest, SpreadsReplicasOverHostsAndSumsCapacity) {
  auto p = Make();
  ASSERT_TRUE(p->Provision(Spec("a")).ok());
  ASSERT_TRUE(p->Provision(Spec("b")).ok());
  EXPECT_NE(p->HostOf("a"), p->HostOf("b"));  // the host with the most free slots goes first
  EXPECT_EQ(hosts_[0].provider->List()->size(), 1u);
  EXPECT_EQ(hosts_[1].provider->List()->size(), 1u);
  absl::StatusOr<ProviderCapacity> c = p->Capacity();
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->accelerators.size(), 1u);
  EXPECT_EQ(c->accelerators[0].total, 4);
  EXPECT_EQ(c->accelerators[0].free, 2);
  EXPECT_DOUBLE_EQ(c->accelerators[0].usd_per_hour, 2.0);  // mean over the slots
  EXPECT_EQ(c->regions, (std::vector<std::string>{"us-east-1a", "us-east-1b"}));
  // A replica needing two slots fits on neither host once each has one left.
  ReplicaSpec big = Spec("big");
  big.accelerator_count = 2;
  EXPECT_EQ(p->Provision(big).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(HostsProviderTest, UnreachableHostFailsItsReplicasOnly) {
  auto p = Make();
  ASSERT_TRUE(p->Provision(Spec("a")).ok());
  ASSERT_TRUE(p->Provision(Spec("b")).ok());
  const std::string down_url = p->HostOf("a");
  const int down = down_url == Url(0) ? 0 : 1;
  const std::string other = down == 0 ? "b" : "a";
  const std::string victim = down == 0 ? "a" : "b";
  Down(down);

  std::optional<ReplicaStatus> v = Find(*p, victim);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->phase, ReplicaPhase::kFailed);
  EXPECT_TRUE(absl::StartsWith(v->failure_reason, "host " + Url(down) + " unreachable: "))
      << v->failure_reason;
  EXPECT_FALSE(v->endpoint.empty());  // as last seen
  std::optional<ReplicaStatus> o = Find(*p, other);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->phase, ReplicaPhase::kReady);
  EXPECT_TRUE(p->Health().ok);
  absl::StatusOr<ProviderCapacity> c = p->Capacity();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->accelerators[0].total, 2);  // the reachable host only
  EXPECT_EQ(c->accelerators[0].free, 1);
  // New replicas go to the host that answers; a retry of the victim reports it failed.
  ASSERT_TRUE(p->Provision(Spec("c")).ok());
  EXPECT_EQ(p->HostOf("c"), Url(1 - down));
  absl::StatusOr<ReplicaStatus> retry = p->Provision(Spec(victim));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->phase, ReplicaPhase::kFailed);

  // Every host down: degraded, no capacity, nothing can be provisioned; List still answers.
  Down(1 - down);
  ProviderHealth h = p->Health();
  EXPECT_FALSE(h.ok);
  EXPECT_TRUE(absl::StrContains(h.reason, "no agent reachable")) << h.reason;
  EXPECT_EQ(p->Capacity().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(p->Provision(Spec("d")).status().code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<std::vector<ReplicaStatus>> list = p->List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 3u);
  for (const ReplicaStatus& s : *list) EXPECT_EQ(s.phase, ReplicaPhase::kFailed) << s.id;
}

TEST_F(HostsProviderTest, TerminationOfAReplicaOnADownHostIsSentWhenItReturns) {
  auto p = Make();
  ASSERT_TRUE(p->Provision(Spec("a")).ok());
  const int host = p->HostOf("a") == Url(0) ? 0 : 1;
  Down(host);
  ASSERT_EQ(Find(*p, "a")->phase, ReplicaPhase::kFailed);
  ASSERT_TRUE(p->Terminate("a").ok());
  EXPECT_FALSE(Find(*p, "a").has_value());               // the control plane sees it gone
  EXPECT_EQ(hosts_[host].provider->List()->size(), 1u);  // still running, cut off
  EXPECT_EQ(p->Provision(Spec("a")).status().code(), absl::StatusCode::kUnavailable);
  Up(host);
  EXPECT_FALSE(Find(*p, "a").has_value());  // this List sends the termination
  EXPECT_TRUE(hosts_[host].provider->List()->empty());
  EXPECT_FALSE(Find(*p, "a").has_value());
  ASSERT_TRUE(p->Provision(Spec("a")).ok());  // the id is free again
}

TEST_F(HostsProviderTest, ProvisionIsIdempotentAcrossProviderInstances) {
  auto first = Make();
  absl::StatusOr<ReplicaStatus> s = first->Provision(Spec("r1"));
  ASSERT_TRUE(s.ok());
  first.reset();
  auto second = Make();  // a restarted control plane: it has never seen r1
  absl::StatusOr<ReplicaStatus> again = second->Provision(Spec("r1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->endpoint, s->endpoint);
  EXPECT_EQ(hosts_[0].provider->provisions() + hosts_[1].provider->provisions(), 1);
  // And it can terminate what it never provisioned.
  ASSERT_TRUE(Make()->Terminate("r1").ok());
  EXPECT_TRUE(hosts_[0].provider->List()->empty());
  EXPECT_TRUE(hosts_[1].provider->List()->empty());
}

TEST_F(HostsProviderTest, AWrongTokenMakesHostsUnusableWithAHint) {
  auto p = Make("not-the-token");
  ProviderHealth h = p->Health();
  EXPECT_FALSE(h.ok);
  EXPECT_TRUE(absl::StrContains(h.reason, "check the token")) << h.reason;
  absl::Status c = p->Capacity().status();
  EXPECT_EQ(c.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(c.message(), "check the token")) << c;
  EXPECT_EQ(p->Provision(Spec("r1")).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(hosts_[0].provider->provisions() + hosts_[1].provider->provisions(), 0);
}

TEST_F(HostsProviderTest, ListAnswersPromptlyWhenHostsHang) {
  // Two "hosts" that accept connections (the kernel's backlog) but never answer: each call hangs
  // until its deadline. Hosts are asked in parallel, so they cost one timeout, not one per host.
  std::vector<int> fds;
  HostsProviderOptions o;
  o.hosts = {Url(0)};
  for (int i = 0; i < 2; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    o.hosts.push_back(absl::StrCat("http://127.0.0.1:", ntohs(a.sin_port)));
    fds.push_back(fd);
  }
  o.token = kToken;
  o.timeout_ms = 400;
  auto p = HostsProvider::Create(o);
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->Provision(Spec("a")).ok());
  EXPECT_EQ((*p)->HostOf("a"), Url(0));
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<ReplicaStatus>> list = (*p)->List();
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].phase, ReplicaPhase::kReady);
  EXPECT_GE(took, std::chrono::milliseconds(350));
  EXPECT_LT(took, std::chrono::milliseconds(750));
  for (int fd : fds) close(fd);
}

TEST(HostsProviderCreateTest, OptionsAreValidatedByField) {
  auto err = [](HostsProviderOptions o) {
    return std::string(HostsProvider::Create(std::move(o)).status().message());
  };
  HostsProviderOptions o;
  o.token = "t";
  EXPECT_TRUE(absl::StartsWith(err(o), "hosts:")) << err(o);
  o.hosts = {"http://10.0.0.1:7071", "10.0.0.2:7071"};
  EXPECT_TRUE(absl::StartsWith(err(o), "hosts[1]:")) << err(o);
  o.hosts = {"http://10.0.0.1:7071", "http://10.0.0.1:7071/"};
  EXPECT_TRUE(absl::StartsWith(err(o), "hosts[1]:")) << err(o);
  o.hosts = {"http://10.0.0.1:7071/some/path"};
  EXPECT_TRUE(absl::StartsWith(err(o), "hosts[0]:")) << err(o);
  o.hosts = {"http://10.0.0.1:7071"};
  o.token = "";
  EXPECT_TRUE(absl::StartsWith(err(o), "token:")) << err(o);
  o.token = "t";
  EXPECT_TRUE(HostsProvider::Create(o).ok());
}

}  // namespace
}  // namespace weft::control
