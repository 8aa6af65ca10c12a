// SPDX-License-Identifier: Apache-2.0
// Crash test: a child process appends usage records from 8 threads (shipping in the background)
// and writes each acknowledged request id to a pipe; the parent SIGKILLs it at a seeded random
// moment, twice per directory. After recovery every acknowledged id is in the store exactly
// once, also when shipping is repeated from a stale (here: missing) checkpoint.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gateway/metering/ledger.h"
#include "gateway/metering/metering_testing.h"
#include "gateway/metering/sqlite_ledger_store.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

using testing::ScopedTempDir;
using testing::TestRecord;

[[noreturn]] void ChildFail(int fd, const std::string& what) {
  const std::string line = "ERR " + what + "\n";
  (void)!::write(fd, line.data(), line.size());
  ::_exit(3);
}

// The child: append until killed.
[[noreturn]] void ChildMain(const std::string& data, const std::string& prefix, int fd) {
  auto store = SqliteLedgerStore::Open({.path = LedgerStorePath(data)});
  if (!store.ok()) ChildFail(fd, store.status().ToString());
  auto ledger = Ledger::Open({.dir = LedgerWalDir(data),
                              .store = *std::move(store),
                              .segment_bytes = 8 << 10,  // rotation and segment deletion too
                              .ship_batch_records = 50,
                              .ship_in_background = true,
                              .warn = [](std::string_view) {}});
  if (!ledger.ok()) ChildFail(fd, ledger.status().ToString());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t n = 0;; ++n) {
        UsageRecord r = TestRecord(n * 8 + t);
        r.request_id = absl::StrCat(prefix, "-", t, "-", n);
        if (absl::Status s = (*ledger)->Append(r); !s.ok()) ChildFail(fd, s.ToString());
        const std::string line = r.request_id + "\n";  // < PIPE_BUF: one atomic write
        if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          ::_exit(4);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ::_exit(0);
}

// Runs a child that appends with ids "<prefix>-...", kills it with SIGKILL after it acknowledged
// a seeded random number of records plus a seeded random delay, and adds the acknowledged ids
// to `acked`.
void RunAndKill(const std::string& data, const std::string& prefix, uint32_t seed,
                std::set<std::string>& acked) {
  std::mt19937 rng(seed);
  const size_t kill_after = 1 + rng() % 600;
  const auto extra = std::chrono::microseconds(rng() % 20000);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    ChildMain(data, prefix, fds[1]);
  }
  ::close(fds[1]);
  std::string buffer;
  size_t lines = 0;
  bool killed = false;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::chrono::steady_clock::time_point kill_at = std::chrono::steady_clock::time_point::max();
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    if (!killed && (now >= kill_at || now >= give_up)) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int timeout_ms = killed ? 1000 : 1;
    if (::poll(&p, 1, timeout_ms) == 0) {
      if (killed) break;  // nothing more after the kill
      continue;
    }
    char chunk[4096];
    const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n <= 0) break;  // EOF: the child is gone
    buffer.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      const std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      ASSERT_FALSE(line.starts_with("ERR")) << "child failed: " << line;
      acked.insert(line);
      if (++lines == kill_after) kill_at = std::chrono::steady_clock::now() + extra;
    }
  }
  ::close(fds[0]);
  if (!killed) ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child exited on its own with status " << status;
  ASSERT_GE(lines, kill_after) << "the child was killed by the 20 s safety timeout";
}

std::unique_ptr<Ledger> Reopen(const std::string& data) {
  auto ledger =
      Ledger::Open({.dir = LedgerWalDir(data),
                    .store = SqliteLedgerStore::Open({.path = LedgerStorePath(data)}).value(),
                    .segment_bytes = 8 << 10,
                    .ship_batch_records = 50,
                    .ship_in_background = false,
                    .warn = [](std::string_view) {}});
  EXPECT_TRUE(ledger.ok()) << ledger.status();
  return ledger.ok() ? *std::move(ledger) : nullptr;
}

std::map<std::string, int> StoreCounts(Ledger& ledger) {
  std::map<std::string, int> counts;
  EXPECT_TRUE(
      ledger.store().Scan(INT64_MIN, [&](const UsageRecord& r) { counts[r.request_id]++; }).ok());
  return counts;
}

void ExpectEachAckedOnce(const std::map<std::string, int>& counts,
                         const std::set<std::string>& acked) {
  for (const auto& [id, n] : counts) ASSERT_EQ(n, 1) << "duplicate " << id;
  for (const std::string& id : acked) ASSERT_EQ(counts.count(id), 1u) << "lost acked " << id;
}

TEST(LedgerCrashTest, SigkillLosesNoAcknowledgedRecordAndCountsNoneTwice) {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    ScopedTempDir data;
    std::set<std::string> acked;
    for (int round = 0; round < 2; ++round) {
      RunAndKill(data.path(), absl::StrCat("s", seed, "r", round), seed * 100 + round, acked);
      if (HasFatalFailure()) return;
    }
    ASSERT_FALSE(acked.empty());

    // Before shipping: ScanAll (the quota rebuild) sees the store and the WAL, each id once.
    auto ledger = Reopen(data.path());
    ASSERT_NE(ledger, nullptr);
    const uint64_t cut = ledger->recovery().truncated_bytes;
    std::map<std::string, int> scanned;
    ASSERT_TRUE(
        ledger->ScanAll(INT64_MIN, [&](const UsageRecord& r) { scanned[r.request_id]++; }).ok());
    ExpectEachAckedOnce(scanned, acked);

    ASSERT_TRUE(ledger->Flush().ok());
    const auto shipped = StoreCounts(*ledger);
    ExpectEachAckedOnce(shipped, acked);
    EXPECT_EQ(shipped.size(), scanned.size());
    ASSERT_TRUE(ledger->Close().ok());

    // Ship everything again from a stale checkpoint: still once each.
    std::filesystem::remove(LedgerWalDir(data.path()) + "/shipped.checkpoint");
    ledger = Reopen(data.path());
    ASSERT_TRUE(ledger->Flush().ok());
    const auto reshipped = StoreCounts(*ledger);
    EXPECT_EQ(reshipped, shipped);
    std::printf("seed %u: %zu acknowledged, %zu stored, recovery cut %llu bytes\n", seed,
                acked.size(), shipped.size(), static_cast<unsigned long long>(cut));
  }
}

}  // namespace
}  // namespace weft::gateway
