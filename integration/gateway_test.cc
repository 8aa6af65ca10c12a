// SPDX-License-Identifier: Apache-2.0
// The gateway against real `weft engine` processes on stories260K, over loopback:
//  - 32 streams through the gateway survive a replica killed (SIGKILL), frozen (SIGSTOP: stall
//    detection) or cut by a fault-injecting TCP proxy, each equal token for token to its
//    uninterrupted greedy output;
//  - a gateway SIGKILLed under load and restarted leaves exactly one ledger record for every
//    request whose final chunk a client received;
//  - keys, tenants, permissions and quotas answer with their exact statuses; bad input gets its
//    4xx or is cut by its timeout while other clients' requests keep flowing;
//  - prefix-affinity routing gets a far higher prefix-cache hit rate than round robin.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/process.h"
#include "boost/asio.hpp"
#include "gateway/auth/sqlite_key_store.h"
#include "gateway/metering/ledger_store.h"
#include "gateway/metering/sqlite_ledger_store.h"
#include "gateway/metering/wal_format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/fault_proxy.h"
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

struct FleetOptions {
  int replicas = 3;
  std::string balancer = "least_tokens";
  bool proxy_last_replica = false;  // the last replica is reached through a FaultProxy
  std::vector<std::string> engine_args;
  std::string extra_limits;  // YAML lines under limits:
  std::string health =
      "health:\n  interval_s: 0.2\n  timeout_s: 0.5\n  load_poll_interval_s: 0.2\n";
  int64_t tenant_rpm = 0;
};

struct StreamResult {
  int status = 0;
  std::string request_id;
  std::string text;
  std::vector<int32_t> ids;
  std::string finish_reason;
  bool done = false;  // [DONE] received
  std::string error;  // an error event or a transport error
  json usage;
};

class Fleet {
 public:
  explicit Fleet(FleetOptions o) : o_(std::move(o)) {}
  ~Fleet() {
    for (auto& e : engines_) e.Signal(SIGCONT);
  }

  void Start() {
    dir_ = weft::testing::MakeTempDir("weft-gw-test");
    model_ = weft::testing::RequireTestData("models/stories260K/stories260K.gguf");
    for (int i = 0; i < o_.replicas; ++i) StartEngine(i);
    if (o_.proxy_last_replica) {
      weft::testing::FaultProxyOptions po;
      po.target_port = engine_ports_.back();
      auto p = weft::testing::FaultProxy::Start(po);
      ASSERT_TRUE(p.ok()) << p.status();
      proxy_ = *std::move(p);
    }
    // Tenants and keys, written to the store the gateway opens.
    auto store = auth::SqliteKeyStore::Open(dir_ + "/keys.sqlite");
    ASSERT_TRUE(store.ok()) << store.status();
    keys_ = *std::move(store);
    auth::Tenant acme;
    acme.id = "acme";
    acme.deployments = {kDeployment};
    acme.quotas.requests_per_min = o_.tenant_rpm;
    ASSERT_TRUE(keys_->CreateTenant(acme).ok());
    auth::Tenant other;
    other.id = "other";
    other.deployments = {"elsewhere"};
    ASSERT_TRUE(keys_->CreateTenant(other).ok());
    auto k = keys_->CreateKey({"acme", "test", 0, {}});
    ASSERT_TRUE(k.ok()) << k.status();
    key_ = k->plaintext;
    key_id_ = k->key.key_id;
    auto k2 = keys_->CreateKey({"other", "test", 0, {}});
    ASSERT_TRUE(k2.ok()) << k2.status();
    other_key_ = k2->plaintext;
    gateway_port_ = weft::testing::FreeLoopbackPort();
    WriteConfig();
    StartGateway();
  }

  void StartEngine(int i) {
    const uint16_t port = weft::testing::FreeLoopbackPort();
    std::vector<std::string> argv = {
        WEFT_BINARY,          "engine",    "--model", model_,   "--port",
        std::to_string(port), "--threads", "1",       "--name", "stories260K"};
    argv.insert(argv.end(), o_.engine_args.begin(), o_.engine_args.end());
    auto p = Subprocess::Start(argv, absl::StrCat(dir_, "/engine", i, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    if (static_cast<int>(engines_.size()) <= i) {
      engines_.push_back(*std::move(p));
      engine_ports_.push_back(port);
    } else {
      engines_[i] = *std::move(p);
      engine_ports_[i] = port;
    }
    ASSERT_TRUE(weft::testing::WaitForHttp200(port, "/health", 30).ok());
  }

  void WriteConfig() {
    std::ofstream f(dir_ + "/gateway.yaml");
    f << "listen: 127.0.0.1:" << gateway_port_ << "\nio_threads: 2\n"
      << "data_dir: " << dir_ << "\n"
      << "balancer:\n  policy: " << o_.balancer << "\n"
      << "limits:\n  max_body_bytes: 65536\n  header_timeout_s: 1\n"
      << "  upstream_connect_timeout_s: 1\n  upstream_first_byte_timeout_s: 3\n"
      << "  upstream_stall_timeout_s: 1\n  retries: 3\n  retry_budget_min_per_s: 100\n"
      << o_.extra_limits << o_.health << "deployments:\n  " << kDeployment << ":\n    replicas:\n";
    for (int i = 0; i < o_.replicas; ++i) {
      const bool proxied = o_.proxy_last_replica && i == o_.replicas - 1;
      f << "      - id: r" << i
        << "\n        url: http://127.0.0.1:" << (proxied ? proxy_->port() : engine_ports_[i])
        << "\n        provider: p" << i % 2 << "\n";
    }
  }

  void StartGateway() {
    auto p = Subprocess::Start({WEFT_BINARY, "gateway", "--config", dir_ + "/gateway.yaml"},
                               dir_ + "/gateway.log");
    ASSERT_TRUE(p.ok()) << p.status();
    gateway_ = std::make_unique<Subprocess>(*std::move(p));
    ASSERT_TRUE(weft::testing::WaitForHttp200(gateway_port_, "/health", 30).ok());
    // Until the first load report the gateway does not know the engines' state; give it one.
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }

  std::vector<std::pair<std::string, std::string>> Auth(const std::string& key) const {
    return {{"Authorization", "Bearer " + key}};
  }

  absl::StatusOr<weft::testing::HttpResponse> Post(const std::string& path, const json& body,
                                                   const std::string& key) {
    auto c = HttpClient::Connect("127.0.0.1", gateway_port_, 5);
    if (!c.ok()) return c.status();
    return (*c)->Request("POST", path, body.dump(), Auth(key));
  }

  StreamResult Stream(json body, const std::string& key, uint16_t port = 0) {
    StreamResult r;
    int64_t tokens_seen_for_this = 0;
    body["stream"] = true;
    if (port != 0) body["model"] = "stories260K";  // straight to an engine
    auto c = HttpClient::Connect("127.0.0.1", port ? port : gateway_port_, 30);
    if (!c.ok()) {
      r.error = std::string(c.status().message());
      return r;
    }
    auto head = (*c)->StartStream("POST", "/v1/completions", body.dump(), Auth(key));
    if (!head.ok()) {
      r.error = std::string(head.status().message());
      return r;
    }
    r.status = head->status;
    r.request_id = head->Header("x-weft-request-id");
    if (head->status != 200) {
      r.error = "status " + std::to_string(head->status);
      return r;
    }
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
      if (j.contains("usage") && j["usage"].is_object()) r.usage = j["usage"];
      if (!j["choices"].empty()) {
        const json& ch = j["choices"][0];
        r.text += ch.value("text", "");
        if (ch.contains("token_ids")) {
          for (const auto& t : ch["token_ids"]) r.ids.push_back(t.get<int32_t>());
        }
        if (!ch["finish_reason"].is_null()) r.finish_reason = ch["finish_reason"];
      }
      if (tokens_seen_for_this++ == 0) streams_started_++;
    }
  }

  double Metric(const std::string& name) {
    auto c = HttpClient::Connect("127.0.0.1", gateway_port_, 5);
    if (!c.ok()) return -1;
    auto r = (*c)->Request("GET", "/metrics");
    if (!r.ok()) return -1;
    const std::string needle = "\n" + name + " ";
    const size_t at = r->body.find(needle);
    if (at == std::string::npos) return -1;
    return std::stod(r->body.substr(at + needle.size()));
  }

  FleetOptions o_;
  std::string dir_, model_, key_, key_id_, other_key_;
  std::vector<Subprocess> engines_;
  std::vector<uint16_t> engine_ports_;
  std::unique_ptr<weft::testing::FaultProxy> proxy_;
  std::unique_ptr<auth::SqliteKeyStore> keys_;
  std::unique_ptr<Subprocess> gateway_;
  uint16_t gateway_port_ = 0;
  std::atomic<int64_t> streams_started_{0};

  // Requests running on engine i now (its load report).
  int Running(int i) {
    auto c = HttpClient::Connect("127.0.0.1", engine_ports_[i], 2);
    if (!c.ok()) return -1;
    auto r = (*c)->Request("GET", "/weft/v1/load");
    if (!r.ok() || r->status != 200) return -1;
    return json::parse(r->body).value("running", 0);
  }
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
              {"return_token_ids", true}};
}

// `weft gateway` from `dir` with one tenant ("acme", may call kDeployment, its key in `key`) and
// one replica `replica_id` at `replica_port`; `limits_yaml` goes under `limits:` (may be empty),
// `args` after the config. Returns once /health answers.
struct LoneGateway {
  std::string key;
  uint16_t port = 0;
  std::optional<Subprocess> process;
};
void StartLoneGateway(const std::string& dir, const std::string& replica_id, uint16_t replica_port,
                      const std::string& limits_yaml, const std::vector<std::string>& args,
                      LoneGateway* out) {
  auto key = weft::testing::CreateTenantWithKey(dir + "/keys.sqlite", "acme", {kDeployment});
  ASSERT_TRUE(key.ok()) << key.status();
  out->key = *key;
  out->port = weft::testing::FreeLoopbackPort();
  {
    std::ofstream f(dir + "/gateway.yaml");
    f << "listen: 127.0.0.1:" << out->port << "\ndata_dir: " << dir << "\n"
      << (limits_yaml.empty() ? "" : "limits:\n" + limits_yaml) << "deployments:\n  " << kDeployment
      << ":\n    replicas:\n"
      << "      - id: " << replica_id << "\n        url: http://127.0.0.1:" << replica_port << "\n";
  }
  std::vector<std::string> argv = {WEFT_BINARY, "gateway", "--config", dir + "/gateway.yaml"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Subprocess::Start(argv, dir + "/gateway.log");
  ASSERT_TRUE(p.ok()) << p.status();
  out->process.emplace(*std::move(p));
  ASSERT_TRUE(weft::testing::WaitForHttp200(out->port, "/health", 30).ok());
}

enum class Fault { kKill, kStop, kProxyReset };

// 32 streams; once they run, `fault` hits one replica. Every stream completes with no error and
// equals its uninterrupted greedy output.
void RunFailoverScenario(Fault fault) {
  FleetOptions fo;
  fo.proxy_last_replica = fault == Fault::kProxyReset;
  Fleet fleet(fo);
  ASSERT_NO_FATAL_FAILURE(fleet.Start());
  constexpr int kStreams = 32;
  constexpr int kMaxTokens = 400;
  // The uninterrupted outputs, straight from one engine (batching does not change greedy tokens).
  std::vector<StreamResult> want(kStreams);
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < kStreams; ++i) {
      ts.emplace_back([&, i] {
        want[i] = fleet.Stream(GreedyBody(i, kMaxTokens), "", fleet.engine_ports_[0]);
      });
    }
    for (auto& t : ts) t.join();
  }
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(want[i].done && want[i].error.empty()) << i << ": " << want[i].error;
    ASSERT_EQ(want[i].ids.size(), static_cast<size_t>(kMaxTokens));
  }
  fleet.streams_started_ = 0;
  std::vector<StreamResult> got(kStreams);
  std::vector<std::thread> ts;
  for (int i = 0; i < kStreams; ++i) {
    ts.emplace_back([&, i] { got[i] = fleet.Stream(GreedyBody(i, kMaxTokens), fleet.key_); });
  }
  // Strike once every stream runs and the victim is generating for some of them.
  const int victim = fault == Fault::kKill ? 0 : fault == Fault::kStop ? 1 : fo.replicas - 1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((fleet.streams_started_ < kStreams || fleet.Running(victim) < 1) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  switch (fault) {
    case Fault::kKill:
      fleet.engines_[0].Signal(SIGKILL);
      break;
    case Fault::kStop:
      fleet.engines_[1].Signal(SIGSTOP);
      break;
    case Fault::kProxyReset:
      fleet.proxy_->ResetAfterBytes(64);  // new connections too, for a while
      fleet.proxy_->ResetAll();
      break;
  }
  for (auto& t : ts) t.join();
  if (fault == Fault::kStop) fleet.engines_[1].Signal(SIGCONT);
  if (fault == Fault::kProxyReset) fleet.proxy_->Pass();
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(got[i].status, 200) << i;
    EXPECT_TRUE(got[i].done) << i << ": " << got[i].error;
    EXPECT_EQ(got[i].error, "") << i;
    EXPECT_EQ(got[i].ids, want[i].ids) << "stream " << i;
    EXPECT_EQ(got[i].text, want[i].text) << "stream " << i;
    EXPECT_EQ(got[i].finish_reason, "length") << i;
  }
  // The fault hit streams in flight: at least one moved.
  EXPECT_GE(fleet.Metric("weft_gateway_migrations_total"), 1) << "the fault came too late";
}

TEST(GatewayFailoverTest, ReplicaKilledMidStream) { RunFailoverScenario(Fault::kKill); }
TEST(GatewayFailoverTest, ReplicaFrozenMidStream) { RunFailoverScenario(Fault::kStop); }
TEST(GatewayFailoverTest, ConnectionsResetByProxy) { RunFailoverScenario(Fault::kProxyReset); }

// Hedging: a replica that stops answering while the gateway still believes it healthy (its next
// health check is far away) gets requests; 200 ms without a first event, a second attempt races
// on the other replica and wins. Every stream completes, exact, long before the 3 s first-byte
// timeout would have moved it.
TEST(GatewayHedgingTest, SlowFirstByteIsHedgedToAnotherReplica) {
  FleetOptions fo;
  fo.replicas = 2;
  fo.balancer = "round_robin";
  fo.extra_limits = "  hedge_after_ms: 200\n";
  fo.health = "health:\n  interval_s: 60\n  timeout_s: 0.5\n  load_poll_interval_s: 60\n";
  Fleet fleet(fo);
  ASSERT_NO_FATAL_FAILURE(fleet.Start());
  constexpr int kStreams = 8;
  constexpr int kMaxTokens = 40;
  std::vector<StreamResult> want(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    want[i] = fleet.Stream(GreedyBody(i, kMaxTokens), "", fleet.engine_ports_[1]);
    ASSERT_TRUE(want[i].done) << want[i].error;
  }
  fleet.engines_[0].Signal(SIGSTOP);
  // Every thread of the engine stopped before the first request (a thread in the middle of a
  // page fault stops late).
  const std::string task_dir = absl::StrCat("/proc/", fleet.engines_[0].pid(), "/task");
  for (int tries = 0; tries < 500; ++tries) {
    bool all_stopped = true;
    for (const auto& t : std::filesystem::directory_iterator(task_dir)) {
      std::ifstream st(t.path() / "stat");
      std::string line;
      std::getline(st, line);
      const size_t close = line.rfind(')');
      if (close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'T') {
        all_stopped = false;
      }
    }
    if (all_stopped) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<StreamResult> got(kStreams);
  std::vector<double> seconds(kStreams);
  std::vector<std::thread> ts;
  for (int i = 0; i < kStreams; ++i) {
    ts.emplace_back([&, i] {
      const auto t0 = std::chrono::steady_clock::now();
      got[i] = fleet.Stream(GreedyBody(i, kMaxTokens), fleet.key_);
      seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
  }
  for (auto& t : ts) t.join();
  fleet.engines_[0].Signal(SIGCONT);
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_TRUE(got[i].done && got[i].error.empty()) << i << ": " << got[i].error;
    EXPECT_EQ(got[i].ids, want[i].ids) << i;
    EXPECT_LT(seconds[i], 2.5) << i << ": not hedged (the first-byte timeout moved it)";
  }
  EXPECT_GE(fleet.Metric("weft_gateway_hedges_total"), 1);
  EXPECT_EQ(fleet.Metric("weft_gateway_migrations_total"), 0);
}

TEST(GatewayLedgerTest, GatewayKilledUnderLoadBillsEachFinishedRequestOnce) {
  Fleet fleet(FleetOptions{});
  ASSERT_NO_FATAL_FAILURE(fleet.Start());
  std::mutex mu;
  std::set<std::string> finished;  // request ids whose final chunk the client got
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < 24; ++i) {
    ts.emplace_back([&, i] {
      for (int n = 0; !stop; ++n) {
        StreamResult r = fleet.Stream(GreedyBody(i + n, 24), fleet.key_);
        if (r.done && !r.request_id.empty()) {
          std::lock_guard lock(mu);
          finished.insert(r.request_id);
        }
        if (!r.error.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  fleet.gateway_->Signal(SIGKILL);
  fleet.gateway_->Wait(5);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_NO_FATAL_FAILURE(fleet.StartGateway());  // same data dir: recovers the WAL, ships
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  stop = true;
  for (auto& t : ts) t.join();
  ASSERT_GT(finished.size(), 20u);

  auto store = gateway::SqliteLedgerStore::Open({fleet.dir_ + "/ledger.sqlite", false, 5000});
  ASSERT_TRUE(store.ok()) << store.status();
  std::map<std::string, int> seen;
  std::map<std::string, int64_t> completion;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  size_t missing = 0;
  do {
    seen.clear();
    ASSERT_TRUE((*store)
                    ->Scan(0,
                           [&](const gateway::UsageRecord& r) {
                             seen[r.request_id]++;
                             completion[r.request_id] = r.completion_tokens;
                           })
                    .ok());
    missing = 0;
    for (const std::string& id : finished) missing += seen.count(id) == 0;
    if (missing == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(missing, 0u) << "of " << finished.size() << " finished requests";
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
  // Billed exactly: the 24 tokens each finished request generated.
  for (const std::string& id : finished) EXPECT_EQ(completion[id], 24) << id;
}

// SIGTERM drains; more SIGTERMs during the drain (a supervisor that signals the whole process
// group, as `kill -- -PGID` does, and then the gateway itself) must not end the gateway mid-drain:
// every thread blocks them, so it still cuts the request in flight at the drain deadline, closes
// the ledger (the WAL trimmed to its data), logs "stopped" and exits 0. The request in flight waits
// on a replica that accepts connections and never answers.
TEST(GatewayLedgerTest, MoreSigtermsDuringTheDrainAreHarmless) {
  const std::string dir = weft::testing::MakeTempDir("weft-gw-sigterm");
  namespace net = boost::asio;
  net::io_context ioc;
  net::ip::tcp::acceptor silent(ioc, {net::ip::make_address("127.0.0.1"), 0});  // never accepts
  LoneGateway gw;
  StartLoneGateway(dir, "silent", silent.local_endpoint().port(),
                   "  upstream_first_byte_timeout_s: 30\n", {"--drain", "1.5"}, &gw);
  if (HasFatalFailure()) return;
  Subprocess& gateway = *gw.process;
  const uint16_t port = gw.port;
  std::thread client([&] {
    auto c = HttpClient::Connect("127.0.0.1", port, 5);
    if (c.ok()) {
      (void)(*c)->Request("POST", "/v1/completions", GreedyBody(0, 8).dump(),
                          {{"Authorization", "Bearer " + gw.key}});
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the request waits upstream
  for (int i = 0; i < 10; ++i) {  // one SIGTERM starts the drain, the others arrive during it
    gateway.Signal(SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::optional<int> status = gateway.Wait(30);
  client.join();
  ASSERT_TRUE(status.has_value()) << "the gateway did not exit";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << weft::DescribeWaitStatus(*status);
  std::ifstream log(dir + "/gateway.log");
  const std::string text{std::istreambuf_iterator<char>(log), {}};
  EXPECT_NE(text.find("weft gateway: stopped"), std::string::npos) << text;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/ledger-wal")) {
    if (e.path().extension() != ".log") continue;
    std::ifstream seg(e.path(), std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(seg), {}};
    EXPECT_EQ(gateway::EndWithoutZeroTail(bytes, 0), bytes.size())
        << e.path() << ": a clean close leaves no preallocated tail";
  }
}

// A replica whose answers are valid JSON with fields of the wrong types (usage counts as
// strings, a numeric stream id, a string `created`) and a usage event without "created" or
// "model": the gateway relays them, bills what it can read (nothing), and stays up. Two bugs this
// caught: nlohmann's value() threw on such fields, and an exception from an I/O thread's handler
// ended the gateway; and the keys the gateway adds to an event that lacks them moved the ordered
// object's members under a pointer still in use (a use-after-free ASan reports).
// A scripted replica on a loopback port: one request per connection, read whole (head and
// Content-Length body), answered with what `answer(request)` returns (a whole HTTP response).
// Stops and joins on destruction.
class ScriptedReplica {
 public:
  explicit ScriptedReplica(std::function<std::string(const std::string& request)> answer)
      : acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}),
        answer_(std::move(answer)) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedReplica() {
    stop_ = true;
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket wake(ioc_);
    wake.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // An HTTP/1.1 response that closes the connection.
  static std::string Response(int status, const std::string& type, const std::string& body) {
    return absl::StrCat("HTTP/1.1 ", status, " X\r\nContent-Type: ", type,
                        "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n",
                        body);
  }
  // The body of a request `answer` was given.
  static std::string BodyOf(const std::string& request) {
    const size_t head_end = request.find("\r\n\r\n");
    return head_end == std::string::npos ? "" : request.substr(head_end + 4);
  }

 private:
  void Serve() {
    namespace net = boost::asio;
    while (!stop_.load()) {
      boost::system::error_code ec;
      net::ip::tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec || stop_.load()) return;
      std::string in;
      char buf[4096];
      size_t head_end = std::string::npos;
      while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
        size_t n = s.read_some(net::buffer(buf), ec);
        if (ec) break;
        in.append(buf, n);
      }
      if (head_end == std::string::npos) continue;
      size_t length = 0;
      if (size_t cl = in.find("Content-Length: "); cl != std::string::npos && cl < head_end) {
        length = std::stoul(in.substr(cl + 16));
      }
      while (in.size() < head_end + 4 + length) {
        size_t n = s.read_some(net::buffer(buf), ec);
        if (ec) break;
        in.append(buf, n);
      }
      net::write(s, net::buffer(answer_(in)), ec);
    }
  }

  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::function<std::string(const std::string&)> answer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(GatewayApiTest, ReplicaAnswersWithWrongTypesDoNotStopTheGateway) {
  const std::string dir = weft::testing::MakeTempDir("weft-gw-wrongtypes");
  // The answer depends on the path and on "stream" in the body.
  ScriptedReplica replica([](const std::string& in) {
    std::string body, type = "application/json";
    if (in.starts_with("GET /health")) {
      body = "{}";
    } else if (in.starts_with("GET ")) {
      body = R"({"ready":true})";
    } else if (in.find("\"stream\":true") != std::string::npos) {
      type = "text/event-stream";
      body =
          "data: {\"id\":5,\"created\":\"x\",\"model\":7,\"choices\":[{\"index\":0,"
          "\"text\":\"hi\",\"token_ids\":[1],\"finish_reason\":\"length\"}]}\n\n"
          "data: {\"id\":5,\"choices\":[],\"usage\":{\"prompt_tokens\":\"3\","
          "\"completion_tokens\":[1],\"prompt_tokens_details\":{\"cached_tokens\":\"1\"}}}\n\n"
          "data: [DONE]\n\n";
    } else {
      body = R"({"id":"c","model":"stories260K","choices":[{"index":0,"text":"hi"}],)"
             R"("usage":{"prompt_tokens":"seven","completion_tokens":{"n":1},)"
             R"("prompt_tokens_details":{"cached_tokens":"x"}}})";
    }
    return ScriptedReplica::Response(200, type, body);
  });
  const uint16_t replica_port = replica.port();
  LoneGateway gw;
  StartLoneGateway(dir, "odd", replica_port, "", {}, &gw);
  if (HasFatalFailure()) return;
  Subprocess& gateway = *gw.process;
  const uint16_t port = gw.port;
  const std::vector<std::pair<std::string, std::string>> auth_header = {
      {"Authorization", "Bearer " + gw.key}};
  for (bool stream : {false, true}) {
    json body = GreedyBody(0, 4);
    if (stream) body["stream"] = true;
    auto c = HttpClient::Connect("127.0.0.1", port, 10);
    ASSERT_TRUE(c.ok()) << c.status();
    auto r = (*c)->Request("POST", "/v1/completions", body.dump(), auth_header);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_NE(r->body.find("\"hi\""), std::string::npos) << r->body;
    EXPECT_FALSE(gateway.Wait(0).has_value()) << "the gateway exited (stream=" << stream << ")";
  }
  EXPECT_TRUE(weft::testing::WaitForHttp200(port, "/health", 5).ok());
  gateway.Signal(SIGTERM);
  std::optional<int> status = gateway.Wait(30);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << weft::DescribeWaitStatus(*status);
}

// A stream is sent with a seed the gateway fixes when the client gave none, the same in every
// attempt (a retried or resumed stream samples as the first attempt would have); a client's own
// seed goes through as it is. The replica refuses every first attempt (503, retried before the
// first byte) and streams the second.
TEST(GatewayApiTest, EveryAttemptOfAStreamCarriesTheSameSeed) {
  const std::string dir = weft::testing::MakeTempDir("weft-gw-seed");
  std::mutex mu;
  std::vector<json> bodies;  // the completion requests the replica saw, in order
  ScriptedReplica replica([&](const std::string& in) {
    if (in.starts_with("GET /health")) return ScriptedReplica::Response(200, "application/json", "{}");
    if (in.starts_with("GET ")) {
      return ScriptedReplica::Response(200, "application/json", R"({"ready":true})");
    }
    std::lock_guard lock(mu);
    bodies.push_back(json::parse(ScriptedReplica::BodyOf(in), nullptr, false));
    if (bodies.size() % 2 == 1) {
      return ScriptedReplica::Response(503, "application/json",
                                       R"({"error":{"message":"busy","type":"overloaded"}})");
    }
    return ScriptedReplica::Response(
        200, "text/event-stream",
        "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"hi\","
        "\"token_ids\":[1],\"finish_reason\":\"length\"}]}\n\n"
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
        "\"completion_tokens\":1}}\n\ndata: [DONE]\n\n");
  });
  LoneGateway gw;
  StartLoneGateway(dir, "r1", replica.port(), "", {}, &gw);
  if (HasFatalFailure()) return;
  const std::vector<std::pair<std::string, std::string>> auth_header = {
      {"Authorization", "Bearer " + gw.key}};
  for (bool client_seed : {false, true}) {
    json body = GreedyBody(1, 4);
    body["stream"] = true;
    if (client_seed) body["seed"] = 7;
    const size_t before = [&] {
      std::lock_guard lock(mu);
      return bodies.size();
    }();
    auto c = HttpClient::Connect("127.0.0.1", gw.port, 10);
    ASSERT_TRUE(c.ok()) << c.status();
    auto r = (*c)->Request("POST", "/v1/completions", body.dump(), auth_header);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_NE(r->body.find("\"hi\""), std::string::npos) << r->body;
    std::lock_guard lock(mu);
    ASSERT_EQ(bodies.size(), before + 2) << "one refused attempt, one answered";
    const json& first = bodies[before];
    const json& second = bodies[before + 1];
    ASSERT_TRUE(first.is_object() && second.is_object());
    ASSERT_TRUE(first.contains("seed") && first["seed"].is_number_integer()) << first.dump();
    EXPECT_EQ(first["seed"], second["seed"]) << first.dump() << " / " << second.dump();
    if (client_seed) {
      EXPECT_EQ(first["seed"], 7);
    }
  }
  gw.process->Signal(SIGTERM);
  std::optional<int> status = gw.process->Wait(30);
  ASSERT_TRUE(status.has_value());
}

TEST(GatewayApiTest, KeysTenantsQuotasAndBadInput) {
  FleetOptions fo;
  fo.replicas = 1;
  fo.tenant_rpm = 6;
  Fleet fleet(fo);
  ASSERT_NO_FATAL_FAILURE(fleet.Start());
  const json ok_body = GreedyBody(0, 4);
  // No key, a malformed key, an unknown key: 401 in OpenAI's error shape.
  for (const std::string& key : {std::string(), std::string("nonsense"),
                                 std::string("wft_0000000000000000_abcdefabcdefabcdef")}) {
    auto c = HttpClient::Connect("127.0.0.1", fleet.gateway_port_);
    ASSERT_TRUE(c.ok());
    auto r = key.empty()
                 ? (*c)->Request("POST", "/v1/completions", ok_body.dump())
                 : (*c)->Request("POST", "/v1/completions", ok_body.dump(), fleet.Auth(key));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 401) << key;
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "invalid_api_key");
  }
  // A deployment the tenant may not use looks like one that does not exist: 404.
  auto r = fleet.Post("/v1/completions", ok_body, fleet.other_key_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "model_not_found");
  json unknown = ok_body;
  unknown["model"] = "nope";
  r = fleet.Post("/v1/completions", unknown, fleet.key_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  // Bad bodies: 400 naming the field; oversized: 413.
  {
    auto c = HttpClient::Connect("127.0.0.1", fleet.gateway_port_);
    auto bad = (*c)->Request("POST", "/v1/completions", "{\"model\": ", fleet.Auth(fleet.key_));
    ASSERT_TRUE(bad.ok());
    EXPECT_EQ(bad->status, 400);
  }
  json wrong = ok_body;
  wrong["temperature"] = "hot";
  r = fleet.Post("/v1/completions", wrong, fleet.key_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["param"], "temperature");
  json big = ok_body;
  big["prompt"] = std::string(100000, 'a');
  r = fleet.Post("/v1/completions", big, fleet.key_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 413);
  // A good request, non-streamed, is answered with the client's model name and usage.
  r = fleet.Post("/v1/completions", ok_body, fleet.key_);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["model"], kDeployment);
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
  // Slowloris: a client that dribbles its head is cut after header_timeout_s (1 s) while a
  // normal client keeps being served; so is a flood of idle connections.
  auto slow = HttpClient::Connect("127.0.0.1", fleet.gateway_port_);
  ASSERT_TRUE(slow.ok());
  ASSERT_TRUE((*slow)->SendRaw("POST /v1/completions HTTP/1.1\r\nHost: x\r\n").ok());
  std::vector<std::unique_ptr<HttpClient>> flood;
  for (int i = 0; i < 300; ++i) {
    auto c = HttpClient::Connect("127.0.0.1", fleet.gateway_port_);
    if (c.ok()) flood.push_back(*std::move(c));
  }
  EXPECT_GT(flood.size(), 250u);
  StreamResult s = fleet.Stream(GreedyBody(1, 8), fleet.key_);
  EXPECT_TRUE(s.done) << s.error;
  EXPECT_EQ(s.ids.size(), 8u);
  EXPECT_TRUE((*slow)->ServerClosed(3)) << "slow header not cut";
  flood.clear();
  // Quota: 6 requests/min for the tenant; the two good requests above used 2 of them (the 4xx
  // answers before the quota check cost nothing): 4 more pass (5 if the bucket refilled one in
  // the seconds since), then 429 with Retry-After.
  int passed = 0, limited = 0;
  std::string retry_after;
  for (int i = 0; i < 6; ++i) {
    auto q = fleet.Post("/v1/completions", ok_body, fleet.key_);
    ASSERT_TRUE(q.ok());
    if (q->status == 200) ++passed;
    if (q->status == 429) {
      ++limited;
      retry_after = q->Header("Retry-After");
      EXPECT_EQ(json::parse(q->body)["error"]["code"], "rate_limit_exceeded");
    }
  }
  EXPECT_GE(passed, 4);
  EXPECT_LE(passed, 5);
  EXPECT_EQ(limited, 6 - passed);
  EXPECT_FALSE(retry_after.empty());
  EXPECT_GE(std::stoi(retry_after.empty() ? "0" : retry_after), 1);
  // Revocation reaches the gateway process (its cache refreshes within about a second).
  ASSERT_TRUE(fleet.keys_->RevokeKey(fleet.key_id_).ok());
  int status = 0;
  for (int i = 0; i < 40 && status != 401; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto q = fleet.Post("/v1/completions", ok_body, fleet.key_);
    ASSERT_TRUE(q.ok());
    status = q->status;
  }
  EXPECT_EQ(status, 401);
  // The key store holds the key's hash, never the key.
  std::ifstream f(fleet.dir_ + "/keys.sqlite", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::string secret = fleet.key_.substr(fleet.key_.rfind('_') + 1);
  EXPECT_EQ(bytes.find(secret), std::string::npos);
}

// The prefix-cache hit rate of 8 prompt families (a long shared prefix each) sent round after
// round through a gateway with `balancer` to 3 replicas whose KV caches hold only a few prefixes.
double PrefixHitRate(const std::string& balancer) {
  FleetOptions fo;
  fo.balancer = balancer;
  fo.engine_args = {"--ctx", "512", "--kv-blocks", "96"};
  Fleet fleet(fo);
  fleet.Start();
  std::vector<std::string> prefixes;
  for (int p = 0; p < 8; ++p) {
    std::string text;
    for (int w = 0; text.size() < 560; ++w) {
      absl::StrAppend(&text, "family ", p, " story ", w, " the cat sat on the mat. ");
    }
    prefixes.push_back(text);
  }
  int64_t prompt = 0, cached = 0;
  for (int round = 0; round < 4; ++round) {
    for (int p = 0; p < 8; ++p) {
      json body = {{"model", kDeployment},
                   {"prompt", absl::StrCat(prefixes[p], " question ", round)},
                   {"max_tokens", 2},
                   {"temperature", 0}};
      auto r = fleet.Post("/v1/completions", body, fleet.key_);
      if (!r.ok() || r->status != 200) {
        ADD_FAILURE() << (r.ok() ? r->body : std::string(r.status().message()));
        return -1;
      }
      json u = json::parse(r->body)["usage"];
      if (round > 0) {  // the first round fills the caches
        prompt += u["prompt_tokens"].get<int64_t>();
        cached += u["prompt_tokens_details"]["cached_tokens"].get<int64_t>();
      }
    }
  }
  return prompt > 0 ? static_cast<double>(cached) / prompt : 0;
}

TEST(GatewayRoutingTest, PrefixAffinityBeatsRoundRobinOnPrefixCacheHits) {
  const double prefix = PrefixHitRate("prefix");
  const double rr = PrefixHitRate("round_robin");
  std::printf("prefix-cache hit rate: prefix affinity %.2f, round robin %.2f\n", prefix, rr);
  EXPECT_GT(prefix, 0.6);
  EXPECT_GT(prefix, rr + 0.3);
}

}  // namespace
}  // namespace weft
