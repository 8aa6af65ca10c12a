// SPDX-License-Identifier: Apache-2.0
// Leader election: in-process hand-over on Resign, and failover between processes when the leader
// is SIGKILLed (flock and, when a throwaway server can start, PostgreSQL advisory locks).
#include "control/store/leader_elector.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "testing/subprocess.h"
#include "testing/test_data.h"
#ifdef WEFT_HAVE_POSTGRES
#include "gateway/metering/postgres_test_server.h"
#endif

namespace weft::control {
namespace {

using Clock = std::chrono::steady_clock;
using weft::testing::Subprocess;

class TempDir {
 public:
  TempDir() : path_(weft::testing::MakeTempDir("weft-elector-")) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `cond` every 10 ms for up to `timeout`.
template <typename F>
bool WaitFor(F cond, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Records the callbacks one elector received.
struct Transitions {
  std::mutex mu;
  std::vector<bool> seen;
  LeaderElector::Callback Callback() {
    return [this](bool leader) {
      std::lock_guard lock(mu);
      seen.push_back(leader);
    };
  }
  std::vector<bool> Get() {
    std::lock_guard lock(mu);
    return seen;
  }
};

using ElectorFactory = std::function<std::unique_ptr<LeaderElector>(const std::string& name)>;

// Two electors for one name: exactly one leads; Resign hands over; names are independent.
void CheckHandOver(const ElectorFactory& make) {
  Transitions ta, tb;
  auto a = make("election-1");
  auto b = make("election-1");
  ASSERT_TRUE(a->Campaign(ta.Callback()).ok());
  ASSERT_TRUE(WaitFor([&] { return a->IsLeader(); }, std::chrono::seconds(10)));
  EXPECT_EQ(a->Campaign(nullptr).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(b->Campaign(tb.Callback()).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // several of b's tries
  EXPECT_TRUE(a->IsLeader());
  EXPECT_FALSE(b->IsLeader());

  // Another election is independent.
  auto c = make("election-2");
  ASSERT_TRUE(c->Campaign(nullptr).ok());
  EXPECT_TRUE(WaitFor([&] { return c->IsLeader(); }, std::chrono::seconds(10)));

  a->Resign();
  EXPECT_FALSE(a->IsLeader());
  EXPECT_EQ(ta.Get(), (std::vector<bool>{true, false}));
  ASSERT_TRUE(WaitFor([&] { return b->IsLeader(); }, std::chrono::seconds(10)));
  // IsLeader turns true just before the callback runs.
  ASSERT_TRUE(WaitFor([&] { return !tb.Get().empty(); }, std::chrono::seconds(10)));
  EXPECT_EQ(tb.Get(), (std::vector<bool>{true}));
  a->Resign();  // idempotent

  // a campaigns again and stands by behind b.
  ASSERT_TRUE(a->Campaign(ta.Callback()).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(a->IsLeader());
  b.reset();  // destruction resigns
  ASSERT_TRUE(WaitFor([&] { return a->IsLeader(); }, std::chrono::seconds(10)));
  EXPECT_EQ(tb.Get(), (std::vector<bool>{true, false}));
}

std::string ReadStatus(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// Two helper processes campaign with `args`; the leader is SIGKILLed; the standby must lead
// within 10 s.
void CheckFailover(const TempDir& dir, const std::vector<std::string>& args) {
  auto start = [&](const std::string& status) {
    std::vector<std::string> argv = {WEFT_ELECTOR_HELPER, "--status", status};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = Subprocess::Start(argv, status + ".log");
    EXPECT_TRUE(p.ok()) << p.status();
    return p;
  };
  const std::string sa = dir / "a.status", sb = dir / "b.status";
  auto a = start(sa);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(WaitFor([&] { return ReadStatus(sa) == "leader"; }, std::chrono::seconds(15)))
      << "first process never led: " << ReadStatus(sa);
  auto b = start(sb);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(WaitFor([&] { return ReadStatus(sb) == "standby"; }, std::chrono::seconds(15)));
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // b has tried and failed
  EXPECT_EQ(ReadStatus(sa), "leader");
  EXPECT_EQ(ReadStatus(sb), "standby");

  ASSERT_TRUE(a->Signal(SIGKILL));
  const auto killed = Clock::now();
  ASSERT_TRUE(a->Wait(10).has_value());
  ASSERT_TRUE(WaitFor([&] { return ReadStatus(sb) == "leader"; }, std::chrono::seconds(10)))
      << "standby did not take over within 10 s";
  const double took = std::chrono::duration<double>(Clock::now() - killed).count();
  EXPECT_LT(took, 10.0);
  std::printf("standby led %.2f s after SIGKILL\n", took);

  // A clean exit resigns; a new process then leads.
  ASSERT_TRUE(b->Signal(SIGTERM));
  auto status = b->Wait(10);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_EQ(ReadStatus(sb), "standby");
  const std::string sc = dir / "c.status";
  auto c = start(sc);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(WaitFor([&] { return ReadStatus(sc) == "leader"; }, std::chrono::seconds(10)));
}

TEST(FlockLeaderElectorTest, HandOver) {
  TempDir dir;
  CheckHandOver([&](const std::string& name) {
    return std::make_unique<FlockLeaderElector>(dir / (name + ".leader"),
                                                LeaderElectorOptions{.retry_interval_ms = 20});
  });
}

TEST(FlockLeaderElectorTest, LosesLeadershipWhenTheLockFileIsReplaced) {
  TempDir dir;
  const std::string path = dir / "control.sqlite.leader";
  Transitions t;
  FlockLeaderElector a(path, {.retry_interval_ms = 20});
  ASSERT_TRUE(a.Campaign(t.Callback()).ok());
  ASSERT_TRUE(WaitFor([&] { return a.IsLeader(); }, std::chrono::seconds(10)));
  std::filesystem::remove(path);
  FlockLeaderElector b(path, {.retry_interval_ms = 20});
  ASSERT_TRUE(b.Campaign(nullptr).ok());
  ASSERT_TRUE(WaitFor([&] { return b.IsLeader(); }, std::chrono::seconds(10)));
  // a noticed and stepped down (it may lead again only after b is gone).
  ASSERT_TRUE(WaitFor([&] { return t.Get().size() >= 2; }, std::chrono::seconds(10)));
  EXPECT_EQ(t.Get()[1], false);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(a.IsLeader());
}

TEST(FlockLeaderElectorTest, StandbyProcessTakesOverAfterSigkill) {
  TempDir dir;
  CheckFailover(dir, {"--lockfile", dir / "control.sqlite.leader"});
}

#ifdef WEFT_HAVE_POSTGRES
// The conninfo of a fresh database on the shared throwaway server, or "" (with a skip message).
std::string PostgresOrSkipReason(std::string* why_not) {
  auto* server = weft::gateway::testing::PostgresTestServer::Shared(why_not);
  if (server == nullptr) return "";
  auto conninfo = server->NewDatabase();
  if (!conninfo.ok()) {
    *why_not = std::string(conninfo.status().message());
    return "";
  }
  return *conninfo;
}

TEST(PostgresLeaderElectorTest, HandOver) {
  std::string why_not;
  const std::string conninfo = PostgresOrSkipReason(&why_not);
  if (conninfo.empty()) GTEST_SKIP() << "no throwaway PostgreSQL server here: " << why_not;
  CheckHandOver([&](const std::string& name) {
    return NewPostgresLeaderElector(conninfo, {.name = name, .retry_interval_ms = 20});
  });
}

TEST(PostgresLeaderElectorTest, StandbyProcessTakesOverAfterSigkill) {
  std::string why_not;
  const std::string conninfo = PostgresOrSkipReason(&why_not);
  if (conninfo.empty()) GTEST_SKIP() << "no throwaway PostgreSQL server here: " << why_not;
  TempDir dir;
  // The production retry interval (1 s): the takeover must still be well within 10 s.
  CheckFailover(dir, {"--postgres", conninfo, "--retry-ms", "1000"});
}

TEST(PostgresLeaderElectorTest, UnreachableServerNeverLeads) {
  auto e = NewPostgresLeaderElector("postgresql:///weft?host=/nonexistent-weft-dir",
                                    {.retry_interval_ms = 20});
  ASSERT_TRUE(e->Campaign(nullptr).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(e->IsLeader());
  e->Resign();
}
#endif

}  // namespace
}  // namespace weft::control
