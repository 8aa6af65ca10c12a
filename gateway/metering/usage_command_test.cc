// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/usage_command.h"

#include <sstream>

#include "gateway/metering/ledger.h"
#include "gateway/metering/metering_testing.h"
#include "gateway/metering/sqlite_ledger_store.h"
#include "gateway/metering/wal.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace weft::gateway {
namespace {

using testing::ScopedTempDir;
using testing::TestRecord;

struct CommandRun {
  int code;
  std::string out, err;
};

CommandRun Usage(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int code = RunUsageCommand(args, out, err);
  return {code, out.str(), err.str()};
}

// A gateway data dir whose ledger holds records 0..n-1, all shipped.
void WriteLedger(const std::string& data, int n) {
  auto ledger =
      Ledger::Open({.dir = LedgerWalDir(data),
                    .store = SqliteLedgerStore::Open({.path = LedgerStorePath(data)}).value()})
          .value();
  for (int i = 0; i < n; ++i) ASSERT_TRUE(ledger->Append(TestRecord(i)).ok());
  ASSERT_TRUE(ledger->Close().ok());
}

TEST(UsageCommandTest, ReportsByDayByDefault) {
  ScopedTempDir data;
  WriteLedger(data.path(), 12);  // 5 h apart: 2024-05-01..03
  const CommandRun r = Usage({"--data", data.path()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("DAY ")) << r.out;
  EXPECT_NE(r.out.find("2024-05-01"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2024-05-03"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("TOTAL"), std::string::npos) << r.out;
}

TEST(UsageCommandTest, FiltersGroupingAndJson) {
  ScopedTempDir data;
  WriteLedger(data.path(), 12);
  CommandRun r = Usage({"--data=" + data.path(), "--tenant", "tenant1", "--since", "2024-05-02",
                        "--until", "2024-05-03", "--by", "deployment", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["group_by"], "deployment");
  // 2024-05-02: records 5..9; tenant1 of those: 7 (llama-8b).
  ASSERT_EQ(j["rows"].size(), 1u) << r.out;
  EXPECT_EQ(j["rows"][0]["group"], "llama-8b");
  EXPECT_EQ(j["rows"][0]["prompt_tokens"], TestRecord(7).prompt_tokens);

  // --since as unix milliseconds, --by key, --deployment.
  r = Usage({"--data", data.path(), "--since", std::to_string(TestRecord(10).time_unix_ms),
             "--deployment", "qwen-7b", "--by", "key", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 1u) << r.out;  // record 10 only
  EXPECT_EQ(j["rows"][0]["group"], "key0");
  EXPECT_EQ(j["total"]["requests"], 1);
}

TEST(UsageCommandTest, BadArguments) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--by", "month"},
                                             {"--since", "yesterday"},
                                             {"--since", "2024-13-01"},
                                             {"--tenant"},
                                             {"--bogus"},
                                             {"--json=1"},
                                             {"--since", "2024-05-02", "--until", "2024-05-01"}}) {
    const CommandRun r = Usage(args);
    EXPECT_EQ(r.code, 2) << args[0];
    EXPECT_FALSE(r.err.empty());
  }
  const CommandRun help = Usage({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("usage: weft usage"), std::string::npos);
}

TEST(UsageCommandTest, MissingLedgerIsAClearError) {
  ScopedTempDir data;
  const CommandRun r = Usage({"--data", data / "nothing-here"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no usage ledger"), std::string::npos) << r.err;
}

TEST(UsageCommandTest, IncludesRecordsAStoppedGatewayLeftInItsWal) {
  ScopedTempDir data;
  WriteLedger(data.path(), 3);
  {
    auto wal = Wal::Open({.dir = LedgerWalDir(data.path())}).value();  // appended, never shipped
    for (int i = 3; i < 5; ++i) ASSERT_TRUE(wal->Append(TestRecord(i)).ok());
  }
  const CommandRun r = Usage({"--data", data.path(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["total"]["requests"], 5) << r.out;
}

TEST(UsageCommandTest, LeavesTheWalOfARunningGatewayAlone) {
  ScopedTempDir data;
  WriteLedger(data.path(), 3);
  auto running = Wal::Open({.dir = LedgerWalDir(data.path())}).value();  // holds the lock
  ASSERT_TRUE(running->Append(TestRecord(3)).ok());
  const CommandRun r = Usage({"--data", data.path(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["total"]["requests"], 3) << r.out;
}

TEST(UsageCommandTest, StoreSpecOverride) {
  ScopedTempDir data;
  WriteLedger(data.path(), 4);
  const CommandRun r = Usage({"--data", data / "elsewhere", "--store", LedgerStorePath(data.path()),
                              "--by", "tenant", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["rows"].size(), 3u) << r.out;
}

}  // namespace
}  // namespace weft::gateway
