// SPDX-License-Identifier: Apache-2.0
// Multi-host failover, end to end with real processes: three `weft agent` hosts, each in a network
// namespace of its own (made here with `ip netns` and veth pairs to the root namespace, addresses
// 10.77.N.x), grouped as two hosts providers ("a": two hosts, "b": one host); `weft control
// --providers` and `weft gateway` (following control's route watch) in the root namespace. A
// deployment of stories260K with 3 replicas is spread over both providers. Under 16 greedy streams
// through the gateway, every process of provider "a" (its agents and their engines) is SIGKILLed:
// every stream completes without error and equals its uninterrupted output token for token (the
// gateway migrates them), and replacement replicas are ready on "b" within 30 s.
// Needs root (CAP_NET_ADMIN) for the namespaces: skipped with a loud message otherwise.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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
using Clock = std::chrono::steady_clock;

constexpr char kDeployment[] = "stories";
constexpr char kToken[] = "multihost-agent-token";
constexpr uint16_t kAgentPort = 7071;   // the same in every namespace
constexpr char kNsPrefix[] = "weft-t";  // namespaces: weft-t<test pid>-h<i>
constexpr char kIfPrefix[] = "wt";      // root-side veths: wt<test pid>h<i>

std::string IpBinary() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

// Runs `ip args...`; its exit status (-1 when it did not run) and output.
int Ip(const std::vector<std::string>& args, std::string* output = nullptr) {
  static std::atomic<int> runs{0};
  const std::string log = absl::StrCat(std::filesystem::temp_directory_path().string(),
                                       "/weft-multihost-ip-", getpid(), "-", runs++, ".log");
  std::vector<std::string> argv = {IpBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Subprocess::Start(argv, log);
  if (!p.ok()) return -1;
  std::optional<int> st = p->Wait(20);
  if (output != nullptr) {
    std::ifstream f(log);
    *output = std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  std::filesystem::remove(log);
  if (!st || !WIFEXITED(*st)) return -1;
  return WEXITSTATUS(*st);
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

// SIGKILLs every process in namespace `ns` until none is left (an agent may be spawning an engine
// at that very moment). True when the namespace is empty.
bool KillNamespace(const std::string& ns) {
  for (int round = 0; round < 50; ++round) {
    std::string out;
    if (Ip({"netns", "pids", ns}, &out) != 0) return true;  // no such namespace
    std::vector<pid_t> pids;
    for (const std::string& line :
         std::vector<std::string>(absl::StrSplit(out, '\n', absl::SkipWhitespace()))) {
      pids.push_back(static_cast<pid_t>(std::atoi(line.c_str())));
    }
    if (pids.empty()) return true;
    for (pid_t pid : pids) {
      if (pid > 0) kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Removes namespaces and veths left by earlier runs of this test whose process is gone.
void CleanUpStaleRuns() {
  std::string out;
  if (Ip({"netns", "list"}, &out) == 0) {
    static const std::regex kNs(std::string("^(") + kNsPrefix + "([0-9]+)-h[0-9]+)");
    for (const std::string& line :
         std::vector<std::string>(absl::StrSplit(out, '\n', absl::SkipWhitespace()))) {
      std::smatch m;
      const std::string& l = line;
      if (!std::regex_search(l, m, kNs)) continue;
      const pid_t owner = static_cast<pid_t>(std::atoi(m[2].str().c_str()));
      if (owner != getpid() && Alive(owner)) continue;
      std::fprintf(stderr, "multihost: removing namespace %s left by an earlier run\n",
                   m[1].str().c_str());
      KillNamespace(m[1].str());
      Ip({"netns", "del", m[1].str()});
    }
  }
  if (Ip({"-o", "link", "show"}, &out) == 0) {
    static const std::regex kIf(std::string("^[0-9]+: (") + kIfPrefix + "([0-9]+)h[0-9]+)[@:]");
    for (const std::string& line :
         std::vector<std::string>(absl::StrSplit(out, '\n', absl::SkipWhitespace()))) {
      std::smatch m;
      const std::string& l = line;
      if (!std::regex_search(l, m, kIf)) continue;
      const pid_t owner = static_cast<pid_t>(std::atoi(m[2].str().c_str()));
      if (owner != getpid() && Alive(owner)) continue;
      Ip({"link", "del", m[1].str()});
    }
  }
}

// One host: a namespace joined to the root namespace by a veth pair (a /30 per host).
struct Host {
  std::string ns;               // weft-t<pid>-h<i>
  std::string root_if;          // wt<pid>h<i>, in the root namespace
  std::string ns_if;            // wt<pid>n<i>, inside the namespace
  std::string root_addr, addr;  // 10.77.N.(4i+1) and 10.77.N.(4i+2)
  std::string provider;         // "a" or "b"
  int slots = 0;
  std::unique_ptr<Subprocess> agent;
  std::string url() const { return absl::StrCat("http://", addr, ":", kAgentPort); }
};

// GET `path` on host:port; the body when it answers 200.
std::optional<std::string> Get(const std::string& host, uint16_t port, const std::string& path,
                               double timeout_s = 2) {
  auto c = HttpClient::Connect(host, port, timeout_s);
  if (!c.ok()) return std::nullopt;
  auto r = (*c)->Request("GET", path);
  if (!r.ok() || r->status != 200) return std::nullopt;
  return r->body;
}

template <typename F>
bool WaitFor(F done, double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

struct StreamResult {
  int status = 0;
  std::string text;
  std::vector<int32_t> ids;
  std::string finish_reason;
  bool done = false;
  std::string error;
};

json GreedyBody(int i, int max_tokens) {
  static const char* kStarts[] = {
      "Once upon a time",     "Lily and Tom",       "The little dog",  "One day, a bird",
      "There was a big tree", "Sam had a red ball", "The sun was hot", "Mom said"};
  return json{{"model", kDeployment},
              {"prompt", absl::StrCat(kStarts[i % 8], i >= 8 ? absl::StrCat(" ", i) : "")},
              {"max_tokens", max_tokens},
              {"temperature", 0},
              {"ignore_eos", true},
              {"return_token_ids", true},
              {"stream", true}};
}

uint16_t PortOf(const std::string& url) {
  return static_cast<uint16_t>(std::atoi(url.substr(url.rfind(':') + 1).c_str()));
}
std::string HostOf(const std::string& url) {
  const std::string rest = url.substr(url.find("//") + 2);
  return rest.substr(0, rest.rfind(':'));
}

class MultiHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
    if (geteuid() != 0) {
      GTEST_SKIP() << "\n\n*** SKIPPED: the multi-host test needs root (ip netns, veth pairs); "
                      "CI runs it as root. ***\n";
    }
    if (IpBinary().empty()) GTEST_SKIP() << "\n\n*** SKIPPED: no `ip` binary (iproute2) ***\n";
    CleanUpStaleRuns();
    // A /24 for this run that no interface uses yet.
    std::string addrs;
    Ip({"-o", "-4", "addr", "show"}, &addrs);
    for (int k = 0; k < 200 && octet_ < 0; ++k) {
      const int o = 20 + (static_cast<int>(getpid()) + k) % 200;
      if (addrs.find(absl::StrCat(" 10.77.", o, ".")) == std::string::npos) octet_ = o;
    }
    ASSERT_GE(octet_, 0) << "no free 10.77.N.0/24";
    dir_ = weft::testing::MakeTempDir("weft-multihost-test");
    const struct {
      const char* provider;
      int slots;
    } kLayout[] = {{"a", 2}, {"a", 2}, {"b", 3}};
    for (int i = 0; i < 3; ++i) {
      Host h;
      h.ns = absl::StrCat(kNsPrefix, getpid(), "-h", i);
      h.root_if = absl::StrCat(kIfPrefix, getpid(), "h", i);
      h.ns_if = absl::StrCat(kIfPrefix, getpid(), "n", i);
      h.root_addr = absl::StrCat("10.77.", octet_, ".", 4 * i + 1);
      h.addr = absl::StrCat("10.77.", octet_, ".", 4 * i + 2);
      h.provider = kLayout[i].provider;
      h.slots = kLayout[i].slots;
      hosts_.push_back(std::move(h));
    }
    std::string err;
    if (Ip({"netns", "add", hosts_[0].ns}, &err) != 0) {
      GTEST_SKIP() << "\n\n*** SKIPPED: `ip netns add` failed (" << err
                   << "); the multi-host test needs CAP_NET_ADMIN. ***\n";
    }
    made_namespaces_ = true;
    for (size_t i = 0; i < hosts_.size(); ++i) {
      const Host& h = hosts_[i];
      const std::vector<std::vector<std::string>> steps = {
          {"netns", "add", h.ns},
          {"link", "add", h.root_if, "type", "veth", "peer", "name", h.ns_if},
          {"link", "set", h.ns_if, "netns", h.ns},
          {"addr", "add", h.root_addr + "/30", "dev", h.root_if},
          {"link", "set", h.root_if, "up"},
          {"-n", h.ns, "addr", "add", h.addr + "/30", "dev", h.ns_if},
          {"-n", h.ns, "link", "set", h.ns_if, "up"},
          {"-n", h.ns, "link", "set", "lo", "up"},
      };
      for (size_t s = i == 0 ? 1 : 0; s < steps.size(); ++s) {
        ASSERT_EQ(Ip(steps[s], &err), 0) << absl::StrJoin(steps[s], " ") << ": " << err;
      }
    }
  }

  void TearDown() override {
    if (gateway_) gateway_->Signal(SIGTERM);
    if (control_) {
      control_->Signal(SIGTERM);
      control_->Wait(20);
    }
    if (gateway_) gateway_->Wait(10);
    for (Host& h : hosts_) {
      if (h.agent) {
        h.agent->Signal(SIGTERM);  // stops its engines
        h.agent->Wait(15);
      }
    }
    if (made_namespaces_) {
      for (const Host& h : hosts_) {
        KillNamespace(h.ns);
        Ip({"netns", "del", h.ns});
        Ip({"link", "del", h.root_if});  // gone with the namespace already; in case it was not
      }
    }
  }

  void StartAgent(Host& h) {
    auto p = Subprocess::Start(
        {IpBinary(), "netns", "exec", h.ns, WEFT_BINARY, "agent", "--token", kToken, "--host",
         h.addr, "--port", std::to_string(kAgentPort), "--slots", std::to_string(h.slots),
         "--region", "zone-" + h.provider, "--data", dir_ + "/" + h.ns},
        dir_ + "/" + h.ns + ".log");
    ASSERT_TRUE(p.ok()) << p.status();
    h.agent = std::make_unique<Subprocess>(*std::move(p));
  }

  void StartControl() {
    {
      std::ofstream f(dir_ + "/providers.yaml");
      f << "providers:\n";
      for (const char* name : {"a", "b"}) {
        f << "  - name: " << name << "\n    kind: hosts\n    region: zone-" << name
          << "\n    timeout_ms: 1000\n"
          << (std::string(name) == "a" ? "    token_env: WEFT_TEST_AGENT_TOKEN\n"
                                       : absl::StrCat("    token: ", kToken, "\n"))
          << "    hosts:\n";
        for (const Host& h : hosts_) {
          if (h.provider == name) f << "      - " << h.url() << "\n";
        }
      }
    }
    setenv("WEFT_TEST_AGENT_TOKEN", kToken, 1);  // inherited by `weft control`
    control_port_ = weft::testing::FreeLoopbackPort();
    control_url_ = absl::StrCat("http://127.0.0.1:", control_port_);
    auto p = Subprocess::Start(
        {WEFT_BINARY, "control", "--data", dir_ + "/control", "--port",
         std::to_string(control_port_), "--providers", dir_ + "/providers.yaml", "--tick", "0.2"},
        dir_ + "/control.log");
    ASSERT_TRUE(p.ok()) << p.status();
    control_ = std::make_unique<Subprocess>(*std::move(p));
    ASSERT_TRUE(weft::testing::WaitForHttp200(control_port_, "/health", 30).ok()) << Log("control");
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
        << "  upstream_stall_timeout_s: 2\n  retries: 3\n  retry_budget_min_per_s: 100\n"
        << "health:\n  interval_s: 0.2\n  timeout_s: 0.5\n  load_poll_interval_s: 0.2\n"
        << "routes:\n  control_url: " << control_url_ << "\n";
    }
    auto p = Subprocess::Start({WEFT_BINARY, "gateway", "--config", dir_ + "/gateway.yaml"},
                               dir_ + "/gateway.log");
    ASSERT_TRUE(p.ok()) << p.status();
    gateway_ = std::make_unique<Subprocess>(*std::move(p));
    ASSERT_TRUE(weft::testing::WaitForHttp200(gateway_port_, "/health", 30).ok()) << Log("gateway");
  }

  std::string Log(const std::string& name) {
    std::ifstream f(dir_ + "/" + name + ".log");
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return all.size() > 4000 ? all.substr(all.size() - 4000) : all;
  }

  json Control(const std::string& path) {
    std::optional<std::string> body = Get("127.0.0.1", control_port_, path, 5);
    if (!body) return json();
    return json::parse(*body, nullptr, false);
  }

  struct Replica {
    std::string id, provider, phase, endpoint;
  };
  std::vector<Replica> Replicas() {
    std::vector<Replica> out;
    json j = Control(absl::StrCat("/v1/replicas?deployment=", kDeployment));
    if (!j.is_object() || !j["replicas"].is_array()) return out;
    for (const auto& r : j["replicas"]) {
      out.push_back({r.value("id", ""), r.value("provider", ""), r.value("phase", ""),
                     r.value("endpoint", "")});
    }
    return out;
  }
  std::vector<Replica> Ready() {
    std::vector<Replica> out;
    for (Replica& r : Replicas()) {
      if (r.phase == "ready") out.push_back(std::move(r));
    }
    return out;
  }

  StreamResult Stream(const json& body) {
    StreamResult r;
    auto c = HttpClient::Connect("127.0.0.1", gateway_port_, 60);
    if (!c.ok()) {
      r.error = std::string(c.status().message());
      return r;
    }
    auto head = (*c)->StartStream("POST", "/v1/completions", body.dump(),
                                  {{"Authorization", "Bearer " + key_}});
    if (!head.ok()) {
      r.error = std::string(head.status().message());
      return r;
    }
    r.status = head->status;
    if (head->status != 200) {
      r.error = "status " + std::to_string(head->status);
      return r;
    }
    bool first = true;
    while (true) {
      auto ev = (*c)->NextEvent();
      if (!ev.ok()) {
        r.error = std::string(ev.status().message());
        return r;
      }
      if (!ev->has_value()) return r;
      if (**ev == "[DONE]") {
        r.done = true;
        continue;
      }
      json j = json::parse(**ev, nullptr, false);
      if (!j.is_object() || j.contains("error")) {
        r.error = **ev;
        continue;
      }
      if (j.contains("choices") && !j["choices"].empty()) {
        const json& ch = j["choices"][0];
        r.text += ch.value("text", "");
        if (ch.contains("token_ids")) {
          for (const auto& t : ch["token_ids"]) r.ids.push_back(t.get<int32_t>());
        }
        if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) {
          r.finish_reason = ch["finish_reason"];
        }
      }
      if (first) {
        first = false;
        streams_started_++;
      }
    }
  }

  // Requests running now on the engine at `endpoint` (its load report); -1 when it does not answer.
  int Running(const std::string& endpoint) {
    std::optional<std::string> body = Get(HostOf(endpoint), PortOf(endpoint), "/weft/v1/load", 1);
    if (!body) return -1;
    json j = json::parse(*body, nullptr, false);
    return j.is_object() ? j.value("running", 0) : -1;
  }

  double Metric(const std::string& name) {
    std::optional<std::string> body = Get("127.0.0.1", gateway_port_, "/metrics", 5);
    if (!body) return -1;
    const std::string needle = "\n" + name + " ";
    const size_t at = body->find(needle);
    if (at == std::string::npos) return -1;
    return std::stod(body->substr(at + needle.size()));
  }

  std::string model_, dir_, control_url_, key_;
  int octet_ = -1;
  bool made_namespaces_ = false;
  std::vector<Host> hosts_;
  uint16_t control_port_ = 0, gateway_port_ = 0;
  std::unique_ptr<Subprocess> control_, gateway_;
  std::atomic<int> streams_started_{0};
};

TEST_F(MultiHostTest, ProviderKilledUnderStreamingLoad) {
  const auto test_start = Clock::now();
  for (Host& h : hosts_) ASSERT_NO_FATAL_FAILURE(StartAgent(h));
  for (const Host& h : hosts_) {
    ASSERT_TRUE(WaitFor([&] { return Get(h.addr, kAgentPort, "/health").has_value(); }, 20))
        << h.ns << " agent not answering on " << h.url() << "\n"
        << Log(h.ns);
  }
  ASSERT_NO_FATAL_FAILURE(StartControl());
  {
    std::ofstream f(dir_ + "/spec.yaml");
    f << "name: " << kDeployment << "\nmodel: " << model_
      << "\nreplicas: {min: 3, max: 3}\nengine: {threads: 1}\n"
      << "placement: {spread_min_providers: 2}\n";
  }
  {
    auto p = Subprocess::Start(
        {WEFT_BINARY, "deploy", "-f", dir_ + "/spec.yaml", "--control", control_url_},
        dir_ + "/deploy.log");
    ASSERT_TRUE(p.ok());
    std::optional<int> st = p->Wait(30);
    ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << Log("deploy");
  }
  ASSERT_TRUE(WaitFor([&] { return Ready().size() == 3; }, 60))
      << Control("/v1/replicas").dump(1) << "\n"
      << Log("control");
  std::set<std::string> providers_used;
  std::vector<Replica> on_a;
  for (const Replica& r : Ready()) {
    providers_used.insert(r.provider);
    if (r.provider == "a") on_a.push_back(r);
    std::printf("multihost: replica %s on provider %s at %s\n", r.id.c_str(), r.provider.c_str(),
                r.endpoint.c_str());
  }
  ASSERT_EQ(providers_used, (std::set<std::string>{"a", "b"})) << "not spread over both providers";
  ASSERT_FALSE(on_a.empty());
  ASSERT_NO_FATAL_FAILURE(StartGateway());
  ASSERT_TRUE(WaitFor(
      [&] {
        StreamResult r = Stream(GreedyBody(0, 4));
        return r.done && r.error.empty();
      },
      15))
      << Log("gateway");

  // The uninterrupted greedy outputs (through the gateway, all three replicas up; greedy decoding
  // does not depend on the replica or the batch).
  constexpr int kStreams = 16;
  constexpr int kMaxTokens = 400;
  std::vector<StreamResult> want(kStreams);
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < kStreams; ++i) {
      ts.emplace_back([&, i] { want[i] = Stream(GreedyBody(i, kMaxTokens)); });
    }
    for (auto& t : ts) t.join();
  }
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(want[i].done && want[i].error.empty()) << i << ": " << want[i].error;
    ASSERT_EQ(want[i].ids.size(), static_cast<size_t>(kMaxTokens)) << i;
  }
  const double migrations_before = Metric("weft_gateway_migrations_total");

  // The same streams again; once they all run and provider a's engines are generating for some,
  // every process of provider a dies.
  streams_started_ = 0;
  std::vector<StreamResult> got(kStreams);
  std::vector<std::thread> ts;
  for (int i = 0; i < kStreams; ++i) {
    ts.emplace_back([&, i] { got[i] = Stream(GreedyBody(i, kMaxTokens)); });
  }
  const auto strike_deadline = Clock::now() + std::chrono::seconds(20);
  auto a_busy = [&] {
    for (const Replica& r : on_a) {
      if (Running(r.endpoint) >= 1) return true;
    }
    return false;
  };
  while ((streams_started_ < kStreams || !a_busy()) && Clock::now() < strike_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto killed_at = Clock::now();
  for (Host& h : hosts_) {
    if (h.provider != "a") continue;
    ASSERT_TRUE(KillNamespace(h.ns)) << h.ns;
    h.agent->Wait(5);  // reap it
    h.agent.reset();
  }
  std::printf("multihost: SIGKILLed provider a (%d streams started)\n", streams_started_.load());
  for (auto& t : ts) t.join();
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(got[i].status, 200) << i;
    EXPECT_TRUE(got[i].done) << i << ": " << got[i].error;
    EXPECT_EQ(got[i].error, "") << i;
    EXPECT_EQ(got[i].ids, want[i].ids) << "stream " << i;
    EXPECT_EQ(got[i].text, want[i].text) << "stream " << i;
    EXPECT_EQ(got[i].finish_reason, "length") << i;
  }
  EXPECT_GT(Metric("weft_gateway_migrations_total"), migrations_before)
      << "no stream was on provider a when it died";

  // Replacements: three ready replicas again, all on provider b, within 30 s of the kill.
  const bool replaced = WaitFor(
      [&] {
        std::vector<Replica> ready = Ready();
        if (ready.size() != 3) return false;
        for (const Replica& r : ready) {
          if (r.provider != "b") return false;
        }
        return true;
      },
      30);
  const double took = std::chrono::duration<double>(Clock::now() - killed_at).count();
  std::printf("multihost: replacements ready on provider b %.1f s after the kill\n", took);
  ASSERT_TRUE(replaced) << Control("/v1/replicas").dump(1) << "\n" << Log("control");
  EXPECT_LT(took, 30);
  // Provider a's old replicas were failed with the unreachable hosts named, and are gone now.
  const std::string events = Control("/v1/events").dump();
  EXPECT_NE(events.find("unreachable"), std::string::npos) << events;
  // The gateway serves from the replacements.
  StreamResult after = Stream(GreedyBody(3, 16));
  EXPECT_TRUE(after.done && after.error.empty()) << after.error;
  EXPECT_EQ(after.ids, std::vector<int32_t>(want[3].ids.begin(), want[3].ids.begin() + 16));
  std::printf("multihost: whole test %.1f s\n",
              std::chrono::duration<double>(Clock::now() - test_start).count());
}

}  // namespace
}  // namespace weft
